//! Prometheus metrics, held in an explicit registry passed through `App`
//! (no global recorder), rendered by `GET /metrics`.

use chinwag_store::sqlite::CommitObserver;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Authenticated WebSocket connections.
    pub connections: Gauge,
    /// Users with at least one connected device.
    pub users_online: Gauge,
    pub messages_stored: Counter,
    /// `message` frames written to sockets.
    pub messages_delivered: Counter,
    /// Sockets closed because they could not keep up.
    pub slow_consumers_closed: Counter,
    /// From a `send` being accepted to its durable ack.
    pub send_ack_seconds: Histogram,
    /// Jobs per store transaction (group commit).
    pub store_batch_jobs: Histogram,
    /// Time of one store transaction including its fsync.
    pub store_commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("chinwag");
        let connections = Gauge::default();
        let users_online = Gauge::default();
        let messages_stored = Counter::default();
        let messages_delivered = Counter::default();
        let slow_consumers_closed = Counter::default();
        let latency = || Histogram::new(exponential_buckets(0.000_1, 2.0, 18));
        let send_ack_seconds = latency();
        let store_commit_seconds = latency();
        let store_batch_jobs = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register("connections", "Authenticated WebSocket connections", connections.clone());
        registry.register("users_online", "Users with a connected device", users_online.clone());
        registry.register("messages_stored", "Messages durably stored", messages_stored.clone());
        registry.register("messages_delivered", "Message frames written to sockets", messages_delivered.clone());
        registry.register(
            "slow_consumers_closed",
            "Sockets closed because their outbound queue overflowed or a write timed out",
            slow_consumers_closed.clone(),
        );
        registry.register("send_ack_seconds", "Time from accepting a send to its durable ack", send_ack_seconds.clone());
        registry.register("store_batch_jobs", "Writes per store transaction (group commit)", store_batch_jobs.clone());
        registry.register(
            "store_commit_seconds",
            "Duration of one store transaction, fsync included",
            store_commit_seconds.clone(),
        );
        Metrics {
            registry,
            connections,
            users_online,
            messages_stored,
            messages_delivered,
            slow_consumers_closed,
            send_ack_seconds,
            store_batch_jobs,
            store_commit_seconds,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// Feeds the store's group commits into the metrics.
pub struct CommitMetrics(pub Arc<Metrics>);

impl CommitObserver for CommitMetrics {
    fn batch_committed(&self, jobs: usize, commit_time: Duration) {
        self.0.store_batch_jobs.observe(jobs as f64);
        self.0.store_commit_seconds.observe(commit_time.as_secs_f64());
    }
}
