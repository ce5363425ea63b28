//! The behaviour every backend of the bus crate's seams must have, written
//! once. A backend's test module calls `bus_contract_tests!(open)` with an
//! async `open()` returning `(guard, bus)`; the guard keeps what the bus
//! needs alive (a NATS server, say). Likewise `presence_contract_tests!`
//! (a presence with [`GRACE`], whose changes are being told) and
//! `discovery_contract_tests!` (entries live [`DISCOVERY_TTL`]). A backend
//! in another crate enables the `contract-tests` feature.
#![allow(missing_docs)]

use crate::{Bus, Discovery, Event, GatewayInfo, NodeEvent, Presence, PresenceChange};
use chinwag_proto::{ChannelId, UserId};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a test waits for an event that must come.
const WAIT: Duration = Duration::from_secs(5);

fn typing(n: i64) -> Event {
    Event::Typing { channel_id: ChannelId(n), user_id: UserId(1) }
}

async fn next<T>(rx: &mut mpsc::Receiver<T>) -> Option<T> {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("an event within the wait")
}

/// Nothing arrives within a short while.
async fn silent<T: std::fmt::Debug>(rx: &mut mpsc::Receiver<T>) {
    if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        panic!("unexpected {got:?}");
    }
}

pub async fn events_reach_every_connection_of_the_addressed_users_only(bus: &dyn Bus) {
    let (tx1, mut rx1) = mpsc::channel(8);
    let (tx2, mut rx2) = mpsc::channel(8);
    let (tx3, mut rx3) = mpsc::channel(8);
    let _s1 = bus.subscribe(UserId(1), tx1).await.unwrap();
    let _s2 = bus.subscribe(UserId(1), tx2).await.unwrap();
    let _s3 = bus.subscribe(UserId(2), tx3).await.unwrap();
    bus.publish(&[UserId(1)], typing(7));
    assert_eq!(next(&mut rx1).await.unwrap().event, typing(7));
    assert_eq!(next(&mut rx2).await.unwrap().event, typing(7));
    silent(&mut rx3).await;
}

pub async fn one_publishers_events_arrive_in_order(bus: &dyn Bus) {
    let (tx, mut rx) = mpsc::channel(2_000);
    let _s = bus.subscribe(UserId(5), tx).await.unwrap();
    for n in 0..1_000 {
        bus.publish(&[UserId(5)], typing(n));
    }
    for n in 0..1_000 {
        assert_eq!(next(&mut rx).await.unwrap().event, typing(n));
    }
}

pub async fn nothing_before_subscribe_everything_after(bus: &dyn Bus) {
    bus.publish(&[UserId(9)], typing(1));
    let (tx, mut rx) = mpsc::channel(8);
    let _s = bus.subscribe(UserId(9), tx).await.unwrap();
    // Published the moment subscribe returned: it must arrive.
    bus.publish(&[UserId(9)], typing(2));
    assert_eq!(next(&mut rx).await.unwrap().event, typing(2));
    silent(&mut rx).await;
}

pub async fn dropping_the_subscription_stops_delivery(bus: &dyn Bus) {
    let (tx, mut rx) = mpsc::channel(8);
    let sub = bus.subscribe(UserId(3), tx).await.unwrap();
    drop(sub);
    bus.publish(&[UserId(3)], typing(1));
    assert!(tokio::time::timeout(WAIT, rx.recv()).await.unwrap().is_none(), "the queue closes");
}

pub async fn a_full_queue_closes_without_touching_others(bus: &dyn Bus) {
    let (slow_tx, mut slow_rx) = mpsc::channel(2);
    let (fast_tx, mut fast_rx) = mpsc::channel(100);
    let _slow = bus.subscribe(UserId(1), slow_tx).await.unwrap();
    let _fast = bus.subscribe(UserId(2), fast_tx).await.unwrap();
    for n in 0..10 {
        bus.publish(&[UserId(1), UserId(2)], typing(n));
    }
    for n in 0..10 {
        assert_eq!(next(&mut fast_rx).await.unwrap().event, typing(n));
    }
    // The slow queue got what fit, then closed: its connection resyncs.
    assert_eq!(next(&mut slow_rx).await.unwrap().event, typing(0));
    assert_eq!(next(&mut slow_rx).await.unwrap().event, typing(1));
    assert!(next(&mut slow_rx).await.is_none());
    assert_eq!(bus.local_registry().connections_of(UserId(1)), 0);
}

pub async fn broadcasts_reach_every_subscriber(bus: &dyn Bus) {
    let mut queues = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = mpsc::channel(8);
        subs.push(bus.subscribe_broadcasts(tx).await.unwrap());
        queues.push(rx);
    }
    let event = NodeEvent::MembersChanged { channel_id: ChannelId(42) };
    bus.broadcast(event.clone());
    for rx in &mut queues {
        assert_eq!(next(rx).await.unwrap(), event);
    }
    drop(subs.pop());
    bus.broadcast(event.clone());
    assert!(next(&mut queues[2]).await.is_none(), "a dropped subscription's queue closes");
    assert_eq!(next(&mut queues[0]).await.unwrap(), event);
}

/// The offline grace a presence under test must have.
pub const GRACE: Duration = Duration::from_millis(400);
/// How long a discovery under test keeps an entry that is not renewed.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(1);

pub async fn presence_counts_sockets_and_tells_each_change_once(presence: &dyn Presence) {
    let mut changes = presence.changes().expect("the first caller gets the changes");
    assert!(presence.changes().is_none(), "one consumer");
    let alice = chinwag_proto::UserId(71);
    for _ in 0..3 {
        presence.connection_opened(alice);
    }
    assert_eq!(next(&mut changes).await, Some(PresenceChange::Online { user_id: alice }));
    assert_eq!(presence.connections_of(alice), 3);
    assert!(presence.is_online(alice));
    assert_eq!(presence.online_among(&[alice, UserId(72)]), vec![alice]);
    assert!(presence.online_users().contains(&alice));
    for _ in 0..3 {
        presence.connection_closed(alice);
    }
    assert_eq!(presence.connections_of(alice), 0);
    assert!(presence.is_online(alice), "online during the grace");
    // Back within the grace: nothing to tell.
    presence.connection_opened(alice);
    tokio::time::sleep(GRACE * 2).await;
    silent(&mut changes).await;
    presence.connection_closed(alice);
    match next(&mut changes).await {
        Some(PresenceChange::Offline { user_id, last_active_at }) => {
            assert_eq!(user_id, alice);
            assert!(last_active_at > 0);
        }
        other => panic!("{other:?}"),
    }
    assert!(!presence.is_online(alice));
    silent(&mut changes).await;
}

pub async fn discovery_lists_live_gateways_least_loaded_first(discovery: &dyn Discovery) {
    let gateway = |id: &str, load| GatewayInfo { id: id.into(), ws_url: Some(format!("ws://{id}")), load };
    discovery.announce(gateway("a", 9));
    assert_eq!(discovery.live(), vec![gateway("a", 9)], "an announcement is seen at once");
    discovery.announce(gateway("a", 2));
    assert_eq!(discovery.live(), vec![gateway("a", 2)], "the newest announcement counts");
    tokio::time::sleep(DISCOVERY_TTL + Duration::from_millis(300)).await;
    assert!(discovery.live().is_empty(), "not renewed: expired");
}

/// Generates one `#[tokio::test]` per presence contract function.
#[macro_export]
macro_rules! presence_contract_tests {
    ($open:path) => {
        mod presence_contract_suite {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn presence_counts_sockets_and_tells_each_change_once() {
                let (_guard, presence) = $open().await;
                $crate::contract::presence_counts_sockets_and_tells_each_change_once(&presence).await;
            }
        }
    };
}

/// Generates one `#[tokio::test]` per discovery contract function.
#[macro_export]
macro_rules! discovery_contract_tests {
    ($open:path) => {
        mod discovery_contract_suite {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn discovery_lists_live_gateways_least_loaded_first() {
                let (_guard, discovery) = $open().await;
                $crate::contract::discovery_lists_live_gateways_least_loaded_first(&discovery).await;
            }
        }
    };
}

/// Generates one `#[tokio::test]` per contract function for a backend.
#[macro_export]
macro_rules! bus_contract_tests {
    ($open:path) => {
        mod bus_contract_suite {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (_guard, bus) = $open().await;
                        $crate::contract::$name(&bus).await;
                    }
                };
            }
            case!(events_reach_every_connection_of_the_addressed_users_only);
            case!(one_publishers_events_arrive_in_order);
            case!(nothing_before_subscribe_everything_after);
            case!(dropping_the_subscription_stops_delivery);
            case!(a_full_queue_closes_without_touching_others);
            case!(broadcasts_reach_every_subscriber);
        }
    };
}
