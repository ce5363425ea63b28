//! The `Presence` seam: who is online, counted over every gateway.
//!
//! A user is online while any of their devices holds an authenticated
//! socket anywhere. Only the first connection (0 → 1) is a change; when
//! the last one closes, `offline` waits out a grace period, so a device
//! that reconnects within it (a flapping network, a page reload) changes
//! nothing. Changes come out once each on [`Presence::changes`], for the
//! presence role to announce and record.
//!
//! The queries are synchronous on purpose: they sit on hot paths (push
//! suppression per message), so a cluster implementation answers them from
//! a locally watched copy of the shared state.

use chinwag_proto::UserId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// A user's presence changed (announced once, wherever their sockets are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceChange {
    Online {
        user_id: UserId,
    },
    /// `last_active_at` is when their last socket closed.
    Offline {
        user_id: UserId,
        last_active_at: i64,
    },
}

/// Who is online.
pub trait Presence: Send + Sync + 'static {
    /// A socket of `user` finished authenticating on this node.
    fn connection_opened(&self, user: UserId);
    /// A socket of `user` on this node closed.
    fn connection_closed(&self, user: UserId);
    /// Whether `user` counts as online: connected anywhere, or lost their
    /// last connection within the grace period.
    fn is_online(&self, user: UserId) -> bool;
    /// Sockets `user` holds on every gateway (for the per-user cap).
    fn connections_of(&self, user: UserId) -> usize;
    /// Those of `users` who are online.
    fn online_among(&self, users: &[UserId]) -> Vec<UserId> {
        users.iter().copied().filter(|&u| self.is_online(u)).collect()
    }
    /// Everyone online now.
    fn online_users(&self) -> Vec<UserId>;
    /// The changes, once each; the first caller gets the queue (the
    /// presence role), later callers `None`.
    fn changes(&self) -> Option<mpsc::Receiver<PresenceChange>>;
}

/// Changes waiting for the presence role before new ones are dropped
/// (logged): a stalled announcer must not grow memory.
const CHANGES_QUEUE: usize = 65_536;

#[derive(Default)]
struct Entry {
    connections: usize,
    /// Bumped at every 1 → 0, so only the latest offline timer acts.
    generation: u64,
    /// When the last connection closed, while offline is pending.
    closed_at: Option<i64>,
}

struct Shared {
    users: Mutex<HashMap<UserId, Entry>>,
    changes: mpsc::Sender<PresenceChange>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Entry>> {
        // Updates are a few integer writes: poison is harmless.
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tell(&self, change: PresenceChange) {
        if self.changes.try_send(change).is_err() {
            tracing::warn!(?change, "presence change dropped: the presence role is not keeping up");
        }
    }
}

/// Presence within one process: connection counts per user, offline after
/// a grace timer.
pub struct LocalPresence {
    shared: Arc<Shared>,
    grace: Duration,
    receiver: Mutex<Option<mpsc::Receiver<PresenceChange>>>,
}

impl LocalPresence {
    pub fn new(grace: Duration) -> Self {
        let (changes, receiver) = mpsc::channel(CHANGES_QUEUE);
        LocalPresence {
            shared: Arc::new(Shared { users: Mutex::default(), changes }),
            grace,
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl Presence for LocalPresence {
    fn connection_opened(&self, user: UserId) {
        let came_online = {
            let mut users = self.shared.lock();
            let entry = users.entry(user).or_default();
            entry.connections += 1;
            // A reconnect within the grace period cancels the pending offline.
            entry.connections == 1 && entry.closed_at.take().is_none()
        };
        if came_online {
            self.shared.tell(PresenceChange::Online { user_id: user });
        }
    }

    fn connection_closed(&self, user: UserId) {
        let now = chinwag_proto::now_ms();
        let generation = {
            let mut users = self.shared.lock();
            let Some(entry) = users.get_mut(&user) else { return };
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections > 0 {
                return;
            }
            entry.generation += 1;
            entry.closed_at = Some(now);
            entry.generation
        };
        let shared = self.shared.clone();
        let grace = self.grace;
        // Outside a runtime (shutdown) there is nobody left to tell.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            tokio::time::sleep(grace).await;
            let closed_at = {
                let mut users = shared.lock();
                match users.get(&user) {
                    Some(e) if e.connections == 0 && e.generation == generation => {
                        let closed_at = e.closed_at.unwrap_or(now);
                        users.remove(&user);
                        closed_at
                    }
                    _ => return,
                }
            };
            shared.tell(PresenceChange::Offline { user_id: user, last_active_at: closed_at });
        });
    }

    fn is_online(&self, user: UserId) -> bool {
        self.shared.lock().contains_key(&user)
    }

    fn connections_of(&self, user: UserId) -> usize {
        self.shared.lock().get(&user).map_or(0, |e| e.connections)
    }

    fn online_users(&self) -> Vec<UserId> {
        self.shared.lock().keys().copied().collect()
    }

    fn changes(&self) -> Option<mpsc::Receiver<PresenceChange>> {
        self.receiver.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}
