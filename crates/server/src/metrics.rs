//! Prometheus metrics, held in an explicit registry passed through `App`
//! (no global recorder), rendered by `GET /metrics`.

use chinwag_store::CommitObserver;
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
    /// Edits, deletes and reaction changes stored.
    pub messages_changed: Counter,
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
    /// Open WebSockets, authenticated or not (each holds a task).
    pub sockets: Gauge,
    /// Tasks alive in the async runtime: a leak shows here first.
    pub runtime_tasks: Gauge,
    /// File descriptors the process holds.
    pub open_fds: Gauge,
    /// Resident memory of the process.
    pub resident_memory_bytes: Gauge,
    /// Content-Security-Policy violations browsers reported for the web
    /// client (an attempted injection, or a page the policy breaks).
    pub csp_violations: Counter,
    /// Push deliveries not tried because their target's breaker was open.
    pub push_breaker_skips: Counter,
    /// Events this node sent to other nodes over the bus (one per node an
    /// event reaches): what crosses the network.
    pub bus_routed_events: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("chinwag");
        let connections = Gauge::default();
        let users_online = Gauge::default();
        let messages_stored = Counter::default();
        let messages_changed = Counter::default();
        let messages_delivered = Counter::default();
        let slow_consumers_closed = Counter::default();
        let csp_violations = Counter::default();
        let push_breaker_skips = Counter::default();
        registry.register(
            "csp_violations",
            "Content-Security-Policy violations reported by browsers",
            csp_violations.clone(),
        );
        registry.register(
            "push_breaker_skips",
            "Push deliveries put off because their target kept timing out",
            push_breaker_skips.clone(),
        );
        let bus_routed_events = Gauge::default();
        registry.register(
            "bus_routed_events",
            "Events sent to other nodes over the bus, one per node reached",
            bus_routed_events.clone(),
        );
        let latency = || Histogram::new(exponential_buckets(0.000_1, 2.0, 18));
        let send_ack_seconds = latency();
        let store_commit_seconds = latency();
        let store_batch_jobs = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register("connections", "Authenticated WebSocket connections", connections.clone());
        registry.register("users_online", "Users with a connected device", users_online.clone());
        registry.register("messages_stored", "Messages durably stored", messages_stored.clone());
        registry.register("messages_changed", "Edits, deletes and reaction changes stored", messages_changed.clone());
        registry.register("messages_delivered", "Message frames written to sockets", messages_delivered.clone());
        registry.register(
            "slow_consumers_closed",
            "Sockets closed because their outbound queue overflowed or a write timed out",
            slow_consumers_closed.clone(),
        );
        registry.register(
            "send_ack_seconds",
            "Time from accepting a send to its durable ack",
            send_ack_seconds.clone(),
        );
        registry.register("store_batch_jobs", "Writes per store transaction (group commit)", store_batch_jobs.clone());
        registry.register(
            "store_commit_seconds",
            "Duration of one store transaction, fsync included",
            store_commit_seconds.clone(),
        );
        let sockets = Gauge::default();
        let runtime_tasks = Gauge::default();
        let open_fds = Gauge::default();
        let resident_memory_bytes = Gauge::default();
        registry.register("sockets", "Open WebSockets, authenticated or not", sockets.clone());
        registry.register("runtime_tasks", "Tasks alive in the async runtime", runtime_tasks.clone());
        registry.register("open_fds", "File descriptors held by the process", open_fds.clone());
        registry.register("resident_memory_bytes", "Resident memory of the process", resident_memory_bytes.clone());
        Metrics {
            registry,
            sockets,
            runtime_tasks,
            open_fds,
            resident_memory_bytes,
            csp_violations,
            push_breaker_skips,
            bus_routed_events,
            connections,
            users_online,
            messages_stored,
            messages_changed,
            messages_delivered,
            slow_consumers_closed,
            send_ack_seconds,
            store_batch_jobs,
            store_commit_seconds,
        }
    }
}

impl Metrics {
    /// Reads the process gauges; called at each scrape, so they cost
    /// nothing between scrapes.
    pub fn refresh_process(&self, sockets: usize, bus_routed_events: u64) {
        self.sockets.set(sockets as i64);
        self.bus_routed_events.set(bus_routed_events as i64);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.runtime_tasks.set(runtime.metrics().num_alive_tasks() as i64);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as i64);
        }
        // "VmRSS:   12345 kB" in the process's status.
        let resident_kib = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<i64>().ok()
        });
        if let Some(kib) = resident_kib {
            self.resident_memory_bytes.set(kib * 1024);
        }
    }

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
