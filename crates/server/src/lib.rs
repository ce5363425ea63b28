//! chinwag's roles over the `Store` and `Bus` seams: the HTTP API (`api`),
//! the WebSocket gateway (`gateway`), and the chat service they share
//! (`chat`, `channels`). Backends are chosen by the binary, never here.

pub mod api;
mod auth;
mod channels;
mod chat;
pub mod config;
mod error;
pub mod gateway;
mod members;
mod ratelimit;

pub use config::ServerConfig;
pub use error::ApiError;

use chinwag_bus::Bus;
use chinwag_proto::{ChannelId, UserId};
use chinwag_store::Store;
use members::MemberCache;
use ratelimit::UserLimiter;
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
    pub config: ServerConfig,
    members: MemberCache,
    send_limiter: UserLimiter,
    typing_limiter: UserLimiter,
    /// Direct channel of each ordered pair, so `to_user_id` sends skip the
    /// store lookup (a pair's direct channel never changes).
    direct_channels: Mutex<HashMap<(UserId, UserId), ChannelId>>,
    /// Cancelled when the server shuts down; connections close "going away".
    pub shutdown: CancellationToken,
    /// Every WebSocket connection task, so shutdown can wait for them.
    pub connections: TaskTracker,
}

impl App {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, config: ServerConfig) -> Arc<App> {
        Arc::new(App {
            send_limiter: UserLimiter::new(config.send_rate_per_s, config.send_burst),
            typing_limiter: UserLimiter::new(config.typing_rate_per_s, config.typing_rate_per_s),
            store,
            bus,
            config,
            members: MemberCache::default(),
            direct_channels: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
        })
    }
}

/// Serves the API and the gateway on `listener` until `app.shutdown` is
/// cancelled, then closes every socket and waits (bounded) for them.
pub async fn serve(listener: TcpListener, app: Arc<App>) -> std::io::Result<()> {
    let router = api::router(app.clone());
    let housekeeping = tokio::spawn(housekeeping(app.clone()));
    let shutdown = app.shutdown.clone();
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await;
    housekeeping.abort();
    app.connections.close();
    if tokio::time::timeout(Duration::from_secs(10), app.connections.wait()).await.is_err() {
        tracing::warn!("connections did not close within 10 s");
    }
    served
}

/// Periodic upkeep that keeps memory bounded.
async fn housekeeping(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        app.send_limiter.forget_idle();
        app.typing_limiter.forget_idle();
    }
}
