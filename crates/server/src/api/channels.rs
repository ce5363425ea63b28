//! Channels, members, history, sending over HTTP and read markers.

use super::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::channels::Added;
use crate::chat::{Draft, SendTarget};
use crate::error::ApiError;
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chinwag_proto::api::{
    AddMemberRequest, AddMemberResponse, ChannelResponse, ChannelsResponse, CreateGroupRequest, EditMessageRequest,
    HistoryParams, HistoryResponse, InvitationsResponse, MarkReadRequest, MessageResponse, OpenDirectRequest,
    PostMessageRequest, ReadMarker, ReadsResponse,
};
use chinwag_proto::{validate, ChannelId, MessageId, UserId, WireError};
use chinwag_store::{HistoryQuery, MessageChange};
use std::sync::Arc;

type Result<T> = std::result::Result<T, ApiError>;

pub async fn open_direct(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiJson(body): ApiJson<OpenDirectRequest>,
) -> Result<impl IntoResponse> {
    let (channel, created) = app.chat.open_direct(session.user_id, body.user_id).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ChannelResponse { channel })))
}

pub async fn create_group(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiJson(body): ApiJson<CreateGroupRequest>,
) -> Result<impl IntoResponse> {
    let channel = app.chat.create_group(session.user_id, body.name, body.member_ids).await?;
    Ok((StatusCode::CREATED, Json(ChannelResponse { channel })))
}

pub async fn list(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<Json<ChannelsResponse>> {
    let channels = app.store.channels_of(session.user_id).await?;
    Ok(Json(ChannelsResponse { channels }))
}

pub async fn get_one(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ChannelResponse>> {
    let channel = app.chat.channel_for(session.user_id, ChannelId(id)).await?;
    Ok(Json(ChannelResponse { channel }))
}

/// 200 `{channel}` when added; 202 `{invitation}` when the user had left
/// the group and was invited back instead.
pub async fn add_member(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AddMemberRequest>,
) -> Result<impl IntoResponse> {
    Ok(match app.chat.add_member(session.user_id, ChannelId(id), body.user_id).await? {
        Added::Member(channel) => (StatusCode::OK, Json(AddMemberResponse::Added { channel })),
        Added::Invited(invitation) => (StatusCode::ACCEPTED, Json(AddMemberResponse::Invited { invitation })),
    })
}

/// Invitations back into groups the caller left.
pub async fn invitations(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<Json<InvitationsResponse>> {
    let invitations = app.store.invitations(session.user_id).await?;
    Ok(Json(InvitationsResponse { invitations }))
}

/// Accepts an invitation: the caller joins the group.
pub async fn accept_invitation(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ChannelResponse>> {
    let channel = app.chat.accept_invitation(session.user_id, ChannelId(id)).await?;
    Ok(Json(ChannelResponse { channel }))
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
    app.chat.remove_member(session.user_id, ChannelId(id), UserId(user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The store's query for a page of history.
fn history_query(params: &HistoryParams) -> Result<HistoryQuery> {
    let query = match (params.after, params.before, params.around) {
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

pub async fn history(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Json<HistoryResponse>> {
    let limit = validate::history_limit(params.limit)?;
    let channel = app.chat.channel_for(session.user_id, ChannelId(id)).await?;
    let mut page = match params.changed_after {
        Some(_) if params.after.is_some() || params.before.is_some() || params.around.is_some() => {
            return Err(ApiError(WireError::bad_request("`changed_after` cannot be combined with other cursors")))
        }
        Some(after) => app.store.changes(channel.id, after, limit, session.user_id).await?,
        None => app.store.messages(channel.id, history_query(&params)?, limit, session.user_id).await?,
    };
    app.media.sign_all(&mut page.messages);
    Ok(Json(HistoryResponse { messages: page.messages, has_more: page.has_more }))
}

pub async fn post_message(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PostMessageRequest>,
) -> Result<impl IntoResponse> {
    let appended = app
        .chat
        .send_message(
            session.user_id,
            SendTarget::Channel(ChannelId(id)),
            Draft {
                client_msg_id: body.client_msg_id,
                text: body.text,
                attachments: body.attachments,
                reply_to: body.reply_to,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(MessageResponse { message: appended.message })))
}

/// Changes a message's text (its sender only): 200 `{message}`.
pub async fn edit_message(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath((id, message_id)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<EditMessageRequest>,
) -> Result<Json<MessageResponse>> {
    let change = MessageChange::Edit { text: body.text };
    let message = app.chat.change_message(session.user_id, ChannelId(id), MessageId(message_id), change).await?;
    Ok(Json(MessageResponse { message }))
}

/// Leaves a tombstone in the message's place (its sender, or the group's
/// creator): 204.
pub async fn delete_message(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath((id, message_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode> {
    let change = MessageChange::Delete;
    app.chat.change_message(session.user_id, ChannelId(id), MessageId(message_id), change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds the caller's reaction (idempotent): 204.
pub async fn add_reaction(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath((id, message_id, emoji)): ApiPath<(i64, i64, String)>,
) -> Result<StatusCode> {
    react(&app, session.user_id, (id, message_id), emoji, true).await
}

/// Removes the caller's reaction (idempotent): 204.
pub async fn remove_reaction(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath((id, message_id, emoji)): ApiPath<(i64, i64, String)>,
) -> Result<StatusCode> {
    react(&app, session.user_id, (id, message_id), emoji, false).await
}

async fn react(app: &App, user: UserId, (id, message_id): (i64, i64), emoji: String, add: bool) -> Result<StatusCode> {
    let change = MessageChange::React { emoji, add };
    app.chat.change_message(user, ChannelId(id), MessageId(message_id), change).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn mark_read(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MarkReadRequest>,
) -> Result<StatusCode> {
    app.chat.mark_read(session.user_id, ChannelId(id), body.message_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every member's read marker (lets a client show "seen" after a reload).
pub async fn reads(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ReadsResponse>> {
    let channel = app.chat.channel_for(session.user_id, ChannelId(id)).await?;
    let state = app.store.channel_state(channel.id).await?.ok_or_else(|| ApiError(WireError::not_found("channel")))?;
    let mut reads: Vec<ReadMarker> =
        state.read_markers.into_iter().map(|(user_id, message_id)| ReadMarker { user_id, message_id }).collect();
    reads.sort_by_key(|r| (r.user_id, r.message_id));
    Ok(Json(ReadsResponse { reads }))
}
