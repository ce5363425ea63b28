//! Channels, members, history, sending over HTTP and read markers.

use super::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::channels::Added;
use crate::chat::SendTarget;
use crate::error::ApiError;
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chinwag_proto::{validate, ChannelId, MessageId, UserId, WireError};
use chinwag_store::HistoryQuery;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Deserialize)]
pub struct DirectBody {
    user_id: UserId,
}

pub async fn open_direct(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiJson(body): ApiJson<DirectBody>,
) -> Result<impl IntoResponse> {
    let (channel, created) = app.open_direct(session.user_id, body.user_id).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "channel": channel }))))
}

#[derive(Deserialize)]
pub struct GroupBody {
    name: String,
    #[serde(default)]
    member_ids: Vec<UserId>,
}

pub async fn create_group(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<impl IntoResponse> {
    let channel = app.create_group(session.user_id, body.name, body.member_ids).await?;
    Ok((StatusCode::CREATED, Json(json!({ "channel": channel }))))
}

pub async fn list(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<Json<Value>> {
    let channels = app.store.channels_of(session.user_id).await?;
    Ok(Json(json!({ "channels": channels })))
}

pub async fn get_one(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>> {
    let channel = app.channel_for(session.user_id, ChannelId(id)).await?;
    Ok(Json(json!({ "channel": channel })))
}

#[derive(Deserialize)]
pub struct MemberBody {
    user_id: UserId,
}

/// 200 `{channel}` when added; 202 `{invitation}` when the user had left
/// the group and was invited back instead.
pub async fn add_member(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MemberBody>,
) -> Result<impl IntoResponse> {
    Ok(match app.add_member(session.user_id, ChannelId(id), body.user_id).await? {
        Added::Member(channel) => (StatusCode::OK, Json(json!({ "channel": channel }))),
        Added::Invited(invitation) => (StatusCode::ACCEPTED, Json(json!({ "invitation": invitation }))),
    })
}

/// Invitations back into groups the caller left.
pub async fn invitations(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<Json<Value>> {
    let invitations = app.store.invitations(session.user_id).await?;
    Ok(Json(json!({ "invitations": invitations })))
}

/// Accepts an invitation: the caller joins the group.
pub async fn accept_invitation(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>> {
    let channel = app.accept_invitation(session.user_id, ChannelId(id)).await?;
    Ok(Json(json!({ "channel": channel })))
}

pub async fn decline_invitation(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    if app.store.decline_invitation(ChannelId(id), session.user_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(WireError::not_found("invitation")))
    }
}

pub async fn remove_member(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath((id, user_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode> {
    app.remove_member(session.user_id, ChannelId(id), UserId(user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct HistoryParams {
    after: Option<i64>,
    before: Option<i64>,
    around: Option<i64>,
    limit: Option<u32>,
}

impl HistoryParams {
    fn query(&self) -> Result<HistoryQuery> {
        let query = match (self.after, self.before, self.around) {
            (None, None, None) => HistoryQuery::Latest,
            (None, None, Some(center)) => HistoryQuery::Around(MessageId(center)),
            (after, Some(before), None) if after.is_none() => HistoryQuery::Before(MessageId(before)),
            (after, before, None) => HistoryQuery::Range { after: after.map(MessageId), before: before.map(MessageId) },
            (_, _, Some(_)) => {
                return Err(ApiError(WireError::bad_request("`around` cannot be combined with `after` or `before`")))
            }
        };
        Ok(query)
    }
}

pub async fn history(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Json<Value>> {
    let limit = validate::history_limit(params.limit)?;
    let query = params.query()?;
    let channel = app.channel_for(session.user_id, ChannelId(id)).await?;
    let page = app.store.messages(channel.id, query, limit, session.user_id).await?;
    Ok(Json(json!({ "messages": page.messages, "has_more": page.has_more })))
}

#[derive(Deserialize)]
pub struct PostMessage {
    client_msg_id: String,
    text: String,
}

pub async fn post_message(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PostMessage>,
) -> Result<impl IntoResponse> {
    let appended =
        app.send_message(session.user_id, SendTarget::Channel(ChannelId(id)), body.client_msg_id, body.text).await?;
    Ok((StatusCode::CREATED, Json(json!({ "message": appended.message }))))
}

#[derive(Deserialize)]
pub struct ReadBody {
    message_id: MessageId,
}

pub async fn mark_read(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ReadBody>,
) -> Result<StatusCode> {
    app.mark_read(session.user_id, ChannelId(id), body.message_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every member's read marker (lets a client show "seen" after a reload).
pub async fn reads(State(app): State<Arc<App>>, Auth(session): Auth, ApiPath(id): ApiPath<i64>) -> Result<Json<Value>> {
    let channel = app.channel_for(session.user_id, ChannelId(id)).await?;
    let state = app.store.channel_state(channel.id).await?.ok_or_else(|| ApiError(WireError::not_found("channel")))?;
    let mut reads: Vec<(UserId, MessageId)> = state.read_markers.into_iter().collect();
    reads.sort();
    let reads: Vec<Value> = reads.into_iter().map(|(u, m)| json!({ "user_id": u, "message_id": m })).collect();
    Ok(Json(json!({ "reads": reads })))
}
