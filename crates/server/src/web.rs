//! The web client, compiled into the binary: plain HTML, CSS and native ES
//! modules from `web/`, so running the server needs no build step.
//!
//! Its pages carry a Content-Security-Policy that allows only the
//! server's own scripts, styles and connections (so injected markup can
//! run nothing and send nothing elsewhere) and forbids framing; browsers
//! report violations to `/v1/csp-report`, counted in `/metrics`.

use crate::App;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the client: path, type, contents. The service worker is
/// served from the root so it may control the whole site.
const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../../../web/index.html")),
    ("/style.css", CSS, include_str!("../../../web/style.css")),
    ("/app.js", JS, include_str!("../../../web/app.js")),
    ("/api.js", JS, include_str!("../../../web/api.js")),
    ("/socket.js", JS, include_str!("../../../web/socket.js")),
    ("/state.js", JS, include_str!("../../../web/state.js")),
    ("/render.js", JS, include_str!("../../../web/render.js")),
    ("/sw.js", JS, include_str!("../../../web/sw.js")),
];

/// Where browsers send Content-Security-Policy violation reports.
const REPORT_PATH: &str = <chinwag_proto::api::CspReport as chinwag_proto::api::Endpoint>::ROUTE.path;

/// The policy of the web client's pages. `connect-src` names the host the
/// page was loaded from for WebSockets (`'self'` covers them only in
/// newer browsers).
fn content_security_policy(host: Option<&str>) -> String {
    let sockets = host.map(|h| format!(" ws://{h} wss://{h}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'{sockets}; worker-src 'self'; manifest-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'; report-uri {REPORT_PATH}"
    )
}

/// The Host header when it is a plain host[:port] (anything else could
/// smuggle directives into the policy).
fn plain_host(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    plain.then_some(host)
}

fn file(headers: &HeaderMap, content_type: &'static str, body: &'static str) -> Response {
    let policy = content_security_policy(plain_host(headers));
    let mut response = (
        // `no-cache`: browsers revalidate, so an upgraded server is picked up.
        [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Counts (and logs) a browser's report of a policy violation.
pub(crate) async fn csp_report(State(app): State<Arc<App>>, body: axum::body::Bytes) -> StatusCode {
    app.metrics.csp_violations.inc();
    let report = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    tracing::warn!(%report, "Content-Security-Policy violation reported");
    StatusCode::NO_CONTENT
}

/// The client's files (`FILES`). (The report sink is an endpoint of the
/// API table.)
pub fn routes() -> Router<Arc<App>> {
    FILES.iter().fold(Router::new(), |router, &(path, kind, body)| {
        router.route(path, get(move |h: HeaderMap| async move { file(&h, kind, body) }))
    })
}

/// Headers every answer carries: no content sniffing, no referrer leaks,
/// no framing.
pub async fn protective_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_hosts_enter_the_policy() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("chat.example.com:8080"));
        assert_eq!(plain_host(&headers), Some("chat.example.com:8080"));
        headers.insert(header::HOST, HeaderValue::from_static("x; script-src *"));
        assert_eq!(plain_host(&headers), None);
        assert!(content_security_policy(Some("h:1")).contains("connect-src 'self' ws://h:1 wss://h:1;"));
    }
}
