//! The NATS backends against real `nats-server` processes: the contract
//! suites on a single server, and what only several nodes show on a
//! three-server cluster.

use super::*;
use crate::contract;
use crate::RateLimiter;
use std::sync::atomic::AtomicUsize;

static NODES: AtomicUsize = AtomicUsize::new(0);

fn options(lease_ttl: Duration, lead_presence: bool) -> NatsOptions {
    NatsOptions {
        node: format!("node-{}", NODES.fetch_add(1, Ordering::SeqCst)),
        lease_ttl,
        offline_grace: contract::GRACE,
        lead_presence,
    }
}

async fn start(size: usize) -> LocalNats {
    tokio::task::spawn_blocking(move || LocalNats::start(size)).await.unwrap().expect("start nats-server")
}

async fn node(nats: &LocalNats, lease_ttl: Duration, lead_presence: bool) -> NatsCluster {
    NatsCluster::connect(&nats.urls(), options(lease_ttl, lead_presence)).await.expect("join the cluster")
}

async fn bus() -> ((LocalNats, NatsCluster), NatsBus) {
    let nats = start(1).await;
    let cluster = node(&nats, Duration::from_secs(10), false).await;
    let bus = cluster.bus();
    ((nats, cluster), bus)
}

async fn presence() -> ((LocalNats, NatsCluster), NatsPresence) {
    let nats = start(1).await;
    let cluster = node(&nats, Duration::from_secs(10), true).await;
    assert!(cluster.until_telling(Duration::from_secs(10)).await, "never led presence");
    let presence = cluster.presence();
    ((nats, cluster), presence)
}

async fn discovery() -> ((LocalNats, NatsCluster), NatsDiscovery) {
    let nats = start(1).await;
    let cluster = node(&nats, contract::DISCOVERY_TTL, false).await;
    let discovery = cluster.discovery();
    ((nats, cluster), discovery)
}

crate::bus_contract_tests!(bus);
crate::presence_contract_tests!(presence);
crate::discovery_contract_tests!(discovery);

/// Waits until `check` holds (the directory is eventually consistent).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn typing(n: i64) -> Event {
    Event::Typing { channel_id: chinwag_proto::ChannelId(n), user_id: UserId(1) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_crosses_the_network_once_per_gateway_holding_its_users() {
    let nats = start(3).await;
    let ttl = Duration::from_secs(10);
    let (a, b, c) = (node(&nats, ttl, false).await, node(&nats, ttl, false).await, node(&nats, ttl, false).await);
    let (bus_a, bus_b, bus_c) = (a.bus(), b.bus(), c.bus());
    let members: Vec<UserId> = (1..=100).map(UserId).collect();
    // 40 members on b, 40 on c, 20 nowhere; member 1 also on a.
    let mut queues = Vec::new();
    let mut subscriptions = Vec::new();
    for (i, &user) in members.iter().enumerate().take(80) {
        let (bus, presence) = if i < 40 { (&bus_b, b.presence()) } else { (&bus_c, c.presence()) };
        let (tx, rx) = mpsc::channel(16);
        subscriptions.push(bus.subscribe(user, tx).await.unwrap());
        presence.connection_opened(user);
        queues.push(rx);
    }
    let (tx, mut local) = mpsc::channel(16);
    let _local = bus_a.subscribe(UserId(1), tx).await.unwrap();
    let (pa, pb, pc) = (a.presence(), b.presence(), c.presence());
    pa.connection_opened(UserId(1));
    eventually("a sees every member b and c hold", || pa.online_among(&members).len() == 80).await;
    bus_a.publish(&members, typing(5));
    for rx in &mut queues {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(got.event, typing(5));
    }
    assert_eq!(local.recv().await.unwrap().event, typing(5));
    assert_eq!(bus_a.routed_events(), 2, "one send per other gateway holding members, not one per member");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(queues.iter_mut().all(|rx| rx.try_recv().is_err()), "delivered once");
    // Each node's view counts the others' sockets.
    assert_eq!(pb.connections_of(UserId(1)), 2);
    assert_eq!(pc.connections_of(UserId(41)), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_gateways_and_a_dead_gateways_users_go_offline() {
    let nats = start(3).await;
    let ttl = Duration::from_secs(1);
    let leader = node(&nats, ttl, true).await;
    assert!(leader.until_telling(Duration::from_secs(10)).await);
    let standby = node(&nats, ttl, true).await;
    let mut changes = leader.presence().changes().unwrap();
    let mut standby_changes = standby.presence().changes().unwrap();
    let (g1, g2) = (node(&nats, ttl, false).await, node(&nats, ttl, false).await);
    let alice = UserId(7);
    g1.discovery().announce(GatewayInfo { id: "g1".into(), ws_url: None, load: 1 });
    g1.presence().connection_opened(alice);
    g2.presence().connection_opened(alice);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), changes.recv()).await.unwrap(),
        Some(PresenceChange::Online { user_id: alice })
    );
    eventually("both sockets counted", || leader.presence().connections_of(alice) == 2).await;
    g1.presence().connection_closed(alice);
    eventually("one socket left", || leader.presence().connections_of(alice) == 1).await;
    tokio::time::sleep(contract::GRACE * 2).await;
    assert!(changes.try_recv().is_err(), "online while a socket is left anywhere");
    // g2 dies without a word (its tasks stop; nothing is deleted): after
    // its lease and the grace, alice is offline, told once.
    let killed_at = tokio::time::Instant::now();
    drop(g2);
    match tokio::time::timeout(Duration::from_secs(10), changes.recv()).await.unwrap() {
        Some(PresenceChange::Offline { user_id, .. }) => assert_eq!(user_id, alice),
        other => panic!("{other:?}"),
    }
    assert!(killed_at.elapsed() >= contract::GRACE, "not before the grace");
    assert!(!leader.presence().is_online(alice));
    assert!(standby_changes.try_recv().is_err(), "only the leader tells");
    // Every node's view agrees.
    eventually("alice offline on the surviving gateway too", || !g1.presence().is_online(alice)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_every_gateway_of_the_cluster() {
    let nats = start(3).await;
    let ttl = Duration::from_secs(1);
    let (api, g1, g2) = (node(&nats, ttl, false).await, node(&nats, ttl, false).await, node(&nats, ttl, false).await);
    g1.discovery().announce(GatewayInfo { id: "node-g1".into(), ws_url: Some("ws://one".into()), load: 5 });
    g2.discovery().announce(GatewayInfo { id: "node-g2".into(), ws_url: Some("ws://two".into()), load: 3 });
    eventually("both listed", || api.discovery().live().len() == 2).await;
    let urls: Vec<Option<String>> = api.discovery().live().into_iter().map(|g| g.ws_url).collect();
    assert_eq!(urls, vec![Some("ws://two".into()), Some("ws://one".into())], "least loaded first");
    eventually("expired when not renewed", || api.discovery().live().is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_nats_server_closes_the_nodes_queues() {
    let mut nats = start(3).await;
    // This node talks to server 0 only, so killing it cuts the node off.
    let lonely = NatsCluster::connect(&nats.url(0), options(Duration::from_secs(10), false)).await.unwrap();
    let bus = lonely.bus();
    let (tx, mut rx) = mpsc::channel(8);
    let _subscription = bus.subscribe(UserId(3), tx).await.unwrap();
    nats.kill(0);
    assert!(tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().is_none(), "queue closed");
    assert!(!bus.is_connected());
    let (tx, _rx) = mpsc::channel(8);
    assert!(bus.subscribe(UserId(3), tx).await.is_err(), "no new sockets while events are being lost");
    let _nats = tokio::task::spawn_blocking(move || {
        nats.restart(0).unwrap();
        nats
    })
    .await
    .unwrap();
    eventually("reconnected", || bus.is_connected()).await;
    let (tx, _rx) = mpsc::channel(8);
    assert!(bus.subscribe(UserId(3), tx).await.is_ok(), "sockets welcome again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_nodes_share_one_budget() {
    let nats = start(3).await;
    let ttl = Duration::from_secs(10);
    let (a, b) = (node(&nats, ttl, false).await, node(&nats, ttl, false).await);
    let fallback: Arc<dyn crate::RateLimiter> = Arc::new(crate::LocalRateLimiter::default());
    let (la, lb) = (a.rate_limiter(fallback.clone()), b.rate_limiter(fallback));
    let limit = crate::Limit { name: "login", per_minute: 4, burst: 4 };
    let mut allowed = 0;
    for i in 0..10 {
        let limiter = if i % 2 == 0 { &la } else { &lb };
        if limiter.check(limit, "alice@198.51.100.7").await.is_ok() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 4, "the budget is the cluster's, not each node's");
    assert!(la.check(limit, "bob").await.is_ok(), "another key has its own");
}

/// A fallback that refuses everything: any check that reaches it shows up.
struct RefuseAll;

#[async_trait::async_trait]
impl crate::RateLimiter for RefuseAll {
    async fn check(&self, _: crate::Limit, _: &str) -> Result<(), Duration> {
        Err(Duration::from_secs(60))
    }
    fn forget_idle(&self) {}
}

/// Nodes racing for one fresh key (many logins at once) settle it by
/// compare-and-set, never by falling back to their local budgets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_nodes_spend_exactly_the_budget() {
    let nats = start(3).await;
    let ttl = Duration::from_secs(10);
    let (a, b) = (node(&nats, ttl, false).await, node(&nats, ttl, false).await);
    let limiters = [a.rate_limiter(Arc::new(RefuseAll)), b.rate_limiter(Arc::new(RefuseAll))];
    let limit = crate::Limit { name: "signup", per_minute: 60, burst: 6 };
    let checks = (0..6).map(|i| limiters[i % 2].check(limit, "198.51.100.9"));
    let verdicts = futures_util::future::join_all(checks).await;
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    assert!(limiters[0].check(limit, "198.51.100.9").await.is_err(), "the budget is spent");
}
