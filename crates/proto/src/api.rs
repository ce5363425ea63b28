//! The HTTP API as data: every endpoint's method, path, who may call it,
//! and the types of its request and response bodies. The server builds its
//! router from `ROUTES`, the SDK sends these types, and the authorization
//! test walks the same table, so no endpoint exists outside it.
//!
//! Path parameters (`{id}`, `{user_id}`, `{channel_id}`, `{message_id}`)
//! are ids, `{emoji}` is URL-encoded text; query
//! parameters are the `Request` type of `GET` endpoints; other requests
//! carry it as a JSON body. Errors are `{"error": ErrorBody}` everywhere.

use crate::ids::{DeviceId, MessageId, UserId};
use crate::objects::{Channel, Invitation, Message, User};
use crate::PresenceStatus;
use serde::{Deserialize, Serialize};

/// An HTTP method of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// Who may call an endpoint: the authorization rule the server enforces
/// and the authorization test checks for every route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// Any signed-in device (`Authorization: Bearer <token>`); otherwise 401.
    User,
    /// A member of the channel the path names (or, for invitations, the
    /// invited user); anyone else gets 404, as if it did not exist.
    Member,
    /// Whoever may see a file: the URL's own signature, or a token of its
    /// uploader or of a member of a channel holding it; anyone else gets
    /// 404.
    Viewer,
}

/// One endpoint of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The endpoint's type name, e.g. `"Signup"`.
    pub name: &'static str,
    pub method: Method,
    /// In the router's syntax: `/v1/channels/{id}`.
    pub path: &'static str,
    pub access: Access,
}

/// An endpoint, tying its route to its body types.
pub trait Endpoint {
    const ROUTE: Route;
    /// The JSON body, or for `GET` the query string.
    type Request;
    /// The JSON body of a success (`NoContent` for 204).
    type Response;
}

/// The empty request or response (a 204 answer, a body-less request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoContent {}

macro_rules! endpoints {
    ($( $(#[$doc:meta])* $name:ident: $method:ident $path:literal, $access:ident, $request:ty => $response:ty; )*) => {
        $(
            $(#[$doc])*
            #[doc = ""]
            #[doc = concat!("`", stringify!($method), " ", $path, "` (", stringify!($access), ")")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl Endpoint for $name {
                const ROUTE: Route =
                    Route { name: stringify!($name), method: Method::$method, path: $path, access: Access::$access };
                type Request = $request;
                type Response = $response;
            }
        )*

        /// Every endpoint of the API.
        pub const ROUTES: &[Route] = &[$($name::ROUTE),*];
    };
}

endpoints! {
    /// Creates an account (201).
    Signup: Post "/v1/users", Public, SignupRequest => UserResponse;
    /// Finds a user by exact username (case-insensitive).
    FindUser: Get "/v1/users", User, UsernameQuery => UserResponse;
    /// The caller's own profile.
    Me: Get "/v1/users/me", User, NoContent => UserResponse;
    /// Changes the caller's display name.
    UpdateMe: Patch "/v1/users/me", User, ProfilePatch => UserResponse;
    /// A user's public profile.
    UserById: Get "/v1/users/{id}", User, NoContent => UserResponse;
    /// Logs in a new device (201).
    Login: Post "/v1/sessions", Public, LoginRequest => LoginResponse;
    /// Revokes the caller's token and closes its sockets (204).
    Logout: Delete "/v1/sessions/current", User, NoContent => NoContent;
    /// Creates a group with the caller in it (201).
    CreateGroup: Post "/v1/channels", User, CreateGroupRequest => ChannelResponse;
    /// The caller's channels.
    ListChannels: Get "/v1/channels", User, NoContent => ChannelsResponse;
    /// The direct channel with a user: 201 when created, 200 when it existed.
    OpenDirect: Post "/v1/channels/direct", User, OpenDirectRequest => ChannelResponse;
    /// One channel as the caller sees it.
    GetChannel: Get "/v1/channels/{id}", Member, NoContent => ChannelResponse;
    /// Adds a member (200 `{channel}`), or invites back someone who left
    /// (202 `{invitation}`).
    AddMember: Post "/v1/channels/{id}/members", Member, AddMemberRequest => AddMemberResponse;
    /// Leaves a group, or (its creator) removes a member (204).
    RemoveMember: Delete "/v1/channels/{id}/members/{user_id}", Member, NoContent => NoContent;
    /// A page of history, oldest first.
    History: Get "/v1/channels/{id}/messages", Member, HistoryParams => HistoryResponse;
    /// Sends a message over HTTP (201).
    PostMessage: Post "/v1/channels/{id}/messages", Member, PostMessageRequest => MessageResponse;
    /// Changes a message's text (its sender only).
    EditMessage: Patch "/v1/channels/{id}/messages/{message_id}", Member, EditMessageRequest => MessageResponse;
    /// Deletes a message for everyone, leaving a tombstone (its sender, or
    /// the group's creator; 204).
    DeleteMessage: Delete "/v1/channels/{id}/messages/{message_id}", Member, NoContent => NoContent;
    /// Adds the caller's reaction (idempotent; 204).
    AddReaction: Put "/v1/channels/{id}/messages/{message_id}/reactions/{emoji}", Member, NoContent => NoContent;
    /// Removes the caller's reaction (idempotent; 204).
    RemoveReaction: Delete "/v1/channels/{id}/messages/{message_id}/reactions/{emoji}", Member, NoContent => NoContent;
    /// Moves the caller's read marker forward (204).
    MarkRead: Put "/v1/channels/{id}/read", Member, MarkReadRequest => NoContent;
    /// Every member's read marker.
    Reads: Get "/v1/channels/{id}/reads", Member, NoContent => ReadsResponse;
    /// Mutes or unmutes a channel's push notifications for the caller (204).
    Mute: Put "/v1/channels/{id}/mute", Member, MuteRequest => NoContent;
    /// The users whose presence the caller follows.
    Contacts: Get "/v1/contacts", User, NoContent => ContactsResponse;
    /// Follows a user's presence (204).
    AddContact: Put "/v1/contacts/{user_id}", User, NoContent => NoContent;
    /// Stops following a user's presence (204).
    RemoveContact: Delete "/v1/contacts/{user_id}", User, NoContent => NoContent;
    /// The users the caller blocked.
    Blocks: Get "/v1/blocks", User, NoContent => BlocksResponse;
    /// Blocks a user (204).
    Block: Put "/v1/blocks/{user_id}", User, NoContent => NoContent;
    /// Unblocks a user (204).
    Unblock: Delete "/v1/blocks/{user_id}", User, NoContent => NoContent;
    /// Invitations back into groups the caller left.
    Invitations: Get "/v1/invitations", User, NoContent => InvitationsResponse;
    /// Accepts an invitation: the caller joins the group.
    AcceptInvitation: Post "/v1/invitations/{channel_id}", Member, NoContent => ChannelResponse;
    /// Declines an invitation (204).
    DeclineInvitation: Delete "/v1/invitations/{channel_id}", Member, NoContent => NoContent;
    /// Presence of up to 200 users, as the caller may see it.
    GetPresence: Get "/v1/presence", User, PresenceQuery => PresenceResponse;
    /// Full-text search over the caller's channels, newest first.
    Search: Get "/v1/search", User, SearchParams => FeedResponse;
    /// Messages that mention the caller, newest first.
    Mentions: Get "/v1/mentions", User, MentionParams => FeedResponse;
    /// Where to open the WebSocket, least-loaded gateway first.
    Discovery: Get "/v1/discovery", Public, NoContent => DiscoveryResponse;
    /// Registers (or replaces) this device's push target (204).
    SetPush: Put "/v1/devices/current/push", User, PushTarget => NoContent;
    /// This device's push target, with its webhook key.
    GetPush: Get "/v1/devices/current/push", User, NoContent => PushTargetResponse;
    /// Unregisters this device's push target (204).
    RemovePush: Delete "/v1/devices/current/push", User, NoContent => NoContent;
    /// The key browsers subscribe to Web Push with.
    VapidPublicKey: Get "/v1/push/vapid-public-key", Public, NoContent => VapidKeyResponse;
    /// The limits this server enforces, so clients need not copy them.
    GetLimits: Get "/v1/limits", Public, NoContent => Limits;
    /// Where browsers report Content-Security-Policy violations (204).
    CspReport: Post "/v1/csp-report", Public, serde_json::Value => NoContent;
    /// Stores a file (the raw body, its `Content-Type` declared) for
    /// sending as an attachment (201).
    CreateUpload: Post "/v1/uploads", User, UploadParams => UploadResponse;
    /// A file's bytes, to a signed URL or a viewer's token (`Range` works).
    GetMedia: Get "/v1/media/{id}", Viewer, MediaParams => NoContent;
    /// An image's thumbnail (at most 320 px a side).
    GetThumbnail: Get "/v1/media/{id}/thumbnail", Viewer, MediaParams => NoContent;
}

/// `POST /v1/uploads?filename=NAME`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadParams {
    pub filename: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadResponse {
    pub upload: crate::Upload,
}

/// The signature of a media URL (both or neither).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MediaParams {
    pub expires: Option<i64>,
    pub sig: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignupRequest {
    pub username: String,
    pub password: String,
    /// Defaults to the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// Shown in the account's device list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

/// A new device's bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub device_id: DeviceId,
    pub user: User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsernameQuery {
    pub username: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfilePatch {
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserResponse {
    pub user: User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateGroupRequest {
    pub name: String,
    #[serde(default)]
    pub member_ids: Vec<UserId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenDirectRequest {
    pub user_id: UserId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelResponse {
    pub channel: Channel,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelsResponse {
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddMemberRequest {
    pub user_id: UserId,
}

/// What adding a member did: they are in (`channel`), or they had left and
/// were invited back (`invitation`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddMemberResponse {
    Added { channel: Channel },
    Invited { invitation: Invitation },
}

/// `after`/`before` give a range (exclusive), `around` centres on one id,
/// nothing gives the latest page; `limit` 1..=200 (50 by default).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistoryParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub around: Option<i64>,
    /// Messages changed after this `change_seq`, ascending by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryResponse {
    pub messages: Vec<Message>,
    /// More messages lie beyond this page in the direction asked.
    pub has_more: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostMessageRequest {
    pub client_msg_id: String,
    /// May be empty (or left out) when there are attachments.
    #[serde(default)]
    pub text: String,
    /// Upload ids of the sender (1-10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    /// The message of the same channel this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EditMessageRequest {
    /// The new text; it may be empty only if the message has attachments.
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageResponse {
    pub message: Message,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkReadRequest {
    pub message_id: MessageId,
}

/// One member's read marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMarker {
    pub user_id: UserId,
    pub message_id: MessageId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadsResponse {
    pub reads: Vec<ReadMarker>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MuteRequest {
    pub muted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactsResponse {
    pub contacts: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlocksResponse {
    pub blocks: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationsResponse {
    pub invitations: Vec<Invitation>,
}

/// `user_ids`: comma-separated ids, at most 200.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PresenceQuery {
    pub user_ids: Option<String>,
}

/// One user's presence as the caller may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub user_id: UserId,
    pub status: PresenceStatus,
    pub last_active_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceResponse {
    pub presence: Vec<PresenceEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchParams {
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MentionParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A page of search results or mentions, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedResponse {
    pub messages: Vec<Message>,
    /// Pass as `before` for the next page; `null` at the end.
    pub next_before: Option<i64>,
}

/// A gateway a client may connect to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayAddress {
    pub ws_url: String,
    pub load: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiscoveryResponse {
    pub servers: Vec<GatewayAddress>,
}

/// Where a device wants its notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PushTarget {
    /// POST a signed JSON payload to `url`.
    Webhook {
        url: String,
        /// HMAC key for this target; the server makes one when a
        /// registration brings none (the owner reads it back with
        /// `GET /v1/devices/current/push`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// A browser's push subscription.
    Webpush { endpoint: String, keys: WebPushKeys },
}

impl PushTarget {
    /// Where requests for this target go.
    pub fn url(&self) -> &str {
        match self {
            PushTarget::Webhook { url, .. } => url,
            PushTarget::Webpush { endpoint, .. } => endpoint,
        }
    }
}

/// A browser subscription's keys (base64url, as the browser gives them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushKeys {
    pub p256dh: String,
    pub auth: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushTargetResponse {
    pub target: PushTarget,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VapidKeyResponse {
    pub public_key: String,
}

/// What this server accepts; clients check input against it before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub text_max_chars: usize,
    pub username_min: usize,
    pub username_max: usize,
    pub password_min: usize,
    pub display_name_max: usize,
    pub group_name_max: usize,
    /// Members of a group, its creator included.
    pub group_max_members: usize,
    pub history_limit_max: u32,
    pub search_query_max: usize,
    /// Channels one user may be in (a server setting).
    pub max_channels_per_user: usize,
}

impl Limits {
    /// The protocol's limits, with this server's channel cap.
    pub fn with_channel_cap(max_channels_per_user: usize) -> Limits {
        use crate::validate as v;
        Limits {
            text_max_chars: v::TEXT_MAX_CHARS,
            username_min: v::USERNAME_MIN,
            username_max: v::USERNAME_MAX,
            password_min: v::PASSWORD_MIN,
            display_name_max: v::DISPLAY_NAME_MAX,
            group_name_max: v::GROUP_NAME_MAX,
            group_max_members: v::GROUP_MAX_MEMBERS,
            history_limit_max: v::HISTORY_LIMIT_MAX,
            search_query_max: v::SEARCH_QUERY_MAX,
            max_channels_per_user,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_named_once_and_lives_under_v1() {
        let mut seen = std::collections::HashSet::new();
        for route in ROUTES {
            assert!(route.path.starts_with("/v1/"), "{route:?}");
            assert!(seen.insert((route.method, route.path)), "{route:?} twice");
        }
        let names: std::collections::HashSet<_> = ROUTES.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), ROUTES.len());
    }

    #[test]
    fn routes_that_name_a_channel_are_for_its_members() {
        for route in ROUTES {
            let names_channel = route.path.contains("/channels/{id}") || route.path.contains("{channel_id}");
            assert_eq!(names_channel, route.access == Access::Member, "{route:?}");
        }
    }
}
