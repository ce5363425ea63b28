//! The cluster backends of the shared seams, on a NATS cluster:
//!
//! - [`NatsBus`]: core NATS pub/sub, at most once. Each gateway listens on
//!   a subject of its own; a publisher looks up (in the [`Directory`]) which
//!   gateways hold the addressed users and sends each of them the event
//!   once, with the list of its users there. A group message to 100
//!   members crosses the network once per gateway that holds members.
//! - [`NatsPresence`] and [`NatsDiscovery`]: JetStream KV buckets, only for
//!   state that can be rebuilt: `chinwag_gateways` (each gateway's
//!   announcement, renewed every second, a lease that expires) and
//!   `chinwag_presence` (`<gateway>.<user>` → that user's sockets there).
//!   Every node watches both into its [`Directory`].
//! - [`NatsRateLimiter`]: one GCRA state per key in `chinwag_limits`,
//!   updated with compare-and-set, so api nodes share a budget.
//!
//! What must survive lives in the store, never here: a lost event is
//! found again from history (gap fill, channel head beacons), and a lost
//! connection to NATS closes this node's sockets so their clients resync.

mod directory;
mod local;
mod ratelimit;
#[cfg(test)]
mod tests;

pub use local::{LocalNats, LocalNatsError};
pub use ratelimit::NatsRateLimiter;

use crate::registry::Broadcasts;
use crate::{
    Bus, BusError, Delivery, Discovery, Event, EventSender, GatewayInfo, NodeEvent, NodeEventSender, Presence,
    PresenceChange, Registry, Subscription,
};
use async_nats::jetstream::kv;
use bytes::Bytes;
use chinwag_proto::UserId;
use directory::{presence_key, Directory};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Subject of the broadcasts every node hears.
const NODES_SUBJECT: &str = "chinwag.nodes";
/// Events waiting to be handed to the NATS client before new ones are
/// dropped (logged; history fills the hole).
const OUTBOX: usize = 65_536;
/// How often leases and graces are checked.
const TICK: Duration = Duration::from_millis(250);

/// How often each node writes its echo into both buckets (see `follow`).
const ECHO_EVERY: Duration = Duration::from_secs(1);

/// A watch that has not brought back this node's own echo for this long is
/// stuck (JetStream lost its consumer while a server died and the client
/// keeps waiting): it is started over.
const WATCH_STALL: Duration = Duration::from_secs(4);

/// This node's echo key: `=` is in no node name, so no gateway or presence
/// entry has such a key.
fn echo_key(node: &str) -> String {
    format!("echo={node}")
}

fn gateway_subject(gateway: &str) -> String {
    format!("chinwag.gw.{gateway}")
}

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// This node's name: its gateway id and presence key prefix (letters,
    /// digits, `-` and `_`).
    pub node: String,
    /// How long a gateway's announcement lives; its sockets stop counting
    /// that long after it last announced (it announces every second).
    pub lease_ttl: Duration,
    /// How long a user with no socket left still counts as online.
    pub offline_grace: Duration,
    /// This node runs the presence role: it campaigns to be the one node
    /// that tells presence changes.
    pub lead_presence: bool,
}

/// Whether `name` can be a node name (a NATS subject token and KV key).
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the node's backends share: the connection, the directory and the
/// buckets.
struct Shared {
    client: async_nats::Client,
    directory: Arc<Directory>,
    registry: Arc<Registry>,
    broadcasts: Arc<Broadcasts>,
    /// False while the connection to NATS is down: events are being lost,
    /// so new subscriptions are refused.
    connected: AtomicBool,
    presence_kv: kv::Store,
    gateways_kv: kv::Store,
    leases_kv: kv::Store,
    outbox: mpsc::Sender<(String, Bytes)>,
    /// Events this node sent to other gateways (one per gateway reached).
    routed: AtomicU64,
    changes: Mutex<Option<mpsc::Receiver<PresenceChange>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(tokio::spawn(task));
    }
}

/// One node's membership of the cluster; it hands out the backends.
/// Dropping it stops its tasks; [`NatsCluster::close`] first removes this
/// node's entries so its users go offline at once.
pub struct NatsCluster {
    shared: Arc<Shared>,
    limits_kv: kv::Store,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("{what}: {e}"))
}

impl NatsCluster {
    /// Connects to the servers (comma-separated `nats://host:port` URLs),
    /// creates the buckets if needed, and starts following the cluster.
    /// Waits up to 30 s for servers that are starting.
    pub async fn connect(urls: &str, options: NatsOptions) -> Result<NatsCluster, BusError> {
        if !valid_node_name(&options.node) {
            return Err(BusError::Unavailable(format!("invalid node name {:?}", options.node)));
        }
        let addrs: Vec<async_nats::ServerAddr> = urls
            .split(',')
            .map(|u| u.trim().parse().map_err(|e| unavailable(&format!("bus URL {u:?}"), e)))
            .collect::<Result<_, _>>()?;
        let (events_tx, mut events_rx) = mpsc::channel::<async_nats::Event>(64);
        let client = async_nats::ConnectOptions::new()
            .name(format!("chinwag {}", options.node))
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(5)))
            .max_reconnects(None)
            // Another server of the cluster is usually up: go there fast.
            .reconnect_delay_callback(|attempts| {
                let base = (attempts as u64 * 100).min(1_000);
                Duration::from_millis(base + rand::random::<u64>() % 100)
            })
            .subscription_capacity(OUTBOX)
            .event_callback(move |event| {
                let events_tx = events_tx.clone();
                async move {
                    let _ = events_tx.try_send(event);
                }
            })
            .retry_on_initial_connect()
            .connect(addrs)
            .await
            .map_err(|e| unavailable("connecting to NATS", e))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() > deadline {
                return Err(BusError::Unavailable("no NATS server answered within 30 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let js = async_nats::jetstream::new(client.clone());
        let replicas = if client.server_info().cluster.is_some() { 3 } else { 1 };
        let bucket = |name: &str, max_age: Duration| kv::Config {
            bucket: name.to_owned(),
            history: 1,
            max_age,
            num_replicas: replicas,
            ..Default::default()
        };
        let presence_kv = open_bucket(&js, bucket("chinwag_presence", Duration::ZERO), deadline).await?;
        let gateways_kv = open_bucket(&js, bucket("chinwag_gateways", options.lease_ttl), deadline).await?;
        let leases_kv = open_bucket(&js, bucket("chinwag_leases", options.lease_ttl), deadline).await?;
        let limits_kv = open_bucket(&js, bucket("chinwag_limits", Duration::from_secs(3600)), deadline).await?;
        let (directory, changes) = Directory::new(&options.node, options.lease_ttl, options.offline_grace);
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
        let shared = Arc::new(Shared {
            client: client.clone(),
            directory: Arc::new(directory),
            registry: Arc::default(),
            broadcasts: Arc::default(),
            connected: AtomicBool::new(true),
            presence_kv,
            gateways_kv,
            leases_kv,
            outbox,
            routed: AtomicU64::new(0),
            changes: Mutex::new(Some(changes)),
            tasks: Mutex::default(),
        });
        // Subscribed before anyone can address this node.
        let inbound = client
            .subscribe(gateway_subject(&options.node))
            .await
            .map_err(|e| unavailable("subscribing to NATS", e))?;
        let nodes = client.subscribe(NODES_SUBJECT).await.map_err(|e| unavailable("subscribing to NATS", e))?;
        client.flush().await.map_err(|e| unavailable("subscribing to NATS", e))?;
        let weak = Arc::downgrade(&shared);
        shared.spawn(async move {
            while let Some(event) = events_rx.recv().await {
                let Some(shared) = weak.upgrade() else { return };
                connection_event(&shared, event);
            }
        });
        shared.spawn(send_outbox(client.clone(), outbox_rx));
        shared.spawn(receive(shared.clone(), inbound, nodes));
        shared.spawn(watch_gateways(shared.clone()));
        shared.spawn(watch_presence(shared.clone()));
        shared.spawn(write_directory(shared.clone()));
        shared.spawn(echo(shared.clone()));
        shared.spawn(tick(shared.clone()));
        if options.lead_presence {
            shared.spawn(lead_presence(shared.clone()));
        }
        Ok(NatsCluster { shared, limits_kv })
    }

    pub fn bus(&self) -> NatsBus {
        NatsBus { shared: self.shared.clone() }
    }

    pub fn presence(&self) -> NatsPresence {
        NatsPresence { shared: self.shared.clone() }
    }

    pub fn discovery(&self) -> NatsDiscovery {
        NatsDiscovery { shared: self.shared.clone() }
    }

    /// The shared budgets; `fallback` answers while NATS cannot.
    pub fn rate_limiter(&self, fallback: Arc<dyn crate::RateLimiter>) -> NatsRateLimiter {
        NatsRateLimiter::new(self.limits_kv.clone(), fallback)
    }

    /// Waits until this node tells presence changes (it leads presence and
    /// has loaded the directory); false if that did not happen in `wait`.
    pub async fn until_telling(&self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.shared.directory.telling() {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Removes this node's presence entries and announcement (its users go
    /// offline now, not a lease later), bounded by `wait`.
    pub async fn close(&self, wait: Duration) {
        let shared = &self.shared;
        let directory = &shared.directory;
        // Every entry this node has or may have written: its users, and
        // those whose last write is still waiting.
        let mut users: std::collections::BTreeSet<UserId> = directory.local_users().into_iter().collect();
        users.extend(directory.take_writes().counts.into_keys());
        let _ = tokio::time::timeout(wait, async {
            let failed = write_counts(&shared.presence_kv, &directory.me, users.into_iter().map(|u| (u, 0))).await;
            if !failed.is_empty() {
                tracing::debug!(left = failed.len(), "could not delete every presence entry");
            }
            let _ = shared.gateways_kv.delete(&*directory.me).await;
            let _ = shared.presence_kv.delete(&echo_key(&directory.me)).await;
            let _ = shared.client.flush().await;
        })
        .await;
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for task in self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }
}

/// Creates a bucket, or opens it when it exists; retries while JetStream
/// is electing its leaders (a cluster that is starting).
async fn open_bucket(
    js: &async_nats::jetstream::Context,
    config: kv::Config,
    deadline: tokio::time::Instant,
) -> Result<kv::Store, BusError> {
    loop {
        let error = match js.create_key_value(config.clone()).await {
            Ok(store) => return Ok(store),
            Err(e) => match js.get_key_value(&config.bucket).await {
                Ok(store) => return Ok(store),
                Err(_) => e,
            },
        };
        if tokio::time::Instant::now() > deadline {
            return Err(unavailable(&format!("opening bucket {}", config.bucket), error));
        }
        tracing::debug!(error = %error, bucket = %config.bucket, "waiting for JetStream");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Losing the connection loses events: every socket of this node is
/// closed (its client resyncs, through another gateway if need be) and
/// broadcast followers start over (member caches are dropped).
fn connection_event(shared: &Shared, event: async_nats::Event) {
    match event {
        async_nats::Event::Disconnected => {
            tracing::warn!("lost the connection to NATS: closing this node's sockets so their clients resync");
            shared.connected.store(false, Ordering::SeqCst);
            shared.registry.close_all();
            shared.broadcasts.close_all();
        }
        async_nats::Event::Connected => {
            tracing::info!("connected to NATS");
            shared.connected.store(true, Ordering::SeqCst);
        }
        async_nats::Event::SlowConsumer(_) => {
            tracing::warn!("this node fell behind its NATS subscription: closing its sockets so they resync");
            shared.registry.close_all();
            shared.broadcasts.close_all();
        }
        other => tracing::info!(event = %other, "NATS"),
    }
}

async fn send_outbox(client: async_nats::Client, mut outbox: mpsc::Receiver<(String, Bytes)>) {
    while let Some((subject, payload)) = outbox.recv().await {
        if let Err(e) = client.publish(subject, payload).await {
            tracing::warn!(error = %e, "could not publish an event; history fills the hole");
        }
    }
}

/// An event for some users of one gateway, as it crosses the network.
#[derive(serde::Deserialize)]
struct Routed {
    users: Vec<UserId>,
    event: Event,
}

fn routed_payload(users: &[UserId], event_json: &[u8]) -> Bytes {
    let users = serde_json::to_vec(users).unwrap_or_default();
    let mut payload = Vec::with_capacity(users.len() + event_json.len() + 20);
    payload.extend_from_slice(b"{\"users\":");
    payload.extend_from_slice(&users);
    payload.extend_from_slice(b",\"event\":");
    payload.extend_from_slice(event_json);
    payload.push(b'}');
    Bytes::from(payload)
}

async fn receive(shared: Arc<Shared>, mut inbound: async_nats::Subscriber, mut nodes: async_nats::Subscriber) {
    loop {
        tokio::select! {
            Some(message) = inbound.next() => match serde_json::from_slice::<Routed>(&message.payload) {
                Ok(routed) => shared.registry.deliver(&routed.users, Arc::new(Delivery::new(routed.event))),
                Err(e) => tracing::warn!(error = %e, "undecodable event from the bus"),
            },
            Some(message) = nodes.next() => match serde_json::from_slice::<NodeEvent>(&message.payload) {
                Ok(event) => shared.broadcasts.deliver(&event),
                Err(e) => tracing::warn!(error = %e, "undecodable broadcast from the bus"),
            },
            else => return,
        }
    }
}

/// Follows a bucket for ever, starting over after errors (a watch
/// replays the current values first, so nothing is missed) and when it
/// stalls: every node writes its echo into the bucket every second, so a
/// working watch brings ours back within `WATCH_STALL`. `heard` is told of
/// each echo; other nodes' echoes are skipped.
async fn follow(bucket: &kv::Store, me: &str, heard: impl Fn(), mut apply: impl FnMut(&kv::Entry)) {
    let echo = echo_key(me);
    loop {
        match bucket.watch_all().await {
            Ok(mut watch) => loop {
                match tokio::time::timeout(WATCH_STALL, watch.next()).await {
                    Ok(Some(Ok(entry))) if entry.key == echo => heard(),
                    Ok(Some(Ok(entry))) if entry.key.starts_with("echo=") => {}
                    Ok(Some(Ok(entry))) => apply(&entry),
                    Ok(Some(Err(e))) => {
                        tracing::debug!(error = %e, bucket = %bucket.name, "watch interrupted");
                        break;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        tracing::info!(bucket = %bucket.name, "watch stalled; starting it over");
                        break;
                    }
                }
            },
            Err(e) => tracing::debug!(error = %e, bucket = %bucket.name, "could not watch"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes this node's echo into both buckets, every `ECHO_EVERY`.
async fn echo(shared: Arc<Shared>) {
    let key = echo_key(&shared.directory.me);
    let mut every = tokio::time::interval(ECHO_EVERY);
    loop {
        every.tick().await;
        let stamp = Bytes::from(chinwag_proto::now_ms().to_string());
        for bucket in [&shared.gateways_kv, &shared.presence_kv] {
            if let Err(e) = bucket.put(&key, stamp.clone()).await {
                tracing::debug!(error = %e, bucket = %bucket.name, "could not write this node's echo");
            }
        }
    }
}

async fn watch_gateways(shared: Arc<Shared>) {
    let directory = shared.directory.clone();
    let me = directory.me.clone();
    follow(
        &shared.gateways_kv,
        &me,
        || directory.gateways_heard(),
        |entry| {
            let info = match entry.operation {
                kv::Operation::Put => serde_json::from_slice::<GatewayInfo>(&entry.value).ok(),
                kv::Operation::Delete | kv::Operation::Purge => None,
            };
            directory.gateway_seen(&entry.key, info);
        },
    )
    .await;
}

async fn watch_presence(shared: Arc<Shared>) {
    let directory = shared.directory.clone();
    // An empty bucket replays nothing: loaded at once.
    if shared.presence_kv.status().await.is_ok_and(|status| status.values() == 0) {
        directory.loaded.store(true, Ordering::SeqCst);
    }
    follow(
        &shared.presence_kv,
        &directory.me.clone(),
        || {},
        |entry| {
            if let Some((gateway, user)) = entry.key.rsplit_once('.') {
                if let Ok(user) = user.parse::<i64>() {
                    let count = match entry.operation {
                        kv::Operation::Put => std::str::from_utf8(&entry.value).ok().and_then(|v| v.parse().ok()),
                        kv::Operation::Delete | kv::Operation::Purge => None,
                    };
                    directory.presence_seen(gateway, UserId(user), count);
                }
            }
            if entry.delta == 0 {
                directory.loaded.store(true, Ordering::SeqCst);
            }
        },
    )
    .await;
}

/// Writes this node's entries (coalesced) as they change.
async fn write_directory(shared: Arc<Shared>) {
    let directory = shared.directory.clone();
    loop {
        directory.writes_ready.notified().await;
        let writes = directory.take_writes();
        if writes.is_empty() {
            continue;
        }
        let mut failed = directory::Writes::default();
        if let Some(info) = &writes.announce {
            let value = Bytes::from(serde_json::to_vec(info).unwrap_or_default());
            if let Err(e) = shared.gateways_kv.put(&*directory.me, value).await {
                tracing::debug!(error = %e, "could not announce this gateway");
                failed.announce = Some(info.clone());
            }
        }
        for (user, count) in write_counts(&shared.presence_kv, &directory.me, writes.counts).await {
            failed.counts.insert(user, count);
        }
        for key in &writes.deletes {
            if let Err(e) = shared.presence_kv.delete(key).await {
                tracing::debug!(error = %e, "could not delete a dead gateway's entry");
                failed.deletes.push(key.clone());
            }
        }
        if !failed.is_empty() {
            directory.requeue(failed);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Writes `gateway`'s socket count of each user (0 deletes the entry), 64
/// at a time; returns those that failed.
async fn write_counts(
    bucket: &kv::Store,
    gateway: &str,
    counts: impl IntoIterator<Item = (UserId, u32)>,
) -> Vec<(UserId, u32)> {
    let writes = counts.into_iter().map(|(user, count)| {
        let key = presence_key(gateway, user);
        async move {
            let written = if count == 0 {
                bucket.delete(&key).await.map_err(|e| e.to_string())
            } else {
                bucket.put(&key, Bytes::from(count.to_string())).await.map(drop).map_err(|e| e.to_string())
            };
            written.map_err(|e| (user, count, e))
        }
    });
    let results: Vec<_> = futures_util::stream::iter(writes).buffer_unordered(64).collect().await;
    results
        .into_iter()
        .filter_map(Result::err)
        .map(|(user, count, e)| {
            tracing::debug!(error = %e, "could not write a presence entry");
            (user, count)
        })
        .collect()
}

async fn tick(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(TICK);
    loop {
        every.tick().await;
        let dead = shared.directory.tick();
        // One node cleans up after dead gateways: the presence leader.
        if !dead.is_empty() && shared.directory.leader.load(Ordering::Relaxed) {
            shared.directory.delete_later(dead);
        }
    }
}

/// Holds the presence leader's lease while this node runs the presence
/// role: only the leader tells changes, so each is told once.
async fn lead_presence(shared: Arc<Shared>) {
    const KEY: &str = "presence";
    let directory = &shared.directory;
    let me = Bytes::from(directory.me.to_string());
    let mut revision: Option<u64> = None;
    // Renewed well within the lease's time to live.
    let mut every = tokio::time::interval(directory.ttl() / 4);
    loop {
        every.tick().await;
        revision = match revision {
            Some(rev) => shared.leases_kv.update(KEY, me.clone(), rev).await.ok(),
            None => shared.leases_kv.create(KEY, me.clone()).await.ok(),
        };
        let leading = revision.is_some();
        if leading != directory.leader.swap(leading, Ordering::SeqCst) {
            tracing::info!(leading, "presence leadership changed");
        }
    }
}

/// Events over NATS; see the module documentation.
pub struct NatsBus {
    shared: Arc<Shared>,
}

impl NatsBus {
    fn send(&self, subject: String, payload: Bytes) {
        if self.shared.outbox.try_send((subject, payload)).is_err() {
            tracing::warn!("the bus outbox is full: an event is dropped; history fills the hole");
        }
    }
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    fn publish(&self, users: &[UserId], event: Event) {
        let routes = self.shared.directory.route(users);
        if !routes.is_empty() {
            match serde_json::to_vec(&event) {
                Ok(event_json) => {
                    for (gateway, users) in &routes {
                        self.send(gateway_subject(gateway), routed_payload(users, &event_json));
                    }
                    self.shared.routed.fetch_add(routes.len() as u64, Ordering::Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "could not encode an event"),
            }
        }
        self.shared.registry.deliver(users, Arc::new(Delivery::new(event)));
    }

    async fn subscribe(&self, user: UserId, queue: EventSender) -> Result<Subscription, BusError> {
        if !self.shared.connected.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        Ok(self.shared.registry.add(user, queue))
    }

    fn broadcast(&self, event: NodeEvent) {
        match serde_json::to_vec(&event) {
            Ok(payload) => self.send(NODES_SUBJECT.to_owned(), Bytes::from(payload)),
            Err(e) => tracing::error!(error = %e, "could not encode a broadcast"),
        }
    }

    async fn subscribe_broadcasts(&self, queue: NodeEventSender) -> Result<Subscription, BusError> {
        if !self.shared.connected.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        Ok(self.shared.broadcasts.add(queue))
    }

    fn local_registry(&self) -> &Arc<Registry> {
        &self.shared.registry
    }

    fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    fn routed_events(&self) -> u64 {
        self.shared.routed.load(Ordering::Relaxed)
    }

    fn may_lose_events(&self) -> bool {
        true
    }
}

/// Presence counted over every gateway of the cluster.
pub struct NatsPresence {
    shared: Arc<Shared>,
}

impl Presence for NatsPresence {
    fn connection_opened(&self, user: UserId) {
        self.shared.directory.local_change(user, true);
    }

    fn connection_closed(&self, user: UserId) {
        self.shared.directory.local_change(user, false);
    }

    fn is_online(&self, user: UserId) -> bool {
        self.shared.directory.is_online(user)
    }

    fn connections_of(&self, user: UserId) -> usize {
        self.shared.directory.connections_of(user)
    }

    fn online_users(&self) -> Vec<UserId> {
        self.shared.directory.online_users()
    }

    /// Told only on the presence leader (`lead_presence` nodes campaign):
    /// of all presence nodes, one tells each change.
    fn changes(&self) -> Option<mpsc::Receiver<PresenceChange>> {
        self.shared.changes.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Discovery over the `chinwag_gateways` bucket.
pub struct NatsDiscovery {
    shared: Arc<Shared>,
}

impl Discovery for NatsDiscovery {
    fn announce(&self, info: GatewayInfo) {
        self.shared.directory.announce(info);
    }

    fn live(&self) -> Vec<GatewayInfo> {
        self.shared.directory.live_gateways()
    }
}
