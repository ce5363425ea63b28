//! The HTTP API role (`/v1/...`): stateless request handlers over the chat
//! service, plus liveness. Errors leave through `ApiError` only.

mod accounts;
mod channels;
mod extract;
mod social;
mod uploads;
mod users;

use crate::error::ApiError;
use crate::App;
use axum::handler::Handler;
use axum::routing::{get, MethodFilter, MethodRouter};
use axum::Router;
use chinwag_proto::api::{Endpoint, Method, Route};
use chinwag_proto::WireError;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use accounts::Api;
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

/// The api role's endpoints: one handler per endpoint of
/// `chinwag_proto::api::ROUTES`, whose method and path come from the table
/// (a test checks that none is missing).
fn api_routes() -> Router<Arc<App>> {
    endpoints().into_router()
}

fn endpoints() -> Routes {
    use chinwag_proto::api as e;
    Routes::default()
        .add::<e::Signup, _>(users::signup)
        .add::<e::FindUser, _>(users::find_by_username)
        .add::<e::Me, _>(users::me)
        .add::<e::UpdateMe, _>(users::update_me)
        .add::<e::UserById, _>(users::by_id)
        .add::<e::Login, _>(users::login)
        .add::<e::Logout, _>(users::logout)
        .add::<e::CreateGroup, _>(channels::create_group)
        .add::<e::ListChannels, _>(channels::list)
        .add::<e::OpenDirect, _>(channels::open_direct)
        .add::<e::GetChannel, _>(channels::get_one)
        .add::<e::AddMember, _>(channels::add_member)
        .add::<e::RemoveMember, _>(channels::remove_member)
        .add::<e::History, _>(channels::history)
        .add::<e::PostMessage, _>(channels::post_message)
        .add::<e::EditMessage, _>(channels::edit_message)
        .add::<e::DeleteMessage, _>(channels::delete_message)
        .add::<e::AddReaction, _>(channels::add_reaction)
        .add::<e::RemoveReaction, _>(channels::remove_reaction)
        .add::<e::MarkRead, _>(channels::mark_read)
        .add::<e::Reads, _>(channels::reads)
        .add::<e::Mute, _>(social::mute)
        .add::<e::Contacts, _>(social::contacts)
        .add::<e::AddContact, _>(social::add_contact)
        .add::<e::RemoveContact, _>(social::remove_contact)
        .add::<e::Blocks, _>(social::blocks)
        .add::<e::Block, _>(social::block)
        .add::<e::Unblock, _>(social::unblock)
        .add::<e::Invitations, _>(channels::invitations)
        .add::<e::AcceptInvitation, _>(channels::accept_invitation)
        .add::<e::DeclineInvitation, _>(channels::decline_invitation)
        .add::<e::GetPresence, _>(social::presence)
        .add::<e::Search, _>(social::search)
        .add::<e::Mentions, _>(social::mentions)
        .add::<e::Discovery, _>(social::discovery)
        .add::<e::SetPush, _>(social::set_push)
        .add::<e::GetPush, _>(social::get_push)
        .add::<e::RemovePush, _>(social::remove_push)
        .add::<e::VapidPublicKey, _>(social::vapid_public_key)
        .add::<e::GetLimits, _>(social::limits)
        .add::<e::CspReport, _>(crate::web::csp_report)
        .add::<e::CreateUpload, _>(uploads::create)
        .add::<e::GetMedia, _>(uploads::original)
        .add::<e::GetThumbnail, _>(uploads::thumbnail)
}

/// Builds a router from endpoint types: each handler is mounted at its
/// endpoint's method and path, so the table in `proto` is the one source.
#[derive(Default)]
struct Routes {
    by_path: BTreeMap<&'static str, MethodRouter<Arc<App>>>,
    mounted: Vec<Route>,
}

impl Routes {
    fn add<E: Endpoint, T: 'static>(mut self, handler: impl Handler<T, Arc<App>>) -> Self {
        let route = E::ROUTE;
        let filter = match route.method {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
            Method::Patch => MethodFilter::PATCH,
            Method::Delete => MethodFilter::DELETE,
        };
        let methods = self.by_path.remove(route.path).unwrap_or_default();
        self.by_path.insert(route.path, methods.on(filter, handler));
        self.mounted.push(route);
        self
    }

    fn into_router(self) -> Router<Arc<App>> {
        self.by_path.into_iter().fold(Router::new(), |router, (path, methods)| router.route(path, methods))
    }
}

/// `GET /metrics`: on the public listener, or alone on `metrics_listen`.
pub fn metrics_router() -> Router<Arc<App>> {
    Router::new().route("/metrics", get(social::metrics))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_endpoint_of_the_table_is_mounted_once() {
        let mut mounted = super::endpoints().mounted;
        let mut table = chinwag_proto::api::ROUTES.to_vec();
        mounted.sort_by_key(|r| r.name);
        table.sort_by_key(|r| r.name);
        assert_eq!(mounted, table);
    }
}
