//! The presence role: tells each change of who is online (from the
//! `Presence` seam, once per change cluster-wide) to those who may see it,
//! keeps `last_active_at`, and answers presence queries under the privacy
//! rule (fellow members and accepted contacts only).

use crate::metrics::Metrics;
use chinwag_bus::{Bus, Event, Presence, PresenceChange};
use chinwag_proto::{PresenceStatus, UserId};
use chinwag_store::Store;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The presence service, over the `Presence` seam (who is connected), the
/// store (who may see whom, `last_active_at`) and the bus.
pub struct PresenceService {
    /// Gateways tell it of each connection they open and close.
    pub seam: Arc<dyn Presence>,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
}

impl PresenceService {
    pub fn new(seam: Arc<dyn Presence>, store: Arc<dyn Store>, bus: Arc<dyn Bus>, metrics: Arc<Metrics>) -> Self {
        PresenceService { seam, store, bus, metrics }
    }

    /// Announces and records presence changes until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut changes) = self.seam.changes() else { return };
        loop {
            let change = tokio::select! {
                change = changes.recv() => change,
                _ = shutdown.cancelled() => return,
            };
            let Some(change) = change else { return };
            match change {
                PresenceChange::Online { user_id } => {
                    self.metrics.users_online.inc();
                    self.announce_presence(user_id, PresenceStatus::Online, chinwag_proto::now_ms()).await;
                }
                PresenceChange::Offline { user_id, last_active_at } => {
                    self.metrics.users_online.dec();
                    if let Err(e) = self.store.set_last_active(&[user_id], last_active_at).await {
                        tracing::warn!(error = %e, user = user_id.0, "could not store last_active_at");
                    }
                    self.announce_presence(user_id, PresenceStatus::Offline, last_active_at).await;
                }
            }
        }
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
        let online = self.seam.online_among(users);
        Ok(self
            .store
            .last_active(users)
            .await?
            .into_iter()
            .map(|(user, stored)| {
                if !visible.contains(&user) {
                    (user, PresenceStatus::Offline, None)
                } else if online.contains(&user) {
                    (user, PresenceStatus::Online, Some(now))
                } else {
                    (user, PresenceStatus::Offline, stored)
                }
            })
            .collect())
    }

    /// Stores "last active now" for everyone online (one write), so a
    /// crash or a stop loses at most one period of `last_active_at`.
    pub async fn persist_online_users(&self) {
        let online = self.seam.online_users();
        if online.is_empty() {
            return;
        }
        if let Err(e) = self.store.set_last_active(&online, chinwag_proto::now_ms()).await {
            tracing::warn!(error = %e, "could not store last_active_at");
        }
    }
}
