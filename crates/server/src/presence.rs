//! The presence role: who is online, told once per change.
//!
//! A user is online while any of their devices holds an authenticated
//! socket. Only the first connection (0 → 1) announces `online`. When the
//! last one closes, `offline` waits `presence_offline_grace_ms`: a device
//! that reconnects within it (a flapping network, a page reload) causes no
//! announcement at all. Counts are this node's; a cluster backend will sum
//! them across gateways behind the same calls.

use crate::App;
use chinwag_bus::Event;
use chinwag_proto::{PresenceStatus, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
struct Entry {
    connections: usize,
    /// Bumped at every 1 → 0, so only the latest offline timer acts.
    generation: u64,
    /// When the last connection closed, while offline is pending.
    closed_at: Option<i64>,
}

/// Connection counts per user on this node.
#[derive(Default)]
pub struct Presence {
    users: Mutex<HashMap<UserId, Entry>>,
}

impl Presence {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Entry>> {
        // Updates are a few integer writes: poison is harmless.
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the user counts as online (connected, or offline pending).
    pub fn is_online(&self, user: UserId) -> bool {
        self.lock().contains_key(&user)
    }

    /// Users online now.
    pub fn online_users(&self) -> Vec<UserId> {
        self.lock().keys().copied().collect()
    }
}

impl App {
    /// Whether `user` has a connected device (or just lost their last one).
    pub fn is_online(&self, user: UserId) -> bool {
        self.presence.is_online(user)
    }

    /// A socket of `user` finished authenticating.
    pub fn connection_opened(self: &Arc<Self>, user: UserId) {
        self.metrics.connections.inc();
        let announce = {
            let mut users = self.presence.lock();
            let entry = users.entry(user).or_default();
            entry.connections += 1;
            // A reconnect within the grace period cancels the pending offline.
            entry.connections == 1 && entry.closed_at.take().is_none()
        };
        if announce {
            self.metrics.users_online.inc();
            let app = self.clone();
            tokio::spawn(
                async move { app.announce_presence(user, PresenceStatus::Online, chinwag_proto::now_ms()).await },
            );
        }
    }

    /// A socket of `user` closed.
    pub fn connection_closed(self: &Arc<Self>, user: UserId) {
        self.metrics.connections.dec();
        let now = chinwag_proto::now_ms();
        let generation = {
            let mut users = self.presence.lock();
            let Some(entry) = users.get_mut(&user) else { return };
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections > 0 {
                return;
            }
            entry.generation += 1;
            entry.closed_at = Some(now);
            entry.generation
        };
        let app = self.clone();
        let grace = self.config.presence_offline_grace();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let closed_at = {
                let mut users = app.presence.lock();
                match users.get(&user) {
                    Some(e) if e.connections == 0 && e.generation == generation => {
                        let closed_at = e.closed_at.unwrap_or(now);
                        users.remove(&user);
                        closed_at
                    }
                    _ => return,
                }
            };
            app.metrics.users_online.dec();
            if let Err(e) = app.store.set_last_active(user, closed_at).await {
                tracing::warn!(error = %e, user = user.0, "could not store last_active_at");
            }
            app.announce_presence(user, PresenceStatus::Offline, closed_at).await;
        });
    }

    async fn announce_presence(&self, user: UserId, status: PresenceStatus, last_active_at: i64) {
        match self.store.presence_audience(user).await {
            Ok(audience) => self
                .bus
                .publish(&audience, Event::Presence { user_id: user, status, last_active_at: Some(last_active_at) }),
            Err(e) => tracing::warn!(error = %e, user = user.0, "presence audience lookup failed"),
        }
    }

    /// Status and `last_active_at` of each existing user among `users` as
    /// `viewer` may see them (online users were last active now). Users
    /// whose presence is not the viewer's to see (no shared channel, not
    /// made a contact by them, or blocking the viewer) look offline and
    /// never seen.
    pub async fn presence_of(
        &self,
        viewer: UserId,
        users: &[UserId],
    ) -> Result<Vec<(UserId, PresenceStatus, Option<i64>)>, chinwag_store::StoreError> {
        let now = chinwag_proto::now_ms();
        let visible = self.store.presence_visible(viewer, users).await?;
        Ok(self
            .store
            .last_active(users)
            .await?
            .into_iter()
            .map(|(user, stored)| {
                if !visible.contains(&user) {
                    (user, PresenceStatus::Offline, None)
                } else if self.presence.is_online(user) {
                    (user, PresenceStatus::Online, Some(now))
                } else {
                    (user, PresenceStatus::Offline, stored)
                }
            })
            .collect())
    }

    /// Stores "last active now" for everyone online, so a crash or a stop
    /// loses at most one period of `last_active_at`.
    pub async fn persist_online_users(&self) {
        let now = chinwag_proto::now_ms();
        for user in self.presence.online_users() {
            if let Err(e) = self.store.set_last_active(user, now).await {
                tracing::warn!(error = %e, "could not store last_active_at");
                return;
            }
        }
    }
}
