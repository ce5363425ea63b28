//! The `Store` seam: everything chinwag keeps durably. Roles talk to storage
//! only through this trait, so the embedded SQLite backend and a cluster
//! backend are interchangeable. One contract test suite (`contract`) holds
//! every backend to the same behaviour.
//!
//! This crate must not know about sockets, the bus or HTTP.

mod change;
mod error;
mod paging;
pub mod postgres;
pub mod sqlite;
mod types;

/// The behaviour every backend must have, for `store_contract_tests!`.
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;

pub use error::StoreError;
pub use types::*;

use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;

/// Observes group commits, e.g. to export batch sizes and fsync times. Any
/// backend that commits writes in batches reports them here, so metrics
/// need not know which backend runs.
pub trait CommitObserver: Send + Sync + 'static {
    fn batch_committed(&self, jobs: usize, commit_time: std::time::Duration);
}

/// A boxed future that may move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
use chinwag_proto::{Attachment, Channel, ChannelId, DeviceId, Invitation, MessageId, User, UserId};

/// A message's attachments as stored with it (JSON, without URLs).
fn attachments_json(attachments: &[Attachment]) -> String {
    serde_json::to_string(attachments).unwrap_or_else(|_| "[]".into())
}

/// Reads [`attachments_json`]'s output; a row that cannot be read has none.
fn attachments_from_json(json: &str) -> Vec<Attachment> {
    serde_json::from_str(json).unwrap_or_default()
}

/// What a message carries of an upload (its URLs are signed on the way out).
fn attachment_of(upload: chinwag_proto::Upload) -> Attachment {
    Attachment {
        id: upload.id,
        name: upload.name,
        content_type: upload.content_type,
        size: upload.size,
        width: upload.width,
        height: upload.height,
        url: String::new(),
        thumbnail_url: None,
    }
}

/// Durable state of a chinwag deployment. Every method is atomic; a method
/// that returns `Ok` for a write has made it durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an account; `UsernameTaken` when the (lower-cased) name exists.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// The profile and password hash for a login attempt.
    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError>;
    async fn update_display_name(&self, id: UserId, display_name: &str) -> Result<User, StoreError>;

    /// Accounts with ids above `after`, ascending, for operators.
    async fn accounts(&self, after: Option<UserId>, limit: u32) -> Result<Vec<Account>, StoreError>;
    async fn account(&self, id: UserId) -> Result<Option<Account>, StoreError>;
    /// The profile of a session that may still be used: `None` when its
    /// device was revoked (logged out) or its account is disabled or gone.
    /// Cheaper than [`Store::account`], for the connect path.
    async fn active_session(&self, session: Session) -> Result<Option<User>, StoreError>;
    /// Disables an account (`true`) and revokes every token of it in the
    /// same write, returning the revoked devices so their sockets can be
    /// closed; or enables it again (`false`, returns none). `NotFound` when
    /// there is no such user.
    async fn set_disabled(&self, id: UserId, disabled: bool, now_ms: i64) -> Result<Vec<DeviceId>, StoreError>;
    /// Writes a consistent copy of the whole store to `dest` while it keeps
    /// serving. `dest` must not exist yet. `Unsupported` for engines that
    /// have their own backup tools.
    async fn backup(&self, dest: &std::path::Path) -> Result<BackupInfo, StoreError>;

    /// Registers a logged-in device under the hash of its token.
    async fn create_device(&self, device: NewDevice) -> Result<DeviceId, StoreError>;
    /// The live (not revoked) device a token hash belongs to, unless its
    /// account is disabled.
    async fn session(&self, token_hash: &[u8]) -> Result<Option<Session>, StoreError>;
    /// Revokes a device's token at once.
    async fn revoke_device(&self, device: DeviceId) -> Result<(), StoreError>;

    /// The one direct channel of a pair, created when missing (`true`);
    /// `Blocked` when it would be created between users one of whom
    /// blocked the other.
    async fn direct_channel(&self, me: UserId, other: UserId, now_ms: i64) -> Result<(Channel, bool), StoreError>;
    /// A group with its creator and `member_ids`; `NotFound` when a member
    /// does not exist, `GroupTooLarge` above the member limit, `Blocked`
    /// when a member blocked the creator.
    async fn create_group(&self, group: NewGroup) -> Result<Channel, StoreError>;
    /// The channel as `viewer` sees it, or `None` when they are not a member.
    async fn channel(&self, id: ChannelId, viewer: UserId) -> Result<Option<Channel>, StoreError>;
    /// The channel with every member's read marker, for fan-out of changes.
    async fn channel_state(&self, id: ChannelId) -> Result<Option<ChannelState>, StoreError>;
    /// Every channel `user` is a member of.
    async fn channels_of(&self, user: UserId) -> Result<Vec<Channel>, StoreError>;
    async fn members(&self, id: ChannelId) -> Result<Vec<UserId>, StoreError>;
    /// `actor` adds `user` to a group. Someone who left the group on their
    /// own is not added back by others but invited (`Invited`), and only
    /// joins by accepting. `Blocked` when `user` blocked `actor`.
    async fn add_member(
        &self,
        id: ChannelId,
        user: UserId,
        actor: UserId,
        now_ms: i64,
    ) -> Result<MemberAdded, StoreError>;
    /// `actor` removes `user` (themselves: they leave, which is
    /// remembered); `false` when they were not a member.
    async fn remove_member(&self, id: ChannelId, user: UserId, actor: UserId, now_ms: i64) -> Result<bool, StoreError>;
    /// Invitations waiting for `user`, newest first.
    async fn invitations(&self, user: UserId) -> Result<Vec<Invitation>, StoreError>;
    /// Joins the group `user` was invited back to; `NotFound` without an
    /// invitation, `GroupTooLarge` when it is full.
    async fn accept_invitation(&self, id: ChannelId, user: UserId, now_ms: i64) -> Result<(), StoreError>;
    /// Declines an invitation; `false` when there was none.
    async fn decline_invitation(&self, id: ChannelId, user: UserId) -> Result<bool, StoreError>;
    /// Those of `users` who are in at least `limit` channels.
    async fn users_at_channel_limit(&self, users: &[UserId], limit: usize) -> Result<Vec<UserId>, StoreError>;

    /// `owner` blocks `blocked`: no direct messages either way, no adding
    /// `owner` to groups, no presence of `owner`. `false` when already
    /// blocked, `NotFound` when there is no such user.
    async fn block(&self, owner: UserId, blocked: UserId, now_ms: i64) -> Result<bool, StoreError>;
    /// Lifts a block; `false` when there was none.
    async fn unblock(&self, owner: UserId, blocked: UserId) -> Result<bool, StoreError>;
    /// Whom `owner` blocked.
    async fn blocked_users(&self, owner: UserId) -> Result<Vec<User>, StoreError>;
    /// Those of `users` whose presence `viewer` may see: users who share a
    /// channel with the viewer or made the viewer a contact of theirs, and
    /// did not block the viewer (the viewer always sees themselves).
    async fn presence_visible(&self, viewer: UserId, users: &[UserId]) -> Result<Vec<UserId>, StoreError>;

    /// Stores a message under the channel's next `message_id`, or returns the
    /// original when `(channel, sender, client_msg_id)` was seen before.
    /// `NotAMember` when the sender is not in the channel; `Blocked` in a
    /// direct channel where one of the two blocked the other.
    ///
    /// Not an `async fn` on purpose: the write is queued when this is called,
    /// not when the future is first polled, so messages submitted one after
    /// the other by one task are numbered in that order while their commits
    /// still share batches.
    fn append_message(&self, message: NewMessage) -> BoxFuture<'static, Result<Appended, StoreError>>;
    /// A page of history, ascending by `message_id`, with `mentioned` set
    /// on messages that mention `viewer`. `NotAMember` when `viewer` is not
    /// in the channel: membership is checked here, with the read, never
    /// left to a cache or a bus event.
    async fn messages(
        &self,
        id: ChannelId,
        query: HistoryQuery,
        limit: u32,
        viewer: UserId,
    ) -> Result<Page, StoreError>;
    /// Moves `user`'s read marker forward (never back, never past the last
    /// message). Returns the new marker when it moved.
    /// Edits, deletes or reacts to a message, as `actor`. `NotAMember` when
    /// the actor is not a member, `MessageNotFound`, `NotAllowed` (not the
    /// sender), `TextEmpty` (an edit leaving nothing). A delete really
    /// removes the text and attachments from the message, the search
    /// index and the mentions feed.
    async fn change_message(
        &self,
        channel: ChannelId,
        message_id: MessageId,
        actor: UserId,
        change: MessageChange,
        now_ms: i64,
    ) -> Result<Changed, StoreError>;
    /// The channel's messages whose `change_seq` is above `after`,
    /// ascending by it, as `viewer` sees them (`NotAMember` otherwise).
    async fn changes(&self, channel: ChannelId, after: u64, limit: u32, viewer: UserId) -> Result<Page, StoreError>;
    async fn set_read(
        &self,
        id: ChannelId,
        user: UserId,
        message_id: MessageId,
    ) -> Result<Option<MessageId>, StoreError>;

    /// Follows `contact`'s presence; `false` when already followed,
    /// `NotFound` when there is no such user.
    async fn add_contact(&self, owner: UserId, contact: UserId, now_ms: i64) -> Result<bool, StoreError>;
    /// Stops following; `false` when not followed.
    async fn remove_contact(&self, owner: UserId, contact: UserId) -> Result<bool, StoreError>;
    /// Whom `owner` follows, by id.
    async fn contacts(&self, owner: UserId) -> Result<Vec<User>, StoreError>;
    /// Who hears of `user`'s presence: the other members of their channels
    /// and those they made contacts, less those they blocked.
    async fn presence_audience(&self, user: UserId) -> Result<Vec<UserId>, StoreError>;
    /// Records when `users` were last connected (never moving a time
    /// back), in one write however many they are.
    async fn set_last_active(&self, users: &[UserId], at_ms: i64) -> Result<(), StoreError>;
    /// `last_active_at` of each existing user among `users` (unknown ids are
    /// left out).
    async fn last_active(&self, users: &[UserId]) -> Result<Vec<(UserId, Option<i64>)>, StoreError>;

    /// Messages matching every term, newest first, only from channels the
    /// viewer is a member of.
    async fn search(&self, viewer: UserId, query: SearchQuery) -> Result<FeedPage, StoreError>;
    /// Messages mentioning the viewer in channels they are still in, newest
    /// first.
    async fn mentions(&self, viewer: UserId, before: Option<i64>, limit: u32) -> Result<FeedPage, StoreError>;

    /// Registers (or replaces) a device's push target (opaque JSON).
    async fn set_push_target(
        &self,
        device: DeviceId,
        user: UserId,
        target: String,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// A device's push target (opaque JSON), if it registered one.
    async fn push_target(&self, device: DeviceId) -> Result<Option<String>, StoreError>;
    /// Unregisters a device's push target and drops its queued pushes.
    async fn remove_push_target(&self, device: DeviceId) -> Result<(), StoreError>;
    /// Mutes or unmutes a channel for a member (`NotAMember` otherwise).
    async fn set_muted(&self, user: UserId, channel: ChannelId, muted: bool) -> Result<(), StoreError>;
    /// Devices with a push target of the channel's members other than
    /// `sender`, leaving out members who muted the channel.
    async fn push_recipients(&self, channel: ChannelId, sender: UserId) -> Result<Vec<PushRecipient>, StoreError>;
    /// Queues notifications due at `due_at_ms`, merging each into a pending
    /// one for the same device and channel.
    async fn queue_pushes(&self, items: Vec<PushItem>, due_at_ms: i64) -> Result<(), StoreError>;
    /// Claims up to `limit` queued notifications due by `now_ms`, oldest
    /// first, for `lease_ms`: until the lease runs out (or the outcome is
    /// recorded) no other claim returns them, so two deliverers never send
    /// one twice. A deliverer that dies leaves its rows to the next claim
    /// after the lease.
    async fn claim_due_pushes(&self, now_ms: i64, limit: u32, lease_ms: i64) -> Result<Vec<OutboxItem>, StoreError>;
    /// A notification was delivered: removes it unless it changed since.
    async fn push_delivered(&self, id: i64, version: i64) -> Result<(), StoreError>;
    /// A delivery failed: try again at `due_at_ms`.
    async fn push_retry(&self, id: i64, attempts: u32, due_at_ms: i64) -> Result<(), StoreError>;
    /// Drops a queued notification for good (given up).
    async fn push_dropped(&self, id: i64) -> Result<(), StoreError>;

    /// A secret every node of a deployment must share (the VAPID key, the
    /// webhook signing secret): the stored value of `name`, or `candidate`
    /// stored as it when there is none yet (the first node to ask wins).
    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError>;

    /// Records an upload whose bytes are about to be written, if its
    /// owner's uploads (stored or not, sent or not) leave room for it
    /// within `quota_bytes`; `QuotaExceeded` otherwise.
    async fn begin_upload(&self, upload: NewUpload, quota_bytes: u64) -> Result<(), StoreError>;
    /// The upload's bytes are durably stored: it may be attached now.
    /// `NotFound` when it was forgotten meanwhile.
    async fn upload_stored(&self, id: &str) -> Result<(), StoreError>;
    async fn upload(&self, id: &str) -> Result<Option<StoredUpload>, StoreError>;
    /// Whether `viewer` may fetch a stored upload: its owner, or a member
    /// of a channel holding a message with it.
    async fn may_view_upload(&self, id: &str, viewer: UserId) -> Result<bool, StoreError>;
    /// Uploads whose bytes should go (at most `limit`): never attached and
    /// begun before `unattached_before_ms`, or attached once and held by no
    /// message any more.
    async fn collectable_uploads(&self, unattached_before_ms: i64, limit: u32) -> Result<Vec<String>, StoreError>;
    /// Forgets an upload if it is still collectable (see
    /// [`Store::collectable_uploads`]); `true` when it was, and its bytes
    /// should go now. Forgotten first, so no message can attach it after.
    async fn forget_upload(&self, id: &str, unattached_before_ms: i64) -> Result<bool, StoreError>;

    /// Finishes pending writes and stops; later calls fail with `Closed`.
    async fn close(&self);
}
