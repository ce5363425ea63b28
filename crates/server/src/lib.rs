//! chinwag's roles over the seams (`Store`, `Bus`, `Presence`,
//! `Discovery`, `RateLimiter`); backends are chosen by the binary, never
//! here. `serve` starts the roles this process runs (`config::Roles`).
//!
//! - `api`: the HTTP API role; request handlers and the route table.
//! - `gateway`: the WebSocket role; one task per socket, in-order cursors.
//! - `chat`: the messaging service both share: send, read markers, typing.
//! - `channels`: channel lifecycle: direct channels, groups, members, invitations.
//! - `presence`: the presence role: announces changes, answers queries privately.
//! - `notifier`: push notifications: outbox queueing, claimed delivery, providers.
//! - `admin`: the operator's API on a Unix socket in the data directory.
//! - `auth`: password hashing and tokens.
//! - `config`: every setting, declared once.
//! - `error`: the one place failures become HTTP answers.
//! - `http`: the HTTP/1.1 accept loop and its limits.
//! - `guarded_io`: write-stall timeout and pre-auth read budget of a connection.
//! - `slots`: connections per client address (IPv6 by /64).
//! - `members`: the member-list cache for read markers and typing.
//! - `metrics`: the Prometheus registry.
//! - `ratelimit`: this node's per-user limits and known login addresses.
//! - `tls`: optional rustls listener.
//! - `web`: the embedded web client and its security headers.

pub mod admin;
pub mod api;
mod auth;
mod channels;
mod chat;
pub mod config;
mod error;
pub mod gateway;
mod guarded_io;
mod http;
mod members;
pub mod metrics;
pub mod notifier;
mod presence;
mod ratelimit;
mod slots;
pub mod tls;
mod web;

pub use config::{Roles, ServerConfig};
pub use error::ApiError;

use chinwag_bus::{Bus, Discovery, GatewayInfo};
use chinwag_bus::{Limit, RateLimiter};
use chinwag_proto::{ChannelId, UserId};
use chinwag_store::Store;
use members::MemberCache;
use metrics::Metrics;
use ratelimit::{KnownAddresses, UserLimiter};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The handles every role works with, passed explicitly (no globals).
pub struct App {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub discovery: Arc<dyn Discovery>,
    pub metrics: Arc<Metrics>,
    pub config: ServerConfig,
    /// This process's name in the discovery registry.
    pub gateway_id: String,
    members: MemberCache,
    presence: Arc<dyn chinwag_bus::Presence>,
    notifier: notifier::Notifier,
    send_limiter: UserLimiter,
    typing_limiter: UserLimiter,
    request_limiter: UserLimiter,
    /// Budgets of the limits that protect accounts (shared in a cluster).
    account_limits: Arc<dyn RateLimiter>,
    /// Where each account logged in from (exempt from the account ceiling).
    login_addresses: KnownAddresses,
    /// Direct channel of each ordered pair, so `to_user_id` sends skip the
    /// store lookup (a pair's direct channel never changes).
    direct_channels: Mutex<HashMap<(UserId, UserId), ChannelId>>,
    /// Cancelled when the server shuts down; connections close "going away".
    pub shutdown: CancellationToken,
    /// Every WebSocket connection task, so shutdown can wait for them (and
    /// its length is the number of open sockets).
    pub connections: TaskTracker,
    /// Open sockets per client address.
    ip_slots: slots::IpSlots,
    /// Sockets per client address that have not authenticated yet.
    unauthenticated_slots: slots::IpSlots,
}

/// The backends a server runs on, chosen by whoever starts it.
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub discovery: Arc<dyn Discovery>,
    pub presence: Arc<dyn chinwag_bus::Presence>,
    /// Budgets of login and signup limits.
    pub account_limits: Arc<dyn RateLimiter>,
    /// Shared with the store's commit observer, hence created first.
    pub metrics: Arc<Metrics>,
    /// Push providers (with the keys the binary keeps in the data dir).
    pub notifier: notifier::Notifier,
}

impl App {
    /// Checks one account-protecting limit.
    async fn check_limit(
        &self,
        name: &'static str,
        per_minute: u32,
        key: &str,
    ) -> Result<(), chinwag_proto::WireError> {
        let limit = Limit { name, per_minute, burst: per_minute };
        self.account_limits
            .check(limit, key)
            .await
            .map_err(|wait| chinwag_proto::WireError::rate_limited(wait.as_millis().max(1) as u64))
    }

    /// Signups are limited per client address.
    pub async fn check_signup(&self, ip: std::net::IpAddr) -> Result<(), chinwag_proto::WireError> {
        self.check_limit("signup_per_ip", self.config.signup_rate_per_ip_per_min, &ip.to_string()).await
    }

    /// Requests that cost the store work (authenticated HTTP calls, `read`
    /// and `sync` frames) are limited per user, so one client cannot
    /// flood the store's threads that everyone shares.
    pub fn check_request(&self, user: UserId) -> Result<(), chinwag_proto::WireError> {
        self.request_limiter.check(&user)
    }

    /// Logins are limited per client address, per account and address
    /// (a guesser's budget), and per account from all addresses together
    /// (many guessers), except from addresses the account logged in from
    /// before: someone else's failures never cost the owner their login.
    pub async fn check_login(&self, ip: std::net::IpAddr, username: &str) -> Result<(), chinwag_proto::WireError> {
        let account = username.to_lowercase();
        let config = &self.config;
        self.check_limit("login_per_ip", config.login_rate_per_ip_per_min, &ip.to_string()).await?;
        let pair = format!("{account} {ip}");
        self.check_limit("login_per_account_ip", config.login_rate_per_account_per_ip_per_min, &pair).await?;
        if !self.login_addresses.contains(&account, ip) {
            self.check_limit("login_per_account", config.login_rate_per_account_per_min, &account).await?;
        }
        Ok(())
    }

    /// A login with the right password from `ip`.
    pub fn login_succeeded(&self, ip: std::net::IpAddr, username: &str) {
        self.login_addresses.remember(&username.to_lowercase(), ip);
    }

    pub fn new(backends: Backends, config: ServerConfig) -> Arc<App> {
        let Backends { store, bus, discovery, presence, account_limits, metrics, notifier } = backends;
        Arc::new(App {
            send_limiter: UserLimiter::new(config.send_rate_per_s, config.send_burst),
            typing_limiter: UserLimiter::new(config.typing_rate_per_s, config.typing_rate_per_s),
            request_limiter: UserLimiter::new(config.request_rate_per_s, config.request_burst),
            account_limits,
            login_addresses: KnownAddresses::default(),
            store,
            bus,
            discovery,
            metrics,
            gateway_id: format!("gateway-{}-{}", std::process::id(), chinwag_proto::now_ms()),
            config,
            members: MemberCache::default(),
            presence,
            notifier,
            direct_channels: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
            ip_slots: slots::IpSlots::default(),
            unauthenticated_slots: slots::IpSlots::default(),
        })
    }
}

/// Where the public API listens: plain TCP, or TLS over it.
pub enum Listening {
    Plain(TcpListener),
    Tls(tls::TlsListener),
}

impl Listening {
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        match self {
            Listening::Plain(tcp) => tcp.local_addr(),
            Listening::Tls(tls) => Ok(tls.local_addr()),
        }
    }
}

/// Serves the API and the gateway on `listener` until `app.shutdown` is
/// cancelled, then closes every socket and waits (bounded) for them.
pub async fn serve(listener: Listening, app: Arc<App>) {
    let router = api::router(app.clone());
    let roles = app.config.roles;
    let housekeeping = tokio::spawn(housekeeping(app.clone()));
    let broadcasts = tokio::spawn(follow_broadcasts(app.clone()));
    // Roles run only where they were asked for.
    let presence = roles.presence.then(|| tokio::spawn(app.clone().run_presence()));
    let notifier = tokio::spawn(app.clone().run_notifier());
    use axum::serve::ListenerExt;
    match listener {
        // Small frames must leave at once: Nagle's algorithm with delayed
        // ACKs would hold acks and deliveries back by ~40 ms.
        Listening::Plain(tcp) => {
            let tcp = tcp.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
            });
            http::serve(tcp, router, &app).await
        }
        // The TLS accept loop sets TCP_NODELAY before the handshake.
        Listening::Tls(tls) => http::serve(tls, router, &app).await,
    }
    // Whatever ended serving, every role stops now.
    app.shutdown.cancel();
    housekeeping.abort();
    broadcasts.abort();
    if let Some(presence) = presence {
        presence.abort();
    }
    let _ = notifier.await;
    app.connections.close();
    if tokio::time::timeout(Duration::from_secs(10), app.connections.wait()).await.is_err() {
        tracing::warn!("connections did not close within 10 s");
    }
    app.persist_online_users().await;
}

/// Serves only `GET /metrics` on `listener` (`metrics_listen`), so the
/// metrics need not be public, until the server shuts down.
pub async fn serve_metrics(listener: TcpListener, app: Arc<App>) {
    let router = api::metrics_router().with_state(app.clone());
    let shutdown = app.shutdown.clone();
    if let Err(e) =
        axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
    {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

/// Applies what other nodes broadcast (cache invalidations). If the bus
/// drops this node's queue (it fell behind), every cached member list is
/// forgotten and the node subscribes again.
async fn follow_broadcasts(app: Arc<App>) {
    loop {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
        let _subscription = match app.bus.subscribe_broadcasts(tx).await {
            Ok(subscription) => subscription,
            Err(e) => {
                tracing::warn!(error = %e, "could not follow broadcasts; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = rx.recv().await {
            match event {
                chinwag_bus::NodeEvent::MembersChanged { channel_id } => app.members.invalidate(channel_id),
            }
        }
        app.members.clear();
    }
}

/// How often this gateway re-announces its load to discovery.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// Entries not re-announced within this time are dropped from discovery.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(10);

/// Periodic upkeep: discovery announcements, bounded memory, and
/// `last_active_at` of online users.
async fn housekeeping(app: Arc<App>) {
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        // Only gateways are handed out to clients.
        if app.config.roles.gateway {
            app.discovery.announce(GatewayInfo {
                id: app.gateway_id.clone(),
                ws_url: app.config.public_ws_url.clone(),
                load: app.bus.local_registry().connection_count() as u64,
            });
        }
        ticks += 1;
        if ticks.is_multiple_of(60) {
            app.send_limiter.forget_idle();
            app.typing_limiter.forget_idle();
            app.request_limiter.forget_idle();
            app.account_limits.forget_idle();
            app.persist_online_users().await;
        }
    }
}
