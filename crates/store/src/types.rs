//! Plain data passed across the `Store` seam.

use chinwag_proto::{Channel, ChannelId, Message, MessageId, User, UserId};
use std::collections::HashMap;

/// An account to create. `username` is already validated and lower-cased.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// A profile with its password hash, for checking a login.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
    /// A disabled account may not log in, however right the password.
    pub disabled: bool,
}

/// An account as an operator sees it (`chinwag admin users`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    pub last_active_at: Option<i64>,
    /// When an operator disabled it; `None` for an active account.
    pub disabled_at: Option<i64>,
    /// Logged-in devices (tokens not revoked).
    pub live_devices: u32,
}

/// A finished backup of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    pub bytes: u64,
}

/// A device being logged in.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub user_id: UserId,
    pub name: Option<String>,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
}

/// Who a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: UserId,
    pub device_id: chinwag_proto::DeviceId,
}

/// A group to create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub creator: UserId,
    pub name: String,
    pub member_ids: Vec<UserId>,
    pub created_at: i64,
}

/// A channel with every member's read marker.
#[derive(Debug, Clone)]
pub struct ChannelState {
    /// The channel with `read_up_to` 0; see [`ChannelState::for_member`].
    pub channel: Channel,
    pub read_markers: HashMap<UserId, MessageId>,
}

impl ChannelState {
    /// The channel as one member sees it.
    pub fn for_member(&self, user: UserId) -> Channel {
        let mut channel = self.channel.clone();
        channel.read_up_to = self.read_markers.get(&user).copied().unwrap_or_default();
        channel
    }
}

/// A message to store; its id is allocated by the store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub channel_id: ChannelId,
    pub sender_id: UserId,
    pub client_msg_id: String,
    pub text: String,
    pub created_at: i64,
    /// Ids of stored uploads of the sender, in order.
    pub attachments: Vec<String>,
    /// A message of the same channel that this one answers.
    pub reply_to: Option<MessageId>,
}

/// A change to a message that exists: each takes the channel's next
/// `change_seq` (unless it changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageChange {
    /// New text (its sender only).
    Edit { text: String },
    /// A tombstone in its place: text, attachments and reactions go (its
    /// sender, or the creator of the group).
    Delete,
    /// Adds (`add`) or removes the actor's reaction.
    React { emoji: String, add: bool },
}

/// What a change did.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The whole message as it is now.
    pub message: Message,
    /// False when the change was already in effect (a repeated reaction, a
    /// second delete, the same text): no `change_seq` was taken.
    pub changed: bool,
    /// The channel's members as the change's own transaction saw them.
    pub members: Vec<UserId>,
    /// Members the message's text mentions now.
    pub mentions: Vec<UserId>,
    /// Uploads that no message holds any more (a delete): their bytes can go.
    pub released_uploads: Vec<String>,
}

/// An upload about to be stored: its bytes are being written to the
/// object store, and it cannot be attached until they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    pub id: String,
    pub owner: UserId,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_at: i64,
}

/// An upload as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUpload {
    pub upload: chinwag_proto::Upload,
    pub owner: UserId,
    /// Its bytes are stored: it may be attached and served.
    pub stored: bool,
    pub created_at: i64,
}

/// The stored message, and whether it had been stored before (a resend).
#[derive(Debug, Clone)]
pub struct Appended {
    pub message: Message,
    pub duplicate: bool,
    /// Members the text mentions (`@username`); empty for a resend.
    pub mentions: Vec<UserId>,
    /// The channel's members as the append's own transaction saw them
    /// (ascending; empty for a resend): who must hear of the message,
    /// never a cache's idea of it.
    pub members: Vec<UserId>,
}

/// A full-text search over the viewer's channels.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// Words to find (all of them; the last one also as a prefix).
    pub terms: Vec<String>,
    pub channel: Option<ChannelId>,
    /// Continue below this cursor (`next_before` of the previous page).
    pub before: Option<i64>,
    pub limit: u32,
}

/// Messages newest first, with the cursor of the next page when there may
/// be one.
#[derive(Debug, Clone, Default)]
pub struct FeedPage {
    pub messages: Vec<Message>,
    pub next_before: Option<i64>,
}

/// Which part of a channel's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryQuery {
    /// The newest messages; `has_more` says whether older ones exist.
    Latest,
    /// Messages with `after < id < before` (either bound optional), oldest
    /// first; `has_more` says whether the page stopped before the range's end.
    Range { after: Option<MessageId>, before: Option<MessageId> },
    /// Messages with ids just below `before`, newest page; `has_more` says
    /// whether older ones exist.
    Before(MessageId),
    /// About half the page on each side of the id (which is included when
    /// it exists); `has_more` says whether anything lies outside the page.
    Around(MessageId),
}

/// One page of history, ascending by `message_id`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

/// A device that may get a push for a message (its target is read when
/// the notification is claimed for delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRecipient {
    pub user_id: UserId,
    pub device_id: chinwag_proto::DeviceId,
}

/// A notification to queue: it merges with a pending one for the same
/// device and channel (a burst becomes one notification).
#[derive(Debug, Clone)]
pub struct PushItem {
    pub device_id: chinwag_proto::DeviceId,
    pub channel_id: ChannelId,
    /// The latest message's notification content (JSON).
    pub payload: String,
}

/// A queued notification that is due, with where it goes.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    /// Changes at every merge: a delivery only clears the version it sent.
    pub version: i64,
    pub device_id: chinwag_proto::DeviceId,
    pub user_id: UserId,
    pub channel_id: ChannelId,
    pub target: String,
    pub payload: String,
    /// Messages merged into it.
    pub count: u32,
    pub attempts: u32,
}

/// What adding someone to a group did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAdded {
    Added,
    /// They were a member already.
    AlreadyMember,
    /// They had left the group, so others may only invite them back; an
    /// invitation now waits for them.
    Invited,
}
