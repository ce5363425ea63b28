//! Contacts, blocks, presence, search, mentions, discovery and metrics.

use super::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::error::ApiError;
use crate::notifier;
use crate::App;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chinwag_bus::Event;
use chinwag_proto::api::{
    BlocksResponse, ContactsResponse, DiscoveryResponse, FeedResponse, GatewayAddress, Limits, MentionParams,
    MuteRequest, PresenceEntry, PresenceQuery, PresenceResponse, PushTarget, PushTargetResponse, SearchParams,
    VapidKeyResponse,
};
use chinwag_proto::{ChannelId, UserId, WireError};
use chinwag_store::{FeedPage, SearchQuery};
use std::sync::Arc;

type Result<T> = std::result::Result<T, ApiError>;

/// Most ids one presence query may name.
const PRESENCE_MAX_IDS: usize = 200;
/// Search and mention pages: 1..=100, 20 by default.
const FEED_LIMIT_MAX: u32 = 100;
const FEED_LIMIT_DEFAULT: u32 = 20;
const SEARCH_MAX_TERMS: usize = 16;

pub async fn contacts(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<Json<ContactsResponse>> {
    let contacts = app.store.contacts(session.user_id).await?;
    Ok(Json(ContactsResponse { contacts }))
}

/// Follows a user's presence; their current status is sent to the caller's
/// sockets at once.
pub async fn add_contact(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    let contact = UserId(id);
    if contact == session.user_id {
        return Err(ApiError(WireError::bad_request("you cannot add yourself as a contact")));
    }
    app.store
        .add_contact(session.user_id, contact, chinwag_proto::now_ms())
        .await
        .map_err(|e| ApiError(crate::error::user_store_error(e)))?;
    if let Some((user_id, status, last_active_at)) = app.presence.presence_of(session.user_id, &[contact]).await?.pop()
    {
        app.bus.publish(&[session.user_id], Event::Presence { user_id, status, last_active_at });
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Whom the caller blocked.
pub async fn blocks(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<Json<BlocksResponse>> {
    let blocks = app.store.blocked_users(session.user_id).await?;
    Ok(Json(BlocksResponse { blocks }))
}

/// Blocks a user: they cannot message the caller directly, add them to
/// groups, or see their presence.
pub async fn block(State(app): State<Arc<App>>, Auth(session): Auth, ApiPath(id): ApiPath<i64>) -> Result<StatusCode> {
    if UserId(id) == session.user_id {
        return Err(ApiError(WireError::bad_request("you cannot block yourself")));
    }
    app.store
        .block(session.user_id, UserId(id), chinwag_proto::now_ms())
        .await
        .map_err(|e| ApiError(crate::error::user_store_error(e)))?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unblock(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    app.store.unblock(session.user_id, UserId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_contact(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    app.store.remove_contact(session.user_id, UserId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn presence(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiQuery(query): ApiQuery<PresenceQuery>,
) -> Result<Json<PresenceResponse>> {
    let raw = query.user_ids.unwrap_or_default();
    let ids: Vec<UserId> = raw
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<i64>().map(UserId))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| ApiError(WireError::bad_request("user_ids must be comma-separated integers")))?;
    if ids.len() > PRESENCE_MAX_IDS {
        return Err(ApiError(WireError::bad_request("at most 200 user_ids per request")));
    }
    let presence = app
        .presence
        .presence_of(session.user_id, &ids)
        .await?
        .into_iter()
        .map(|(user_id, status, last_active_at)| PresenceEntry { user_id, status, last_active_at })
        .collect();
    Ok(Json(PresenceResponse { presence }))
}

fn feed_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(FEED_LIMIT_DEFAULT),
        Some(n) if (1..=FEED_LIMIT_MAX).contains(&n) => Ok(n),
        Some(_) => Err(ApiError(WireError::bad_request("limit must be between 1 and 100"))),
    }
}

fn feed_json(app: &App, mut page: FeedPage) -> Json<FeedResponse> {
    app.media.sign_all(&mut page.messages);
    Json(FeedResponse { messages: page.messages, next_before: page.next_before })
}

/// Full-text search over the caller's channels, newest first.
pub async fn search(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<FeedResponse>> {
    let limit = feed_limit(params.limit)?;
    let q = params.q.unwrap_or_default();
    chinwag_proto::validate::search_query(&q)?;
    let terms: Vec<String> = q.split_whitespace().take(SEARCH_MAX_TERMS).map(str::to_owned).collect();
    let channel = params.channel_id.map(ChannelId);
    if let Some(channel) = channel {
        app.chat.channel_for(session.user_id, channel).await?;
    }
    let page = app.store.search(session.user_id, SearchQuery { terms, channel, before: params.before, limit }).await?;
    Ok(feed_json(&app, page))
}

/// Messages that mention the caller, newest first.
pub async fn mentions(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiQuery(params): ApiQuery<MentionParams>,
) -> Result<Json<FeedResponse>> {
    let limit = feed_limit(params.limit)?;
    Ok(feed_json(&app, app.store.mentions(session.user_id, params.before, limit).await?))
}

/// Where to open the WebSocket, least-loaded gateway first.
pub async fn discovery(State(app): State<Arc<App>>, headers: HeaderMap) -> Json<DiscoveryResponse> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned();
    let mut gateways = app.api.live_gateways();
    // Before the first announcement (or after a stall) this node still
    // serves, if it is a gateway.
    if app.config.roles.gateway && !gateways.iter().any(|g| g.id == app.gateway.id) {
        gateways.push(chinwag_bus::GatewayInfo {
            id: app.gateway.id.clone(),
            ws_url: app.config.public_ws_url.clone(),
            load: app.bus.local_registry().connection_count() as u64,
        });
    }
    let scheme = if app.config.tls { "wss" } else { "ws" };
    let servers = gateways
        .into_iter()
        .map(|g| GatewayAddress {
            ws_url: g.ws_url.unwrap_or_else(|| format!("{scheme}://{host}/v1/ws")),
            load: g.load,
        })
        .collect();
    Json(DiscoveryResponse { servers })
}

pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.metrics.refresh_process(app.gateway.connections.len(), app.bus.routed_events());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], app.metrics.render())
}

/// Registers (or replaces) this device's push target.
pub async fn set_push(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiJson(target): ApiJson<PushTarget>,
) -> Result<StatusCode> {
    let url = notifier::validate_target(&target)?;
    // One answer for every refusal: telling which address a name resolved
    // to would make this endpoint a window into internal DNS.
    app.notifier.providers.addresses.check_url(&url).await.map_err(|why| {
        tracing::info!(user = session.user_id.0, %why, "push target refused");
        ApiError(WireError::bad_request("push target not allowed"))
    })?;
    let json =
        serde_json::to_string(&notifier::with_own_secret(target)).map_err(|_| ApiError(WireError::internal()))?;
    app.store.set_push_target(session.device_id, session.user_id, json, chinwag_proto::now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This device's push target as registered, with its webhook key (made
/// by the server when the registration brought none).
pub async fn get_push(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<Json<PushTargetResponse>> {
    let stored =
        app.store.push_target(session.device_id).await?.ok_or_else(|| ApiError(WireError::not_found("push target")))?;
    let target = serde_json::from_str(&stored).map_err(|_| ApiError(WireError::internal()))?;
    Ok(Json(PushTargetResponse { target }))
}

pub async fn remove_push(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<StatusCode> {
    app.store.remove_push_target(session.device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The key browsers subscribe with (`applicationServerKey`).
pub async fn vapid_public_key(State(app): State<Arc<App>>) -> Json<VapidKeyResponse> {
    Json(VapidKeyResponse { public_key: app.notifier.providers.webpush.vapid.public_b64.clone() })
}

/// The limits this server enforces (the web client reads them).
pub async fn limits(State(app): State<Arc<App>>) -> Json<Limits> {
    Json(Limits::with_channel_cap(app.config.max_channels_per_user))
}

/// Mutes a channel's push notifications for the caller.
pub async fn mute(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MuteRequest>,
) -> Result<StatusCode> {
    app.store.set_muted(session.user_id, ChannelId(id), body.muted).await?;
    Ok(StatusCode::NO_CONTENT)
}
