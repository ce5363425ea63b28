//! Which connection queues this node holds for which user.
//!
//! Why sharded std mutexes: a delivery is a handful of `try_send`s under a
//! lock that is never held across an await, so a plain mutex per shard is the
//! cheapest correct choice, and shards keep unrelated users from contending.

use crate::{Delivery, EventSender};
use chinwag_proto::UserId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::mpsc::error::TrySendError;

const SHARDS: usize = 64;

type Shard = HashMap<UserId, Vec<(u64, EventSender)>>;

/// The queues of the connections held on this node, by user.
pub struct Registry {
    shards: Vec<Mutex<Shard>>,
    next_id: AtomicU64,
    connections: AtomicUsize,
    dropped_slow: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            dropped_slow: AtomicU64::new(0),
        }
    }
}

impl Registry {
    fn shard(&self, user: UserId) -> MutexGuard<'_, Shard> {
        let shard = &self.shards[user.0.rem_euclid(SHARDS as i64) as usize];
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is a single push or retain), so poison is harmless.
        shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a connection queue; it stays until the handle drops.
    pub fn add(self: &Arc<Self>, user: UserId, queue: EventSender) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.shard(user).entry(user).or_default().push((id, queue));
        self.connections.fetch_add(1, Ordering::Relaxed);
        Subscription { registry: Arc::downgrade(self), user, id }
    }

    fn remove(&self, user: UserId, id: u64) {
        let mut shard = self.shard(user);
        if let Some(queues) = shard.get_mut(&user) {
            let before = queues.len();
            queues.retain(|(qid, _)| *qid != id);
            self.connections.fetch_sub(before - queues.len(), Ordering::Relaxed);
            if queues.is_empty() {
                shard.remove(&user);
            }
        }
    }

    /// Puts the delivery into every queue of the users. A full queue is
    /// removed (its receiver sees the queue close): the connection is too
    /// slow and must reconnect and catch up from history.
    pub fn deliver(&self, users: &[UserId], delivery: Arc<Delivery>) {
        for &user in users {
            let mut shard = self.shard(user);
            let Some(queues) = shard.get_mut(&user) else { continue };
            let before = queues.len();
            queues.retain(|(_, queue)| match queue.try_send(delivery.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(user = user.0, "dropping a connection whose queue is full");
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            });
            self.connections.fetch_sub(before - queues.len(), Ordering::Relaxed);
            if queues.is_empty() {
                shard.remove(&user);
            }
        }
    }

    /// How many connections `user` has on this node.
    pub fn connections_of(&self, user: UserId) -> usize {
        self.shard(user).get(&user).map_or(0, Vec::len)
    }

    /// All connections on this node: the load a gateway reports.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections dropped so far because their queue was full.
    pub fn dropped_slow_total(&self) -> u64 {
        self.dropped_slow.load(Ordering::Relaxed)
    }
}

/// Keeps a connection's queue registered; dropping it unregisters.
pub struct Subscription {
    registry: Weak<Registry>,
    user: UserId,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(self.user, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bus, Event, LocalBus};
    use chinwag_proto::{ChannelId, DeviceId};
    use tokio::sync::mpsc;

    fn typing(n: i64) -> Event {
        Event::Typing { channel_id: ChannelId(n), user_id: UserId(1) }
    }

    #[tokio::test]
    async fn delivers_to_every_connection_of_addressed_users_only() {
        let bus = LocalBus::new();
        let (tx1, mut rx1) = mpsc::channel(8);
        let (tx2, mut rx2) = mpsc::channel(8);
        let (tx3, mut rx3) = mpsc::channel(8);
        let _s1 = bus.subscribe(UserId(1), tx1);
        let _s2 = bus.subscribe(UserId(1), tx2);
        let _s3 = bus.subscribe(UserId(2), tx3);
        assert_eq!(bus.registry().connections_of(UserId(1)), 2);
        bus.publish(&[UserId(1)], typing(7));
        assert_eq!(rx1.recv().await.unwrap().event, typing(7));
        assert_eq!(rx2.recv().await.unwrap().event, typing(7));
        assert!(rx3.try_recv().is_err());
        assert_eq!(bus.registry().connection_count(), 3);
    }

    #[tokio::test]
    async fn dropping_the_subscription_unregisters() {
        let bus = LocalBus::new();
        let (tx, mut rx) = mpsc::channel(8);
        let sub = bus.subscribe(UserId(1), tx);
        drop(sub);
        bus.publish(&[UserId(1)], typing(1));
        assert!(rx.recv().await.is_none());
        assert_eq!(bus.registry().connection_count(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_is_dropped_without_touching_others() {
        let bus = LocalBus::new();
        let (slow_tx, mut slow_rx) = mpsc::channel(2);
        let (fast_tx, mut fast_rx) = mpsc::channel(100);
        let _slow = bus.subscribe(UserId(1), slow_tx);
        let _fast = bus.subscribe(UserId(2), fast_tx);
        for n in 0..10 {
            bus.publish(&[UserId(1), UserId(2)], typing(n));
        }
        for n in 0..10 {
            assert_eq!(fast_rx.recv().await.unwrap().event, typing(n));
        }
        // The slow queue got what fit, then closed.
        assert_eq!(slow_rx.recv().await.unwrap().event, typing(0));
        assert_eq!(slow_rx.recv().await.unwrap().event, typing(1));
        assert!(slow_rx.recv().await.is_none());
        assert_eq!(bus.registry().dropped_slow_total(), 1);
        assert_eq!(bus.registry().connections_of(UserId(1)), 0);
    }

    #[test]
    fn encoding_is_shared() {
        let d = Delivery::new(Event::DeviceRevoked { device_id: DeviceId(3) });
        let mut calls = 0;
        for _ in 0..3 {
            d.encoded(|_| {
                calls += 1;
                bytes::Bytes::from_static(b"x")
            });
        }
        assert_eq!(calls, 1);
    }
}
