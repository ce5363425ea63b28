//! The HTTP/1.1 server loop of the public listener. Ours rather than
//! `axum::serve` for two limits a public server needs:
//!
//! - a deadline for request headers (`http_header_timeout_ms`), which also
//!   ends idle keep-alive connections: a client that trickles bytes or
//!   holds a connection silent cannot keep a descriptor forever
//!   (slowloris);
//! - a cap on connections in the HTTP stage (`max_http_connections`):
//!   beyond it new connections are closed at once. A WebSocket leaves this
//!   stage when it upgrades and counts against `max_connections` instead.

use crate::App;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `router` on every connection from `listener` until the server
/// shuts down, then lets requests in flight finish (bounded).
pub(crate) async fn serve<L>(mut listener: L, router: Router, app: &App)
where
    L: Listener<Addr = SocketAddr>,
{
    let permits = Arc::new(Semaphore::new(app.config.max_http_connections));
    let connections = TaskTracker::new();
    let header_timeout = app.config.http_header_timeout();
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = app.shutdown.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many HTTP connections; closed at once");
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let shutdown = app.shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                tracing::trace!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    connections.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait()).await.is_err() {
        tracing::warn!("HTTP requests still in flight after {DRAIN_TIMEOUT:?}");
    }
}
