//! The deliverer: claims due notifications from the outbox (leased, so
//! two deliverers never send one row twice) and sends each on a task of
//! its own, so one slow target never holds up the others.
//!
//! - Every request has a deadline (`push_timeout_ms`).
//! - At most `GLOBAL_LIMIT` requests are under way at once, and at most
//!   `PER_HOST_LIMIT` to one host: a host that accepts connections and
//!   never answers ties up a few slots, never the pool.
//! - A breaker per host: after `BREAKER_THRESHOLD` failures in a row the
//!   host gets no requests for a cool-down (30 s, doubling while it keeps
//!   failing, at most 10 min); its notifications wait for it without
//!   spending their attempts. The first request after the cool-down tries
//!   the host again; a success closes the breaker.

use super::Notifier;
use super::{Notification, PushError, PushTarget};
use chinwag_store::OutboxItem;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// Deliveries tried before a notification is given up.
const MAX_ATTEMPTS: u32 = 10;
/// Longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Requests under way at once, over all hosts.
const GLOBAL_LIMIT: usize = 128;
/// Requests under way at once to one host.
const PER_HOST_LIMIT: usize = 8;
/// Failures in a row that open a host's breaker.
const BREAKER_THRESHOLD: u32 = 3;
/// First cool-down of an open breaker; doubles per re-opening.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);
const BREAKER_COOLDOWN_MAX: Duration = Duration::from_secs(600);

/// Each host's gate, and the deliveries under way.
pub(super) struct Deliveries {
    hosts: Mutex<HashMap<String, Host>>,
    global: Arc<Semaphore>,
    tasks: TaskTracker,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            hosts: Mutex::default(),
            global: Arc::new(Semaphore::new(GLOBAL_LIMIT)),
            tasks: TaskTracker::new(),
        }
    }
}

/// One host's share of the requests and its breaker.
struct Host {
    permits: Arc<Semaphore>,
    failures: u32,
    /// Times the breaker opened in a row (for the doubling cool-down).
    opened: u32,
    open_until: Option<Instant>,
}

impl Default for Host {
    fn default() -> Self {
        Host { permits: Arc::new(Semaphore::new(PER_HOST_LIMIT)), failures: 0, opened: 0, open_until: None }
    }
}

/// Whether a host may be tried now.
enum Gate {
    Go(OwnedSemaphorePermit),
    /// Its requests are all under way; try again next round.
    Busy,
    /// Its breaker is open until then.
    Open(Instant),
}

impl Deliveries {
    fn hosts(&self) -> MutexGuard<'_, HashMap<String, Host>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gate(&self, host: &str) -> Gate {
        let mut hosts = self.hosts();
        let entry = hosts.entry(host.to_owned()).or_default();
        if let Some(until) = entry.open_until {
            if Instant::now() < until {
                return Gate::Open(until);
            }
        }
        match entry.permits.clone().try_acquire_owned() {
            Ok(permit) => Gate::Go(permit),
            Err(_) => Gate::Busy,
        }
    }

    fn report(&self, host: &str, failed: bool) {
        let mut hosts = self.hosts();
        let Some(entry) = hosts.get_mut(host) else { return };
        if !failed {
            entry.failures = 0;
            entry.opened = 0;
            entry.open_until = None;
            return;
        }
        entry.failures += 1;
        if entry.failures >= BREAKER_THRESHOLD {
            let cooldown = BREAKER_COOLDOWN.saturating_mul(1 << entry.opened.min(5)).min(BREAKER_COOLDOWN_MAX);
            entry.open_until = Some(Instant::now() + cooldown);
            entry.opened += 1;
            entry.failures = 0;
            tracing::warn!(host, ?cooldown, "push target keeps failing; breaker open");
        }
    }

    /// Forgets hosts with nothing under way and nothing held against them.
    fn forget_quiet_hosts(&self) {
        self.hosts()
            .retain(|_, h| h.permits.available_permits() < PER_HOST_LIMIT || h.failures > 0 || h.open_until.is_some());
    }

    /// Waits (bounded) for deliveries under way at shutdown.
    pub(super) async fn finish(&self) {
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }
}

/// The host a target's requests go to (`host:port`), the breaker's key.
fn host_of(target: &PushTarget) -> Option<String> {
    let url = reqwest::Url::parse(target.url()).ok()?;
    Some(format!("{}:{}", url.host_str()?, url.port_or_known_default()?))
}

impl Notifier {
    /// Claims the notifications that are due and starts their deliveries,
    /// without waiting for them.
    pub(super) async fn deliver_due(self: &Arc<Self>) {
        let deliveries = &self.deliveries;
        deliveries.forget_quiet_hosts();
        let room = deliveries.global.available_permits() as u32;
        if room == 0 {
            return;
        }
        // Longer than any delivery may take, so a row is never sent twice;
        // short enough that a crashed deliverer's rows come back soon.
        let lease_ms = 2 * self.config.push_timeout_ms as i64 + 10_000;
        let due = match self.store.claim_due_pushes(chinwag_proto::now_ms(), room, lease_ms).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "claiming due pushes failed");
                return;
            }
        };
        for item in due {
            let target = match serde_json::from_str::<PushTarget>(&item.target) {
                Ok(target) => target,
                Err(e) => {
                    self.record(&item, Err(PushError::Gone(format!("unreadable target: {e}")))).await;
                    continue;
                }
            };
            let Some(host) = host_of(&target) else {
                self.record(&item, Err(PushError::Gone("target has no host".into()))).await;
                continue;
            };
            // Without room now, or while the host's breaker is open, the
            // row goes back, due when it may be tried, without spending a try.
            let (global, host_permit) = match (deliveries.gate(&host), deliveries.global.clone().try_acquire_owned()) {
                (Gate::Go(host_permit), Ok(global)) => (global, host_permit),
                (Gate::Open(until), _) => {
                    self.metrics.push_breaker_skips.inc();
                    let wait = until.saturating_duration_since(Instant::now()).as_millis() as i64;
                    self.put_back(&item, chinwag_proto::now_ms() + wait).await;
                    continue;
                }
                _ => {
                    self.put_back(&item, chinwag_proto::now_ms()).await;
                    continue;
                }
            };
            let notifier = self.clone();
            deliveries.tasks.spawn(async move {
                let timeout = Duration::from_millis(notifier.config.push_timeout_ms);
                let outcome = match tokio::time::timeout(timeout, notifier.deliver(&target, &item)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(PushError::Retry(format!("no answer within {timeout:?}"))),
                };
                notifier.deliveries.report(&host, matches!(outcome, Err(PushError::Retry(_))));
                notifier.record(&item, outcome).await;
                drop((host_permit, global));
            });
        }
    }

    /// Releases a claimed row untried, due at `due_at_ms`.
    async fn put_back(&self, item: &OutboxItem, due_at_ms: i64) {
        if let Err(e) = self.store.push_retry(item.id, item.attempts, due_at_ms).await {
            tracing::warn!(error = %e, "releasing a push failed");
        }
    }

    async fn deliver(&self, target: &PushTarget, item: &OutboxItem) -> Result<(), PushError> {
        let mut note: Notification =
            serde_json::from_str(&item.payload).map_err(|e| PushError::Gone(format!("unreadable payload: {e}")))?;
        note.count = item.count;
        let payload = serde_json::to_vec(&note).map_err(|e| PushError::Gone(e.to_string()))?;
        // Names are checked as they resolve; address literals here.
        let url = reqwest::Url::parse(target.url()).map_err(|e| PushError::Gone(e.to_string()))?;
        if let Some(ip) = super::addresses::literal_ip(&url).filter(|ip| !self.providers.addresses.allows(*ip)) {
            return Err(PushError::Gone(format!("{ip} is a private or local address")));
        }
        self.providers.pusher(target).push(target, &payload).await
    }

    /// Stores what became of one delivery.
    async fn record(&self, item: &OutboxItem, outcome: Result<(), PushError>) {
        let recorded = match outcome {
            Ok(()) => self.store.push_delivered(item.id, item.version).await,
            Err(PushError::Gone(why)) => {
                tracing::info!(device = item.device_id.0, %why, "push target gone; unregistered");
                self.store.remove_push_target(item.device_id).await
            }
            Err(PushError::Retry(why)) if item.attempts + 1 >= MAX_ATTEMPTS => {
                tracing::warn!(device = item.device_id.0, %why, "giving up a push notification");
                self.store.push_dropped(item.id).await
            }
            Err(PushError::Retry(why)) => {
                tracing::debug!(device = item.device_id.0, %why, attempts = item.attempts + 1, "push failed; will retry");
                let due = chinwag_proto::now_ms() + self.backoff(item.attempts).as_millis() as i64;
                self.store.push_retry(item.id, item.attempts + 1, due).await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "recording a push outcome failed");
        }
    }

    /// Exponential backoff, jittered between half and all of
    /// base × 2^attempts (so retries of many targets spread out).
    fn backoff(&self, attempts: u32) -> Duration {
        let cap = Duration::from_millis(self.config.push_retry_base_ms)
            .saturating_mul(1 << attempts.min(20))
            .min(MAX_BACKOFF);
        cap.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_keeps_failing_is_left_alone_for_a_while() {
        let deliveries = Deliveries::default();
        for _ in 0..BREAKER_THRESHOLD {
            assert!(matches!(deliveries.gate("h:1"), Gate::Go(_)));
            deliveries.report("h:1", true);
        }
        assert!(matches!(deliveries.gate("h:1"), Gate::Open(_)));
        assert!(matches!(deliveries.gate("other:1"), Gate::Go(_)), "other hosts are untouched");
        let held: Vec<_> = (0..PER_HOST_LIMIT).map(|_| deliveries.gate("busy:1")).collect();
        assert!(held.iter().all(|g| matches!(g, Gate::Go(_))));
        assert!(matches!(deliveries.gate("busy:1"), Gate::Busy), "a host's share is bounded");
    }
}
