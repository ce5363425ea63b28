//! Which connection queues this node holds for which user.
//!
//! Why sharded std mutexes: a delivery is a handful of `try_send`s under a
//! lock that is never held across an await, so a plain mutex per shard is the
//! cheapest correct choice, and shards keep unrelated users from contending.

use crate::{Delivery, EventSender, NodeEvent, NodeEventSender};
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
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
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
        Subscription { registry: Unregister::Users(Arc::downgrade(self)), user, id }
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

    /// Drops every queue (their connections close and resync): for a bus
    /// that lost events it cannot name.
    pub fn close_all(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let dropped: usize = shard.values().map(Vec::len).sum();
            shard.clear();
            self.connections.fetch_sub(dropped, Ordering::Relaxed);
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
}

/// Keeps a queue registered (a connection's, or a node's broadcast
/// queue); dropping it unregisters.
pub struct Subscription {
    registry: Unregister,
    user: UserId,
    id: u64,
}

/// Where a dropped subscription removes itself from.
enum Unregister {
    Users(Weak<Registry>),
    Broadcasts(Weak<Broadcasts>),
}

/// The broadcast queues of this node.
#[derive(Default)]
pub struct Broadcasts {
    queues: Mutex<Vec<(u64, NodeEventSender)>>,
    next_id: AtomicU64,
}

impl Broadcasts {
    fn lock(&self) -> MutexGuard<'_, Vec<(u64, NodeEventSender)>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(self: &Arc<Self>, queue: NodeEventSender) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, queue));
        Subscription { registry: Unregister::Broadcasts(Arc::downgrade(self)), user: UserId(0), id }
    }

    /// Drops every queue (their followers start over).
    pub fn close_all(&self) {
        self.lock().clear();
    }

    /// Puts the event into every queue; a full or closed one is dropped.
    pub fn deliver(&self, event: &NodeEvent) {
        self.lock().retain(|(_, queue)| match queue.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!("dropping a broadcast queue that is full");
                false
            }
            Err(TrySendError::Closed(_)) => false,
        });
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        match &self.registry {
            Unregister::Users(registry) => {
                if let Some(registry) = registry.upgrade() {
                    registry.remove(self.user, self.id);
                }
            }
            Unregister::Broadcasts(broadcasts) => {
                if let Some(broadcasts) = broadcasts.upgrade() {
                    broadcasts.lock().retain(|(id, _)| *id != self.id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;
    use chinwag_proto::DeviceId;

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
