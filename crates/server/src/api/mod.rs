//! The HTTP API role (`/v1/...`): stateless request handlers over the chat
//! service, plus liveness. Errors leave through `ApiError` only.

mod channels;
mod extract;
mod social;
mod users;

use crate::error::ApiError;
use crate::App;
use axum::routing::{delete, get, post, put};
use axum::Router;
use chinwag_proto::WireError;
use std::sync::Arc;

pub use extract::{extract_bearer, ApiJson, ApiPath, ApiQuery, Auth, ClientIp};

/// The routes of the roles this process runs: the API (and the web
/// client) with the api role, `/v1/ws` with the gateway role; `/healthz`
/// always, `/metrics` unless it has a listener of its own.
pub fn router(app: Arc<App>) -> Router {
    let roles = app.config.roles;
    let mut router = Router::new().route("/healthz", get(|| async { "ok" }));
    if roles.api {
        router = router.merge(api_routes()).merge(crate::web::routes());
    }
    if roles.gateway {
        router = router.route("/v1/ws", get(crate::gateway::upgrade));
    }
    if !app.config.metrics_separate {
        router = router.merge(metrics_router());
    }
    router
        .fallback(|| async { ApiError(WireError::not_found("endpoint")) })
        .method_not_allowed_fallback(|| async {
            ApiError(WireError::bad_request("method not allowed on this endpoint"))
        })
        .layer(axum::middleware::map_response(crate::web::protective_headers))
        .with_state(app)
}

/// The api role's endpoints.
fn api_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/users", post(users::signup).get(users::find_by_username))
        .route("/v1/users/me", get(users::me).patch(users::update_me))
        .route("/v1/users/{id}", get(users::by_id))
        .route("/v1/sessions", post(users::login))
        .route("/v1/sessions/current", delete(users::logout))
        .route("/v1/channels", post(channels::create_group).get(channels::list))
        .route("/v1/channels/direct", post(channels::open_direct))
        .route("/v1/channels/{id}", get(channels::get_one))
        .route("/v1/channels/{id}/members", post(channels::add_member))
        .route("/v1/channels/{id}/members/{user_id}", delete(channels::remove_member))
        .route("/v1/channels/{id}/messages", get(channels::history).post(channels::post_message))
        .route("/v1/channels/{id}/read", put(channels::mark_read))
        .route("/v1/channels/{id}/reads", get(channels::reads))
        .route("/v1/contacts", get(social::contacts))
        .route("/v1/contacts/{user_id}", put(social::add_contact).delete(social::remove_contact))
        .route("/v1/blocks", get(social::blocks))
        .route("/v1/blocks/{user_id}", put(social::block).delete(social::unblock))
        .route("/v1/invitations", get(channels::invitations))
        .route("/v1/invitations/{channel_id}", post(channels::accept_invitation).delete(channels::decline_invitation))
        .route("/v1/presence", get(social::presence))
        .route("/v1/search", get(social::search))
        .route("/v1/mentions", get(social::mentions))
        .route("/v1/discovery", get(social::discovery))
        .route("/v1/devices/current/push", put(social::set_push).get(social::get_push).delete(social::remove_push))
        .route("/v1/push/vapid-public-key", get(social::vapid_public_key))
        .route("/v1/channels/{id}/mute", put(social::mute))
}

/// `GET /metrics`: on the public listener, or alone on `metrics_listen`.
pub fn metrics_router() -> Router<Arc<App>> {
    Router::new().route("/metrics", get(social::metrics))
}
