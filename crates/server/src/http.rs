//! The HTTP/1.1 server loop of the public listener. Ours rather than
//! `axum::serve` for the limits a public server needs:
//!
//! - a deadline for request headers (`http_header_timeout_ms`), which also
//!   ends idle keep-alive connections: a client that trickles bytes or
//!   holds a connection silent cannot keep a descriptor forever
//!   (slowloris);
//! - a deadline for request bodies ([`DeadlineBody`]): `http_body_timeout_ms`
//!   plus the time the body's size needs at `http_body_min_bytes_per_s`,
//!   so a body sent a byte at a time (or never) frees its slot;
//! - a write-stall timeout on answers (`write_timeout_ms`, see
//!   `guarded_io`), so a client that never reads cannot pin one in memory;
//! - a cap on connections in the HTTP stage (`max_http_connections`), and a
//!   share of it per client address (`max_http_connections_per_ip`) so one
//!   address can never take the pool: beyond either, new connections are
//!   closed at once. Trusted proxies carry many clients and have no share.
//!
//! A WebSocket leaves this stage when it upgrades and counts against
//! `max_connections` instead.

use crate::guarded_io::{Guard, GuardedIo};
use crate::slots::IpSlots;
use crate::App;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
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
    let per_address = IpSlots::default();
    let connections = TaskTracker::new();
    let header_timeout = app.config.http_header_timeout();
    let body_limits = BodyLimits {
        grace: Duration::from_millis(app.config.http_body_timeout_ms),
        min_bytes_per_s: app.config.http_body_min_bytes_per_s,
    };
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = app.shutdown.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many HTTP connections; closed at once");
            continue;
        };
        let share = if app.config.is_trusted_proxy(peer.ip()) {
            None
        } else {
            match per_address.take(peer.ip(), app.config.max_http_connections_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, "too many HTTP connections from this address; closed at once");
                    continue;
                }
            }
        };
        let guard = Arc::new(Guard::default());
        let io = GuardedIo::new(io, app.config.write_timeout(), guard.clone());
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(guard.clone());
            let request = request.map(|body| {
                if body.is_end_stream() {
                    axum::body::Body::new(body)
                } else {
                    axum::body::Body::new(DeadlineBody::new(body, body_limits))
                }
            });
            router.clone().oneshot(request)
        });
        let shutdown = app.shutdown.clone();
        connections.spawn(async move {
            let _slots = (permit, share);
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

/// How long a request body may take.
#[derive(Debug, Clone, Copy)]
struct BodyLimits {
    /// Time allowed beyond what the body's size needs.
    grace: Duration,
    /// The slowest rate a body may arrive at, on average.
    min_bytes_per_s: u64,
}

/// The error of a body that did not arrive within its deadline; the
/// handler reading it answers 408 `request_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// A request body with a deadline of `grace + received / min_rate` from
/// the start, moved on as bytes arrive: a body must keep coming at the
/// minimum rate, and one that stops (or never starts) fails.
struct DeadlineBody {
    inner: Incoming,
    limits: BodyLimits,
    started: Instant,
    received: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, limits: BodyLimits) -> Self {
        let started = Instant::now();
        DeadlineBody {
            inner,
            limits,
            started,
            received: 0,
            deadline: Box::pin(tokio::time::sleep_until(started + limits.grace)),
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let needed =
                        Duration::from_secs_f64(this.received as f64 / this.limits.min_bytes_per_s.max(1) as f64);
                    this.deadline.as_mut().reset(this.started + this.limits.grace + needed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
