//! The web client, compiled into the binary: plain HTML, CSS and native ES
//! modules from `web/`, so running the server needs no build step.
//!
//! Its pages carry a Content-Security-Policy that allows only the
//! server's own scripts, styles and connections, and sockets to the live
//! gateways (so injected markup can run nothing and send nothing
//! elsewhere), and forbids framing; browsers report violations to
//! `/v1/csp-report`, counted in `/metrics`.

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
const SVG: &str = "image/svg+xml";

/// Every file of the client: path, type, contents. The service worker is
/// served from the root so it may control the whole site.
const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../../../web/index.html")),
    ("/style.css", CSS, include_str!("../../../web/style.css")),
    ("/app.js", JS, include_str!("../../../web/app.js")),
    ("/api.js", JS, include_str!("../../../web/api.js")),
    ("/socket.js", JS, include_str!("../../../web/socket.js")),
    ("/uploads.js", JS, include_str!("../../../web/uploads.js")),
    ("/state.js", JS, include_str!("../../../web/state.js")),
    ("/render.js", JS, include_str!("../../../web/render.js")),
    ("/sw.js", JS, include_str!("../../../web/sw.js")),
    ("/icon.svg", SVG, include_str!("../../../web/icon.svg")),
];

/// Where browsers send Content-Security-Policy violation reports.
const REPORT_PATH: &str = <chinwag_proto::api::CspReport as chinwag_proto::api::Endpoint>::ROUTE.path;

/// The policy of the web client's pages. `connect-src` names the host the
/// page was loaded from for WebSockets (`'self'` covers them only in
/// newer browsers), and each gateway discovery may hand the page (in a
/// cluster they are other hosts).
/// `media` is the object store that media redirects send images to.
fn content_security_policy(host: Option<&str>, gateways: &[String], media: Option<&str>) -> String {
    let mut sockets = host.map(|h| format!(" ws://{h} wss://{h}")).unwrap_or_default();
    for origin in gateways {
        sockets.push(' ');
        sockets.push_str(origin);
    }
    let media = media.map(|m| format!(" {m}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:{media}; \
         connect-src 'self'{sockets}; worker-src 'self'; manifest-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'; report-uri {REPORT_PATH}"
    )
}

/// `host` when it is a plain host[:port] (anything else could smuggle
/// directives into the policy).
fn plain(host: &str) -> Option<&str> {
    let plain = !host.is_empty()
        && host.len() <= 255
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    plain.then_some(host)
}

/// The Host header, when plain.
fn plain_host(headers: &HeaderMap) -> Option<&str> {
    plain(headers.get(header::HOST)?.to_str().ok()?)
}

/// An `http(s)://host[:port]` origin, when plain.
fn web_origin(origin: &str) -> Option<&str> {
    let (scheme, authority) = origin.split_once("://")?;
    (matches!(scheme, "http" | "https") && plain(authority).is_some()).then_some(origin)
}

/// `scheme://host[:port]` of a gateway's announced `ws_url`, when plain.
fn socket_origin(ws_url: &str) -> Option<String> {
    let (scheme, rest) = ws_url.split_once("://")?;
    let authority = rest.split('/').next()?;
    matches!(scheme, "ws" | "wss").then_some(())?;
    Some(format!("{scheme}://{}", plain(authority)?))
}

async fn file(app: &App, headers: &HeaderMap, content_type: &'static str, body: &'static str) -> Response {
    let gateways: Vec<String> =
        app.api.live_gateways().iter().filter_map(|g| g.ws_url.as_deref().and_then(socket_origin)).collect();
    let media = app.media.redirect_origin().await;
    let policy = content_security_policy(plain_host(headers), &gateways, media.as_deref().and_then(web_origin));
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
        router.route(
            path,
            get(move |State(app): State<Arc<App>>, h: HeaderMap| async move { file(&app, &h, kind, body).await }),
        )
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
        assert!(content_security_policy(Some("h:1"), &[], None).contains("connect-src 'self' ws://h:1 wss://h:1;"));
    }

    #[test]
    fn gateways_enter_the_policy_as_plain_origins() {
        assert_eq!(socket_origin("ws://10.0.0.5:8090/v1/ws").as_deref(), Some("ws://10.0.0.5:8090"));
        assert_eq!(socket_origin("wss://gw1.example.com/v1/ws").as_deref(), Some("wss://gw1.example.com"));
        assert_eq!(socket_origin("wss://x;script-src */v1/ws"), None);
        assert_eq!(socket_origin("https://gw1.example.com/v1/ws"), None);
        let policy = content_security_policy(None, &["ws://a:1".into(), "wss://b".into()], Some("http://s3:9"));
        assert!(policy.contains("connect-src 'self' ws://a:1 wss://b;"));
        assert!(policy.contains("img-src 'self' data: blob: http://s3:9;"));
        assert_eq!(web_origin("http://s3:9"), Some("http://s3:9"));
        assert_eq!(web_origin("javascript://x"), None);
        assert_eq!(web_origin("http://a; script-src *"), None);
    }
}
