//! The web client, compiled into the binary: plain HTML, CSS and an ES
//! module from `web/`, so running the server needs no build step.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");
const STYLE_CSS: &str = include_str!("../../../web/style.css");
const SERVICE_WORKER_JS: &str = include_str!("../../../web/sw.js");

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    // `no-cache`: browsers revalidate, so an upgraded server is picked up.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

/// `/`, `/app.js`, `/style.css` and the service worker `/sw.js` (served
/// from the root so it may control the whole site).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { file("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app.js", get(|| async { file("text/javascript; charset=utf-8", APP_JS) }))
        .route("/style.css", get(|| async { file("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/sw.js", get(|| async { file("text/javascript; charset=utf-8", SERVICE_WORKER_JS) }))
}
