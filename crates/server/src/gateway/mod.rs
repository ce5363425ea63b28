//! The gateway role: WebSocket connections. `upgrade` accepts the socket;
//! `connection` runs one task per socket; `cursor` keeps each channel's
//! messages in order on a connection.

mod connection;
mod cursor;

use crate::api::{extract_bearer, ClientIp};
use crate::error::ApiError;
use crate::guarded_io::Guard;
use crate::slots::IpSlots;

/// The one key of `Gateway::server_slots`.
const SERVER_KEY: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
use crate::App;
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use chinwag_bus::{Discovery, GatewayInfo};
use chinwag_proto::validate::FRAME_MAX_BYTES;
use chinwag_proto::ErrorCode;
use chinwag_proto::WireError;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// Bytes read from a socket at a time; small, because every idle
/// connection keeps this buffer (larger frames grow it as needed).
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Bytes gathered before a write to the socket (a flush writes the rest).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// Bytes a socket may send before it has authenticated: an `auth` frame
/// and some pings, never a large frame for the server to buffer.
const PRE_AUTH_BYTES: u64 = 8 * 1024;

/// The gateway role's own state: its name in discovery, its connection
/// tasks, and the per-address shares of its sockets.
pub struct Gateway {
    /// This process's name in the discovery registry.
    pub id: String,
    /// Every WebSocket connection task, so shutdown can wait for them (and
    /// its length is the number of open sockets).
    pub connections: TaskTracker,
    discovery: Arc<dyn Discovery>,
    /// Open sockets of the whole server (one key), counted from the moment
    /// an upgrade is accepted: `connections` counts a socket only once its
    /// task starts, after the 101 went out, so a burst of upgrades would
    /// slip past a cap checked against it.
    server_slots: IpSlots,
    /// Open sockets per client address.
    ip_slots: IpSlots,
    /// Sockets per client address that have not authenticated yet.
    unauthenticated_slots: IpSlots,
}

impl Gateway {
    pub fn new(id: String, discovery: Arc<dyn Discovery>) -> Gateway {
        Gateway {
            id,
            connections: TaskTracker::new(),
            discovery,
            server_slots: IpSlots::default(),
            ip_slots: IpSlots::default(),
            unauthenticated_slots: IpSlots::default(),
        }
    }

    /// Tells discovery this gateway is alive, where, and how loaded.
    pub fn announce(&self, ws_url: Option<String>, load: u64) {
        self.discovery.announce(GatewayInfo { id: self.id.clone(), ws_url, load });
    }

    /// Waits (bounded) for every connection to close after shutdown.
    pub async fn close(&self) {
        self.connections.close();
        if tokio::time::timeout(Duration::from_secs(10), self.connections.wait()).await.is_err() {
            tracing::warn!("connections did not close within 10 s");
        }
    }
}

/// `GET /v1/ws`: upgrades to a WebSocket. A valid `Authorization` header
/// authenticates at once; otherwise the first frame must be `auth`.
pub async fn upgrade(
    State(app): State<Arc<App>>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    guard: Option<axum::Extension<Arc<Guard>>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return ApiError(WireError::bad_request(e.body_text())).into_response(),
    };
    // Refuse early and cheaply: an overloaded server answers 503 with a
    // jittered retry hint instead of degrading everyone already connected.
    let Some(server_slot) = app.gateway.server_slots.take(SERVER_KEY, app.config.max_connections) else {
        let retry_after_ms = 1_000 + rand::random::<u64>() % 4_000;
        let error = WireError {
            retry_after_ms: Some(retry_after_ms),
            ..WireError::new(ErrorCode::Unavailable, "server is full, retry later")
        };
        return ApiError(error).into_response();
    };
    // Browsers always send Origin; other clients need not.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !origin.to_str().is_ok_and(|o| app.config.origin_allowed(o, host)) {
            return ApiError(WireError::new(ErrorCode::Forbidden, "this origin may not open WebSockets here"))
                .into_response();
        }
    }
    let Some(slot) = app.gateway.ip_slots.take(client, app.config.max_connections_per_ip) else {
        return ApiError(WireError::rate_limited(1_000)).into_response();
    };
    let session = match extract_bearer(&headers) {
        Some(token) => match app.chat.authenticate(token).await {
            Ok(session) => Some(session),
            Err(e) => return ApiError(e).into_response(),
        },
        None => None,
    };
    // An anonymous socket holds little until it authenticates: a small
    // read budget, and one of few places per address.
    let guard = guard.map(|g| g.0).unwrap_or_default();
    let anonymous = match session {
        Some(_) => None,
        None => {
            let max = app.config.max_unauthenticated_connections_per_ip;
            let Some(slot) = app.gateway.unauthenticated_slots.take(client, max) else {
                return ApiError(WireError::rate_limited(1_000)).into_response();
            };
            guard.allow_reads(PRE_AUTH_BYTES);
            Some(slot)
        }
    };
    ws.max_message_size(FRAME_MAX_BYTES)
        .max_frame_size(FRAME_MAX_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let tracker = app.gateway.connections.clone();
            tracker.track_future(async move {
                connection::run(app, socket, session, connection::PreAuth { guard, slot: anonymous }).await;
                drop((slot, server_slot));
            })
        })
}
