//! The objects of the HTTP API and of WebSocket frames.

use crate::ids::{ChannelId, MessageId, UserId};
use serde::{Deserialize, Serialize};

/// A public profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub created_at: i64,
}

/// Whether a channel is the one conversation of a pair or a named group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Direct,
    Group,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Direct => "direct",
            ChannelKind::Group => "group",
        }
    }
}

/// A channel as one member sees it (`read_up_to` is that member's marker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: ChannelId,
    pub kind: ChannelKind,
    /// The group's name; `null` for direct channels.
    pub name: Option<String>,
    pub member_ids: Vec<UserId>,
    /// Who created the channel; only they may remove other members.
    pub created_by: UserId,
    pub last_message_id: MessageId,
    pub read_up_to: MessageId,
    pub created_at: i64,
    /// The channel's newest change (edit, delete, reaction) to an existing
    /// message: a device that knows an older one catches up with
    /// `?changed_after=`.
    #[serde(default)]
    pub last_change_seq: u64,
}

/// A stored message. `(channel_id, message_id)` names it forever.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub sender_id: UserId,
    pub client_msg_id: String,
    pub text: String,
    pub created_at: i64,
    /// True on copies for a user whom the text mentions (`@username`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub mentioned: bool,
    /// Files sent with the message, in the order the sender gave them.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// When its sender last edited the text; `null` if never.
    #[serde(default)]
    pub edited_at: Option<i64>,
    /// A tombstone: its text, attachments and reactions are gone for good.
    #[serde(default)]
    pub deleted: bool,
    /// The message of the same channel this one answers.
    #[serde(default)]
    pub reply_to: Option<MessageId>,
    /// Who reacted with what, emoji in the order first used.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    /// The channel's change that last touched this message (0: none). A
    /// copy with a higher one is newer.
    #[serde(default)]
    pub change_seq: u64,
}

/// The members who reacted to a message with one emoji, in the order
/// they did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub user_ids: Vec<UserId>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A file of a message, as its viewers receive it. Images (JPEG, PNG,
/// GIF, WebP) have `width`, `height` and a thumbnail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The upload's id.
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Where the bytes are, signed: fetchable as given (no header) for at
    /// least an hour after the message object was produced. Empty in
    /// storage; the server signs it on the way out.
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
}

/// A stored upload, as its uploader sees it before sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Opaque; what `attachments` of a `send` names.
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// An invitation to a group, for someone who left it: others cannot add
/// them back, only invite them; they join by accepting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub channel_id: ChannelId,
    /// The group's name.
    pub name: Option<String>,
    pub invited_by: UserId,
    pub created_at: i64,
}
