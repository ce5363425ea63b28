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
pub mod media;
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

use chinwag_bus::{Bus, Discovery, RateLimiter};
use chinwag_store::Store;
use metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The process: one service per role, built from the seams each needs,
/// plus the handles all of them share. Roles this process does not run
/// keep their service idle (no routes, no background task).
pub struct App {
    pub config: Arc<ServerConfig>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub metrics: Arc<Metrics>,
    /// Messaging and channels (used by the api and gateway roles).
    pub chat: Arc<chat::Chat>,
    /// Who is online, and who may see it.
    pub presence: Arc<presence::PresenceService>,
    /// Push notifications: outbox queueing and delivery.
    pub notifier: Arc<notifier::Notifier>,
    /// Uploads, signed URLs, serving and collecting files.
    pub media: Arc<media::Media>,
    /// The WebSocket role's connections and their per-address shares.
    pub gateway: gateway::Gateway,
    /// The api role's own state: the limits that protect accounts.
    pub api: api::Api,
    /// Cancelled when the server shuts down; connections close "going away".
    pub shutdown: CancellationToken,
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
    pub push: notifier::Providers,
    /// This node's name (its gateway id in discovery).
    pub node: String,
    /// Where uploaded files live.
    pub objects: Arc<dyn chinwag_media::ObjectStore>,
    /// Signs media URLs; the same on every node.
    pub media_key: Vec<u8>,
}

impl App {
    /// Builds every service from the backends.
    pub fn new(backends: Backends, config: ServerConfig) -> Arc<App> {
        let Backends { store, bus, discovery, presence, account_limits, metrics, push, node, objects, media_key } =
            backends;
        let config = Arc::new(config);
        let media = Arc::new(media::Media::new(objects, store.clone(), config.clone(), media_key));
        let notifier =
            Arc::new(notifier::Notifier::new(push, store.clone(), presence.clone(), metrics.clone(), config.clone()));
        let chat = Arc::new(chat::Chat::new(
            store.clone(),
            bus.clone(),
            presence.clone(),
            notifier.handoff(),
            media.clone(),
            metrics.clone(),
            config.clone(),
        ));
        Arc::new(App {
            presence: Arc::new(presence::PresenceService::new(presence, store.clone(), bus.clone(), metrics.clone())),
            gateway: gateway::Gateway::new(node, discovery.clone()),
            api: api::Api::new(account_limits, discovery.clone(), config.clone()),
            chat,
            notifier,
            media,
            store,
            bus,
            metrics,
            config,
            shutdown: CancellationToken::new(),
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
    let broadcasts = tokio::spawn(app.chat.clone().follow_broadcasts());
    let beacons = tokio::spawn(app.chat.clone().send_head_beacons());
    // Roles run only where they were asked for.
    let presence = roles.presence.then(|| tokio::spawn(app.presence.clone().run(app.shutdown.clone())));
    let notifier = tokio::spawn(app.notifier.clone().run(app.shutdown.clone(), roles.notifier));
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
    beacons.abort();
    if let Some(presence) = presence {
        presence.abort();
    }
    let _ = notifier.await;
    app.gateway.close().await;
    app.presence.persist_online_users().await;
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

/// How often this gateway re-announces its load to discovery.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// Entries not re-announced within this time are dropped from discovery.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(10);

/// Periodic upkeep: discovery announcements, bounded memory,
/// `last_active_at` of online users, and (api role) uploads nobody holds.
async fn housekeeping(app: Arc<App>) {
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        // Only gateways are handed out to clients.
        if app.config.roles.gateway {
            let load = app.bus.local_registry().connection_count() as u64;
            app.gateway.announce(app.config.public_ws_url.clone(), load);
        }
        ticks += 1;
        if ticks.is_multiple_of(60) {
            app.chat.forget_idle();
            app.api.forget_idle();
            app.presence.persist_online_users().await;
            if app.config.roles.api {
                match app.media.collect().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(uploads = n, "removed uploads nobody holds"),
                    Err(e) => tracing::warn!(error = %e, "could not collect uploads"),
                }
            }
        }
    }
}
