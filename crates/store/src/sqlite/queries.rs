//! The SQL of the embedded store, one function per `Store` method. Each runs
//! on a connection owned by a store thread; writes run inside the writer's
//! batch transaction, so a function's statements are atomic together.

use crate::change::ChannelFacts;
use crate::paging::{self, feed_page, Budget, Run};
use crate::{
    Account, Appended, Changed, ChannelState, Credentials, FeedPage, HistoryQuery, MemberAdded, MessageChange,
    NewDevice, NewGroup, NewMessage, NewUpload, NewUser, OutboxItem, Page, PushItem, PushRecipient, SearchQuery,
    Session, StoreError, StoredUpload,
};
use chinwag_proto::validate::{GROUP_MAX_MEMBERS, PAGE_MAX_BYTES};
use chinwag_proto::{Channel, ChannelId, ChannelKind, DeviceId, Invitation, Message, MessageId, User, UserId};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::{BTreeSet, HashMap};

type Result<T> = std::result::Result<T, StoreError>;

const USER_COLS: &str = "id, username, display_name, created_at";
const MESSAGE_COLS: &str = "channel_id, message_id, sender_id, client_msg_id, text, created_at, attachments, \
    reply_to, edited_at, deleted, reactions, change_seq";
/// The message columns of `messages AS m` plus whether it mentions the
/// viewer, who is always parameter `?9`.
const VIEWED_MESSAGE: &str =
    "m.channel_id, m.message_id, m.sender_id, m.client_msg_id, m.text, m.created_at, m.attachments, \
    m.reply_to, m.edited_at, m.deleted, m.reactions, m.change_seq, \
    EXISTS (SELECT 1 FROM mentions WHERE user_id = ?9 AND msg_rowid = m.rowid), m.rowid";

fn user_from(row: &Row) -> rusqlite::Result<User> {
    Ok(User { id: UserId(row.get(0)?), username: row.get(1)?, display_name: row.get(2)?, created_at: row.get(3)? })
}

fn message_from(row: &Row) -> rusqlite::Result<Message> {
    Ok(Message {
        channel_id: ChannelId(row.get(0)?),
        message_id: MessageId(row.get(1)?),
        sender_id: UserId(row.get(2)?),
        client_msg_id: row.get(3)?,
        text: row.get(4)?,
        created_at: row.get(5)?,
        mentioned: false,
        attachments: crate::attachments_from_json(&row.get::<_, String>(6)?),
        reply_to: row.get::<_, Option<i64>>(7)?.map(MessageId),
        edited_at: row.get(8)?,
        deleted: row.get(9)?,
        reactions: crate::change::reactions_from_json(&row.get::<_, String>(10)?),
        change_seq: row.get::<_, i64>(11)? as u64,
    })
}

/// A row of `VIEWED_MESSAGE`: the message and its rowid (a feed cursor).
fn viewed_message_from(row: &Row) -> rusqlite::Result<(Message, i64)> {
    let mut message = message_from(row)?;
    message.mentioned = row.get(12)?;
    Ok((message, row.get(13)?))
}

pub fn create_user(c: &Connection, u: &NewUser) -> Result<User> {
    if user_by_username(c, &u.username)?.is_some() {
        return Err(StoreError::UsernameTaken);
    }
    c.prepare_cached("INSERT INTO users (username, display_name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![u.username, u.display_name, u.password_hash, u.created_at])?;
    Ok(User {
        id: UserId(c.last_insert_rowid()),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        created_at: u.created_at,
    })
}

pub fn user(c: &Connection, id: UserId) -> Result<Option<User>> {
    Ok(c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))?
        .query_row([id.0], user_from)
        .optional()?)
}

pub fn user_by_username(c: &Connection, username: &str) -> Result<Option<User>> {
    Ok(c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE username = ?1"))?
        .query_row([username], user_from)
        .optional()?)
}

pub fn credentials(c: &Connection, username: &str) -> Result<Option<Credentials>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {USER_COLS}, password_hash, disabled_at IS NOT NULL FROM users WHERE username = ?1"
    ))?
    .query_row([username], |row| {
        Ok(Credentials { user: user_from(row)?, password_hash: row.get(4)?, disabled: row.get(5)? })
    })
    .optional()?)
}

/// `USER_COLS` then what an operator sees of an account.
const ACCOUNT_COLS: &str = "id, username, display_name, created_at, last_active_at, disabled_at, \
    (SELECT count(*) FROM devices d WHERE d.user_id = users.id AND d.revoked_at IS NULL)";

fn account_from(row: &Row) -> rusqlite::Result<Account> {
    Ok(Account {
        user: user_from(row)?,
        last_active_at: row.get(4)?,
        disabled_at: row.get(5)?,
        live_devices: row.get(6)?,
    })
}

pub fn accounts(c: &Connection, after: Option<UserId>, limit: u32) -> Result<Vec<Account>> {
    let after = after.map_or(0, |id| id.0);
    let rows = c
        .prepare_cached(&format!("SELECT {ACCOUNT_COLS} FROM users WHERE id > ?1 ORDER BY id LIMIT ?2"))?
        .query_map(params![after, limit], account_from)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn account(c: &Connection, id: UserId) -> Result<Option<Account>> {
    Ok(c.prepare_cached(&format!("SELECT {ACCOUNT_COLS} FROM users WHERE id = ?1"))?
        .query_row([id.0], account_from)
        .optional()?)
}

pub fn active_session(c: &Connection, session: Session) -> Result<Option<User>> {
    Ok(c.prepare_cached(
        "SELECT u.id, u.username, u.display_name, u.created_at FROM users u JOIN devices d ON d.user_id = u.id \
         WHERE u.id = ?1 AND d.id = ?2 AND d.revoked_at IS NULL AND u.disabled_at IS NULL",
    )?
    .query_row(params![session.user_id.0, session.device_id.0], user_from)
    .optional()?)
}

/// Disabling revokes every live token (and push target) in the same
/// write, so no window exists where a disabled account still holds one.
pub fn set_disabled(c: &Connection, id: UserId, disabled: bool, now_ms: i64) -> Result<Vec<DeviceId>> {
    if user(c, id)?.is_none() {
        return Err(StoreError::NotFound);
    }
    if !disabled {
        c.prepare_cached("UPDATE users SET disabled_at = NULL WHERE id = ?1")?.execute([id.0])?;
        return Ok(Vec::new());
    }
    c.prepare_cached("UPDATE users SET disabled_at = coalesce(disabled_at, ?2) WHERE id = ?1")?
        .execute(params![id.0, now_ms])?;
    let devices: Vec<DeviceId> = c
        .prepare_cached("SELECT id FROM devices WHERE user_id = ?1 AND revoked_at IS NULL")?
        .query_map([id.0], |row| Ok(DeviceId(row.get(0)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for &device in &devices {
        revoke_device(c, device)?;
    }
    Ok(devices)
}

pub fn update_display_name(c: &Connection, id: UserId, display_name: &str) -> Result<User> {
    c.prepare_cached("UPDATE users SET display_name = ?2 WHERE id = ?1")?.execute(params![id.0, display_name])?;
    user(c, id)?.ok_or(StoreError::NotFound)
}

pub fn create_device(c: &Connection, d: &NewDevice) -> Result<DeviceId> {
    c.prepare_cached("INSERT INTO devices (user_id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![d.user_id.0, d.name, d.token_hash, d.created_at])?;
    Ok(DeviceId(c.last_insert_rowid()))
}

pub fn session(c: &Connection, token_hash: &[u8]) -> Result<Option<Session>> {
    Ok(c.prepare_cached(
        "SELECT d.user_id, d.id FROM devices d JOIN users u ON u.id = d.user_id \
         WHERE d.token_hash = ?1 AND d.revoked_at IS NULL AND u.disabled_at IS NULL",
    )?
    .query_row([token_hash], |row| Ok(Session { user_id: UserId(row.get(0)?), device_id: DeviceId(row.get(1)?) }))
    .optional()?)
}

/// Revoking a device also forgets its push target (a logged-out device
/// gets no more notifications).
pub fn revoke_device(c: &Connection, device: DeviceId) -> Result<()> {
    c.prepare_cached("UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")?
        .execute(params![device.0, chinwag_proto::now_ms()])?;
    remove_push_target(c, device)
}

/// The channel row and every member's read marker.
pub fn channel_state(c: &Connection, id: ChannelId) -> Result<Option<ChannelState>> {
    let row = c
        .prepare_cached(
            "SELECT kind, name, created_by, last_message_id, created_at, last_change_seq FROM channels WHERE id = ?1",
        )?
        .query_row([id.0], |row| {
            let kind: String = row.get(0)?;
            Ok((kind, row.get::<_, Option<String>>(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get::<_, i64>(5)?))
        })
        .optional()?;
    let Some((kind, name, created_by, last_message_id, created_at, last_change_seq)) = row else {
        return Ok(None);
    };
    let mut read_markers = HashMap::new();
    let mut member_ids = Vec::new();
    let mut stmt =
        c.prepare_cached("SELECT user_id, read_up_to FROM members WHERE channel_id = ?1 ORDER BY user_id")?;
    let mut rows = stmt.query([id.0])?;
    while let Some(row) = rows.next()? {
        let user = UserId(row.get(0)?);
        member_ids.push(user);
        read_markers.insert(user, MessageId(row.get(1)?));
    }
    let kind = if kind == "direct" { ChannelKind::Direct } else { ChannelKind::Group };
    Ok(Some(ChannelState {
        channel: Channel {
            id,
            kind,
            name,
            member_ids,
            created_by: UserId(created_by),
            last_message_id: MessageId(last_message_id),
            read_up_to: MessageId(0),
            created_at,
            last_change_seq: last_change_seq as u64,
        },
        read_markers,
    }))
}

pub fn channel_for(c: &Connection, id: ChannelId, viewer: UserId) -> Result<Option<Channel>> {
    Ok(channel_state(c, id)?.filter(|s| s.read_markers.contains_key(&viewer)).map(|s| s.for_member(viewer)))
}

pub fn channels_of(c: &Connection, user: UserId) -> Result<Vec<Channel>> {
    let ids: Vec<i64> = c
        .prepare_cached("SELECT channel_id FROM members WHERE user_id = ?1 ORDER BY channel_id")?
        .query_map([user.0], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut channels = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(channel) = channel_for(c, ChannelId(id), user)? {
            channels.push(channel);
        }
    }
    Ok(channels)
}

pub fn members(c: &Connection, id: ChannelId) -> Result<Vec<UserId>> {
    Ok(c.prepare_cached("SELECT user_id FROM members WHERE channel_id = ?1 ORDER BY user_id")?
        .query_map([id.0], |row| Ok(UserId(row.get(0)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

fn is_member(c: &Connection, id: ChannelId, user: UserId) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM members WHERE channel_id = ?1 AND user_id = ?2")?
        .exists(params![id.0, user.0])?)
}

/// A new member starts with everything before their arrival read: history
/// they may scroll through, not a pile of unread (a re-added member too).
fn insert_member(c: &Connection, id: ChannelId, user: UserId, now_ms: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO members (channel_id, user_id, read_up_to, joined_at) \
         VALUES (?1, ?2, (SELECT last_message_id FROM channels WHERE id = ?1), ?3)",
    )?
    .execute(params![id.0, user.0, now_ms])?;
    Ok(())
}

fn insert_channel(
    c: &Connection,
    kind: ChannelKind,
    name: Option<&str>,
    created_by: UserId,
    direct_key: Option<&str>,
    now_ms: i64,
) -> Result<ChannelId> {
    c.prepare_cached(
        "INSERT INTO channels (kind, name, created_by, direct_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![kind.as_str(), name, created_by.0, direct_key, now_ms])?;
    Ok(ChannelId(c.last_insert_rowid()))
}

/// Whether either of two users blocked the other.
fn blocked_between(c: &Connection, a: UserId, b: UserId) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM blocks WHERE (owner_id = ?1 AND blocked_id = ?2) OR (owner_id = ?2 AND blocked_id = ?1)",
    )?
    .exists(params![a.0, b.0])?)
}

/// Whether `owner` blocked `other`.
fn has_blocked(c: &Connection, owner: UserId, other: UserId) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM blocks WHERE owner_id = ?1 AND blocked_id = ?2")?
        .exists(params![owner.0, other.0])?)
}

pub fn direct_channel(c: &Connection, me: UserId, other: UserId, now_ms: i64) -> Result<(Channel, bool)> {
    if user(c, other)?.is_none() || user(c, me)?.is_none() {
        return Err(StoreError::NotFound);
    }
    let key = format!("{}:{}", me.0.min(other.0), me.0.max(other.0));
    let existing: Option<i64> = c
        .prepare_cached("SELECT id FROM channels WHERE direct_key = ?1")?
        .query_row([&key], |row| row.get(0))
        .optional()?;
    let (id, created) = match existing {
        Some(id) => (ChannelId(id), false),
        None if blocked_between(c, me, other)? => return Err(StoreError::Blocked),
        None => {
            let id = insert_channel(c, ChannelKind::Direct, None, me, Some(&key), now_ms)?;
            for user in BTreeSet::from([me, other]) {
                insert_member(c, id, user, now_ms)?;
            }
            (id, true)
        }
    };
    let channel = channel_for(c, id, me)?.ok_or(StoreError::NotFound)?;
    Ok((channel, created))
}

pub fn create_group(c: &Connection, g: &NewGroup) -> Result<Channel> {
    let mut members: BTreeSet<UserId> = g.member_ids.iter().copied().collect();
    members.insert(g.creator);
    if members.len() > GROUP_MAX_MEMBERS {
        return Err(StoreError::GroupTooLarge);
    }
    for &member in &members {
        if user(c, member)?.is_none() {
            return Err(StoreError::NotFound);
        }
        if has_blocked(c, member, g.creator)? {
            return Err(StoreError::Blocked);
        }
    }
    let id = insert_channel(c, ChannelKind::Group, Some(&g.name), g.creator, None, g.created_at)?;
    for member in members {
        insert_member(c, id, member, g.created_at)?;
    }
    channel_for(c, id, g.creator)?.ok_or(StoreError::NotFound)
}

fn check_room(c: &Connection, id: ChannelId) -> Result<()> {
    let count: i64 =
        c.prepare_cached("SELECT count(*) FROM members WHERE channel_id = ?1")?.query_row([id.0], |row| row.get(0))?;
    if count as usize >= GROUP_MAX_MEMBERS {
        return Err(StoreError::GroupTooLarge);
    }
    Ok(())
}

pub fn add_member(c: &Connection, id: ChannelId, new: UserId, actor: UserId, now_ms: i64) -> Result<MemberAdded> {
    if user(c, new)?.is_none() {
        return Err(StoreError::NotFound);
    }
    if is_member(c, id, new)? {
        return Ok(MemberAdded::AlreadyMember);
    }
    if has_blocked(c, new, actor)? {
        return Err(StoreError::Blocked);
    }
    check_room(c, id)?;
    let departed = c
        .prepare_cached("SELECT 1 FROM departures WHERE channel_id = ?1 AND user_id = ?2")?
        .exists(params![id.0, new.0])?;
    if departed && actor != new {
        c.prepare_cached(
            "INSERT INTO invitations (channel_id, user_id, invited_by, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (channel_id, user_id) DO UPDATE SET invited_by = ?3, created_at = ?4",
        )?
        .execute(params![id.0, new.0, actor.0, now_ms])?;
        return Ok(MemberAdded::Invited);
    }
    insert_member(c, id, new, now_ms)?;
    Ok(MemberAdded::Added)
}

/// Leaving on one's own is remembered, so others cannot add one back.
pub fn remove_member(c: &Connection, id: ChannelId, user: UserId, actor: UserId, now_ms: i64) -> Result<bool> {
    let removed = c
        .prepare_cached("DELETE FROM members WHERE channel_id = ?1 AND user_id = ?2")?
        .execute(params![id.0, user.0])?;
    if removed > 0 && actor == user {
        c.prepare_cached(
            "INSERT INTO departures (channel_id, user_id, left_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (channel_id, user_id) DO UPDATE SET left_at = ?3",
        )?
        .execute(params![id.0, user.0, now_ms])?;
    }
    Ok(removed > 0)
}

pub fn invitations(c: &Connection, user: UserId) -> Result<Vec<Invitation>> {
    Ok(c.prepare_cached(
        "SELECT i.channel_id, ch.name, i.invited_by, i.created_at FROM invitations i \
         JOIN channels ch ON ch.id = i.channel_id WHERE i.user_id = ?1 ORDER BY i.created_at DESC",
    )?
    .query_map([user.0], |row| {
        Ok(Invitation {
            channel_id: ChannelId(row.get(0)?),
            name: row.get(1)?,
            invited_by: UserId(row.get(2)?),
            created_at: row.get(3)?,
        })
    })?
    .collect::<rusqlite::Result<_>>()?)
}

pub fn accept_invitation(c: &Connection, id: ChannelId, user: UserId, now_ms: i64) -> Result<()> {
    let invited = c
        .prepare_cached("SELECT 1 FROM invitations WHERE channel_id = ?1 AND user_id = ?2")?
        .exists(params![id.0, user.0])?;
    if !invited {
        return Err(StoreError::NotFound);
    }
    if !is_member(c, id, user)? {
        check_room(c, id)?;
        insert_member(c, id, user, now_ms)?;
    }
    c.prepare_cached("DELETE FROM invitations WHERE channel_id = ?1 AND user_id = ?2")?
        .execute(params![id.0, user.0])?;
    c.prepare_cached("DELETE FROM departures WHERE channel_id = ?1 AND user_id = ?2")?
        .execute(params![id.0, user.0])?;
    Ok(())
}

pub fn decline_invitation(c: &Connection, id: ChannelId, user: UserId) -> Result<bool> {
    let removed = c
        .prepare_cached("DELETE FROM invitations WHERE channel_id = ?1 AND user_id = ?2")?
        .execute(params![id.0, user.0])?;
    Ok(removed > 0)
}

pub fn users_at_channel_limit(c: &Connection, users: &[UserId], limit: usize) -> Result<Vec<UserId>> {
    let mut count = c.prepare_cached("SELECT count(*) FROM members WHERE user_id = ?1")?;
    let mut full = Vec::new();
    for &user in users {
        let n: i64 = count.query_row([user.0], |row| row.get(0))?;
        if n as usize >= limit {
            full.push(user);
        }
    }
    Ok(full)
}

pub fn block(c: &Connection, owner: UserId, blocked: UserId, now_ms: i64) -> Result<bool> {
    if user(c, blocked)?.is_none() {
        return Err(StoreError::NotFound);
    }
    let added = c
        .prepare_cached("INSERT OR IGNORE INTO blocks (owner_id, blocked_id, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![owner.0, blocked.0, now_ms])?;
    Ok(added > 0)
}

pub fn unblock(c: &Connection, owner: UserId, blocked: UserId) -> Result<bool> {
    let removed = c
        .prepare_cached("DELETE FROM blocks WHERE owner_id = ?1 AND blocked_id = ?2")?
        .execute(params![owner.0, blocked.0])?;
    Ok(removed > 0)
}

pub fn blocked_users(c: &Connection, owner: UserId) -> Result<Vec<User>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users WHERE id IN (SELECT blocked_id FROM blocks WHERE owner_id = ?1) ORDER BY id"
    ))?
    .query_map([owner.0], user_from)?
    .collect::<rusqlite::Result<_>>()?)
}

pub fn presence_visible(c: &Connection, viewer: UserId, users: &[UserId]) -> Result<Vec<UserId>> {
    let mut visible = c.prepare_cached(
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM blocks WHERE owner_id = ?1 AND blocked_id = ?2) AND ( \
           EXISTS (SELECT 1 FROM contacts WHERE owner_id = ?1 AND contact_id = ?2) \
           OR EXISTS (SELECT 1 FROM members mine JOIN members theirs ON theirs.channel_id = mine.channel_id \
                      WHERE mine.user_id = ?2 AND theirs.user_id = ?1))",
    )?;
    let mut seen = Vec::new();
    for &user in users {
        if user == viewer || visible.exists(params![user.0, viewer.0])? {
            seen.push(user);
        }
    }
    Ok(seen)
}

/// The message a sender stored in a channel under a `client_msg_id`:
/// idempotency is scoped to the channel, so a key reused in another
/// channel finds nothing here (and reveals nothing of that channel).
fn message_by_client_id(c: &Connection, m: &NewMessage) -> Result<Option<Message>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {MESSAGE_COLS} FROM messages WHERE channel_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3"
    ))?
    .query_row(params![m.channel_id.0, m.sender_id.0, m.client_msg_id], message_from)
    .optional()?)
}

/// Idempotency first (a resend is answered with the original), then the
/// channel's next id. Both happen inside the writer's transaction, so ids are
/// allocated and committed in order with no gaps.
pub fn append_message(c: &Connection, m: NewMessage) -> Result<Appended> {
    if let Some(message) = message_by_client_id(c, &m)? {
        return Ok(Appended { message, duplicate: true, mentions: Vec::new(), members: Vec::new() });
    }
    let members = members(c, m.channel_id)?;
    if !members.contains(&m.sender_id) {
        return Err(StoreError::NotAMember);
    }
    // In a direct channel, a block on either side stops messages.
    let blocked: bool = c
        .prepare_cached(
            "SELECT 1 FROM channels ch JOIN members other ON other.channel_id = ch.id AND other.user_id != ?2 \
             JOIN blocks b ON (b.owner_id = other.user_id AND b.blocked_id = ?2) OR (b.owner_id = ?2 AND b.blocked_id = other.user_id) \
             WHERE ch.id = ?1 AND ch.direct_key IS NOT NULL",
        )?
        .exists(params![m.channel_id.0, m.sender_id.0])?;
    if blocked {
        return Err(StoreError::Blocked);
    }
    let attachments = attachments_of(c, &m)?;
    if let Some(reply_to) = m.reply_to {
        // Ids have no holes: every id from 1 to the newest exists.
        let last: i64 = c
            .prepare_cached("SELECT last_message_id FROM channels WHERE id = ?1")?
            .query_row([m.channel_id.0], |row| row.get(0))?;
        if !(1..=last).contains(&reply_to.0) {
            return Err(StoreError::MessageNotFound);
        }
    }
    let id: i64 = c
        .prepare_cached(
            "UPDATE channels SET last_message_id = last_message_id + 1 WHERE id = ?1 RETURNING last_message_id",
        )?
        .query_row([m.channel_id.0], |row| row.get(0))?;
    c.prepare_cached(
        "INSERT INTO messages (channel_id, message_id, sender_id, client_msg_id, text, created_at, attachments, reply_to) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        m.channel_id.0,
        id,
        m.sender_id.0,
        m.client_msg_id,
        m.text,
        m.created_at,
        crate::attachments_json(&attachments),
        m.reply_to.map(|r| r.0),
    ])?;
    let mentions = record_mentions(c, m.channel_id, m.sender_id, &m.text, c.last_insert_rowid())?;
    for upload in &m.attachments {
        c.prepare_cached("INSERT OR IGNORE INTO attachments (upload_id, channel_id, message_id) VALUES (?1, ?2, ?3)")?
            .execute(params![upload, m.channel_id.0, id])?;
        c.prepare_cached("UPDATE uploads SET attached = 1 WHERE id = ?1")?.execute([upload])?;
    }
    Ok(Appended {
        mentions,
        members,
        message: Message {
            channel_id: m.channel_id,
            message_id: MessageId(id),
            sender_id: m.sender_id,
            client_msg_id: m.client_msg_id,
            text: m.text,
            created_at: m.created_at,
            mentioned: false,
            attachments,
            edited_at: None,
            deleted: false,
            reply_to: m.reply_to,
            reactions: Vec::new(),
            change_seq: 0,
        },
        duplicate: false,
    })
}

/// The attachments a new message names: stored uploads of its sender,
/// else `NotFound`.
fn attachments_of(c: &Connection, m: &NewMessage) -> Result<Vec<chinwag_proto::Attachment>> {
    let mut found = Vec::with_capacity(m.attachments.len());
    for id in &m.attachments {
        let upload = c
            .prepare_cached(&format!(
                "SELECT {UPLOAD_COLS} FROM uploads WHERE id = ?1 AND owner_id = ?2 AND stored = 1"
            ))?
            .query_row(params![id, m.sender_id.0], upload_from)
            .optional()?
            .ok_or(StoreError::NotFound)?;
        found.push(crate::attachment_of(upload.upload));
    }
    Ok(found)
}

const UPLOAD_COLS: &str = "id, name, content_type, size, width, height, owner_id, stored, created_at";

fn upload_from(row: &Row) -> rusqlite::Result<StoredUpload> {
    Ok(StoredUpload {
        upload: chinwag_proto::Upload {
            id: row.get(0)?,
            name: row.get(1)?,
            content_type: row.get(2)?,
            size: row.get::<_, i64>(3)? as u64,
            width: row.get(4)?,
            height: row.get(5)?,
        },
        owner: UserId(row.get(6)?),
        stored: row.get(7)?,
        created_at: row.get(8)?,
    })
}

/// Records an upload if its owner's uploads leave room within the quota.
pub fn begin_upload(c: &Connection, u: &NewUpload, quota_bytes: u64) -> Result<()> {
    let used: i64 = c
        .prepare_cached("SELECT coalesce(sum(size), 0) FROM uploads WHERE owner_id = ?1")?
        .query_row([u.owner.0], |r| r.get(0))?;
    if used as u64 + u.size > quota_bytes {
        return Err(StoreError::QuotaExceeded);
    }
    c.prepare_cached(
        "INSERT INTO uploads (id, owner_id, name, content_type, size, width, height, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![u.id, u.owner.0, u.name, u.content_type, u.size as i64, u.width, u.height, u.created_at])?;
    Ok(())
}

pub fn upload_stored(c: &Connection, id: &str) -> Result<()> {
    match c.prepare_cached("UPDATE uploads SET stored = 1 WHERE id = ?1")?.execute([id])? {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

pub fn upload(c: &Connection, id: &str) -> Result<Option<StoredUpload>> {
    Ok(c.prepare_cached(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = ?1"))?
        .query_row([id], upload_from)
        .optional()?)
}

pub fn may_view_upload(c: &Connection, id: &str, viewer: UserId) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM uploads WHERE id = ?1 AND stored = 1 AND (owner_id = ?2 OR EXISTS ( \
           SELECT 1 FROM attachments a JOIN members mb ON mb.channel_id = a.channel_id \
           WHERE a.upload_id = ?1 AND mb.user_id = ?2))",
    )?
    .exists(params![id, viewer.0])?)
}

/// Uploads whose bytes should go (`u`; `?1` is the cut-off for uploads
/// never attached).
const COLLECTABLE: &str = "(u.attached = 0 AND u.created_at < ?1) \
    OR (u.attached = 1 AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.upload_id = u.id))";

pub fn collectable_uploads(c: &Connection, unattached_before_ms: i64, limit: u32) -> Result<Vec<String>> {
    Ok(c.prepare_cached(&format!("SELECT id FROM uploads u WHERE {COLLECTABLE} LIMIT ?2"))?
        .query_map(params![unattached_before_ms, limit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn forget_upload(c: &Connection, id: &str, unattached_before_ms: i64) -> Result<bool> {
    let forgotten = c
        .prepare_cached(&format!("DELETE FROM uploads AS u WHERE u.id = ?2 AND ({COLLECTABLE})"))?
        .execute(params![unattached_before_ms, id])?
        > 0;
    if forgotten {
        c.prepare_cached("DELETE FROM attachments WHERE upload_id = ?1")?.execute([id])?;
    }
    Ok(forgotten)
}

/// Stores who among the channel's members (other than the sender) the text
/// mentions.
fn record_mentions(c: &Connection, channel: ChannelId, sender: UserId, text: &str, rowid: i64) -> Result<Vec<UserId>> {
    let names = chinwag_proto::mentions::mentioned_usernames(text);
    let mut mentioned = Vec::new();
    for name in names {
        let member: Option<i64> = c
            .prepare_cached(
                "SELECT u.id FROM users u JOIN members mb ON mb.user_id = u.id AND mb.channel_id = ?1 \
                 WHERE u.username = ?2",
            )?
            .query_row(params![channel.0, name], |row| row.get(0))
            .optional()?;
        if let Some(user) = member.map(UserId).filter(|&u| u != sender) {
            c.prepare_cached("INSERT OR IGNORE INTO mentions (user_id, msg_rowid) VALUES (?1, ?2)")?
                .execute(params![user.0, rowid])?;
            mentioned.push(user);
        }
    }
    Ok(mentioned)
}

/// An edit, delete or reaction: every check first (membership, the
/// message, the rule of [`crate::change::apply`]), then the channel's next
/// `change_seq`, the row, the search index, the mentions and the
/// attachments, all in the writer's transaction.
pub fn change_message(
    c: &Connection,
    channel: ChannelId,
    message_id: MessageId,
    actor: UserId,
    change: &MessageChange,
    now_ms: i64,
) -> Result<Changed> {
    let members = members(c, channel)?;
    if !members.contains(&actor) {
        return Err(StoreError::NotAMember);
    }
    let (kind, created_by): (String, i64) = c
        .prepare_cached("SELECT kind, created_by FROM channels WHERE id = ?1")?
        .query_row([channel.0], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let facts = ChannelFacts {
        kind: if kind == "direct" { ChannelKind::Direct } else { ChannelKind::Group },
        created_by: UserId(created_by),
    };
    let (before, rowid) = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLS}, rowid FROM messages WHERE channel_id = ?1 AND message_id = ?2"
        ))?
        .query_row(params![channel.0, message_id.0], |row| Ok((message_from(row)?, row.get::<_, i64>(12)?)))
        .optional()?
        .ok_or(StoreError::MessageNotFound)?;
    let mut message = before.clone();
    if !crate::change::apply(&mut message, actor, facts, change, now_ms)? {
        let mentions = mentioned_in(c, rowid)?;
        return Ok(Changed { message, changed: false, members, mentions, released_uploads: Vec::new() });
    }
    let seq: i64 = c
        .prepare_cached(
            "UPDATE channels SET last_change_seq = last_change_seq + 1 WHERE id = ?1 RETURNING last_change_seq",
        )?
        .query_row([channel.0], |row| row.get(0))?;
    message.change_seq = seq as u64;
    c.prepare_cached(
        "UPDATE messages SET text = ?2, attachments = ?3, edited_at = ?4, deleted = ?5, reactions = ?6, change_seq = ?7 \
         WHERE rowid = ?1",
    )?
    .execute(params![
        rowid,
        message.text,
        crate::attachments_json(&message.attachments),
        message.edited_at,
        message.deleted,
        crate::change::reactions_json(&message.reactions),
        seq,
    ])?;
    let mut mentions = mentioned_in(c, rowid)?;
    if message.text != before.text {
        reindex(c, rowid, &before.text, &message.text)?;
        c.prepare_cached("DELETE FROM mentions WHERE msg_rowid = ?1")?.execute([rowid])?;
        mentions = record_mentions(c, channel, message.sender_id, &message.text, rowid)?;
    }
    let mut released_uploads = Vec::new();
    if message.attachments.len() < before.attachments.len() {
        c.prepare_cached("DELETE FROM attachments WHERE channel_id = ?1 AND message_id = ?2")?
            .execute(params![channel.0, message_id.0])?;
        for attachment in &before.attachments {
            let held = c.prepare_cached("SELECT 1 FROM attachments WHERE upload_id = ?1")?.exists([&attachment.id])?;
            if !held {
                released_uploads.push(attachment.id.clone());
            }
        }
    }
    Ok(Changed { message, changed: true, members, mentions, released_uploads })
}

/// Who a stored message mentions.
fn mentioned_in(c: &Connection, rowid: i64) -> Result<Vec<UserId>> {
    Ok(c.prepare_cached("SELECT user_id FROM mentions WHERE msg_rowid = ?1 ORDER BY user_id")?
        .query_map([rowid], |row| Ok(UserId(row.get(0)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Replaces a message's text in the search index. A message the index has
/// not reached yet (`index_new_messages` runs at the end of the batch)
/// is indexed with its new text then; with FTS5's `secure-delete` the
/// old words leave the index's pages at once.
fn reindex(c: &Connection, rowid: i64, old: &str, new: &str) -> Result<()> {
    let indexed: i64 =
        c.prepare_cached("SELECT indexed_rowid FROM search_progress WHERE id = 1")?.query_row([], |row| row.get(0))?;
    if rowid > indexed {
        return Ok(());
    }
    c.prepare_cached("INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', ?1, ?2)")?
        .execute(params![rowid, old])?;
    if !new.is_empty() {
        c.prepare_cached("INSERT INTO messages_fts (rowid, text) VALUES (?1, ?2)")?.execute(params![rowid, new])?;
    }
    Ok(())
}

/// Messages changed after `after`, ascending by `change_seq`.
pub fn changes(c: &Connection, id: ChannelId, after: u64, limit: u32, viewer: UserId) -> Result<Page> {
    if !is_member(c, id, viewer)? {
        return Err(StoreError::NotAMember);
    }
    let run = Run {
        lower: i64::try_from(after).unwrap_or(i64::MAX),
        upper: i64::MAX,
        descending: false,
        limit,
        budget: Budget::Page(PAGE_MAX_BYTES),
    };
    let messages: Vec<Message> = c
        .prepare_cached(&format!(
            "SELECT {VIEWED_MESSAGE} FROM messages m \
             WHERE m.channel_id = ?1 AND m.change_seq > ?2 ORDER BY m.change_seq LIMIT ?3"
        ))?
        .query_map(
            rusqlite::named_params! {"?1": id.0, "?2": run.lower, "?3": i64::from(limit) + 1, "?9": viewer.0},
            |row| viewed_message_from(row).map(|(m, _)| m),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let (messages, has_more) = run.finish(messages);
    Ok(Page { messages, has_more })
}

fn message_run(c: &Connection, id: ChannelId, viewer: UserId, run: Run) -> Result<(Vec<Message>, bool)> {
    let order = if run.descending { "DESC" } else { "ASC" };
    let messages: Vec<Message> = c
        .prepare_cached(&format!(
            "SELECT {VIEWED_MESSAGE} FROM messages m \
             WHERE m.channel_id = ?1 AND m.message_id > ?2 AND m.message_id < ?3 \
             ORDER BY m.message_id {order} LIMIT ?4"
        ))?
        .query_map(
            rusqlite::named_params! {
                "?1": id.0, "?2": run.lower, "?3": run.upper, "?4": i64::from(run.limit) + 1, "?9": viewer.0
            },
            |row| viewed_message_from(row).map(|(m, _)| m),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(run.finish(messages))
}

pub fn messages(c: &Connection, id: ChannelId, query: HistoryQuery, limit: u32, viewer: UserId) -> Result<Page> {
    if !is_member(c, id, viewer)? {
        return Err(StoreError::NotAMember);
    }
    let full = Budget::Page(PAGE_MAX_BYTES);
    let run = |lower, upper, descending, limit, budget| {
        message_run(c, id, viewer, Run { lower, upper, descending, limit, budget })
    };
    let (messages, has_more) = match query {
        HistoryQuery::Latest => run(0, i64::MAX, true, limit, full)?,
        HistoryQuery::Before(before) => run(0, before.0, true, limit, full)?,
        HistoryQuery::Range { after, before } => {
            run(after.map_or(0, |m| m.0), before.map_or(i64::MAX, |m| m.0), false, limit, full)?
        }
        HistoryQuery::Around(center) => {
            // The center and what follows first; older messages get the
            // rest of the page's bytes.
            let older_limit = limit / 2;
            let (newer, newer_more) = run(center.0 - 1, i64::MAX, false, limit - older_limit, full)?;
            let rest = paging::rest_after(&newer);
            let (mut older, older_more) = if older_limit > 0 {
                run(0, center.0, true, older_limit, rest)?
            } else {
                let more = c
                    .prepare_cached("SELECT 1 FROM messages WHERE channel_id = ?1 AND message_id < ?2")?
                    .exists(params![id.0, center.0])?;
                (Vec::new(), more)
            };
            older.extend(newer);
            (older, older_more || newer_more)
        }
    };
    Ok(Page { messages, has_more })
}

pub fn set_read(c: &Connection, id: ChannelId, user: UserId, message_id: MessageId) -> Result<Option<MessageId>> {
    let current: Option<(i64, i64)> = c
        .prepare_cached(
            "SELECT m.read_up_to, ch.last_message_id FROM members m JOIN channels ch ON ch.id = m.channel_id \
             WHERE m.channel_id = ?1 AND m.user_id = ?2",
        )?
        .query_row(params![id.0, user.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (read_up_to, last) = current.ok_or(StoreError::NotAMember)?;
    let target = message_id.0.min(last);
    if target <= read_up_to {
        return Ok(None);
    }
    c.prepare_cached("UPDATE members SET read_up_to = ?3 WHERE channel_id = ?1 AND user_id = ?2")?
        .execute(params![id.0, user.0, target])?;
    Ok(Some(MessageId(target)))
}

pub fn add_contact(c: &Connection, owner: UserId, contact: UserId, now_ms: i64) -> Result<bool> {
    if user(c, contact)?.is_none() {
        return Err(StoreError::NotFound);
    }
    let added = c
        .prepare_cached("INSERT OR IGNORE INTO contacts (owner_id, contact_id, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![owner.0, contact.0, now_ms])?;
    Ok(added > 0)
}

pub fn remove_contact(c: &Connection, owner: UserId, contact: UserId) -> Result<bool> {
    let removed = c
        .prepare_cached("DELETE FROM contacts WHERE owner_id = ?1 AND contact_id = ?2")?
        .execute(params![owner.0, contact.0])?;
    Ok(removed > 0)
}

pub fn contacts(c: &Connection, owner: UserId) -> Result<Vec<User>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users WHERE id IN (SELECT contact_id FROM contacts WHERE owner_id = ?1) ORDER BY id"
    ))?
    .query_map([owner.0], user_from)?
    .collect::<rusqlite::Result<_>>()?)
}

pub fn presence_audience(c: &Connection, user: UserId) -> Result<Vec<UserId>> {
    Ok(c.prepare_cached(
        "SELECT contact_id FROM contacts WHERE owner_id = ?1 \
         UNION \
         SELECT other.user_id FROM members mine JOIN members other ON other.channel_id = mine.channel_id \
         WHERE mine.user_id = ?1 AND other.user_id != ?1 \
         EXCEPT \
         SELECT blocked_id FROM blocks WHERE owner_id = ?1",
    )?
    .query_map([user.0], |row| Ok(UserId(row.get(0)?)))?
    .collect::<rusqlite::Result<_>>()?)
}

pub fn set_last_active(c: &Connection, users: &[UserId], at_ms: i64) -> Result<()> {
    let mut update =
        c.prepare_cached("UPDATE users SET last_active_at = max(coalesce(last_active_at, 0), ?2) WHERE id = ?1")?;
    for user in users {
        update.execute(params![user.0, at_ms])?;
    }
    Ok(())
}

pub fn last_active(c: &Connection, users: &[UserId]) -> Result<Vec<(UserId, Option<i64>)>> {
    let mut stmt = c.prepare_cached("SELECT last_active_at FROM users WHERE id = ?1")?;
    let mut found = Vec::with_capacity(users.len());
    for &user in users {
        if let Some(at) = stmt.query_row([user.0], |row| row.get::<_, Option<i64>>(0)).optional()? {
            found.push((user, at));
        }
    }
    Ok(found)
}

/// An FTS5 query matching every term literally (each quoted, so user input
/// cannot inject FTS syntax); the last term also matches as a prefix.
fn fts_query(terms: &[String]) -> String {
    let quoted: Vec<String> = terms.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect();
    format!("{}*", quoted.join(" "))
}

pub fn search(c: &Connection, viewer: UserId, q: &SearchQuery) -> Result<FeedPage> {
    if q.terms.is_empty() {
        return Ok(FeedPage::default());
    }
    let rows = c
        .prepare_cached(&format!(
            "SELECT {VIEWED_MESSAGE} FROM messages_fts f JOIN messages m ON m.rowid = f.rowid \
             WHERE messages_fts MATCH ?1 \
               AND m.channel_id IN (SELECT channel_id FROM members WHERE user_id = ?9) \
               AND (?2 IS NULL OR m.channel_id = ?2) AND m.rowid < ?3 \
             ORDER BY m.rowid DESC LIMIT ?4"
        ))?
        .query_map(
            rusqlite::named_params! {
                "?1": fts_query(&q.terms),
                "?2": q.channel.map(|c| c.0),
                "?3": q.before.unwrap_or(i64::MAX),
                "?4": i64::from(q.limit) + 1,
                "?9": viewer.0,
            },
            viewed_message_from,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(feed_page(rows, q.limit))
}

pub fn mentions(c: &Connection, viewer: UserId, before: Option<i64>, limit: u32) -> Result<FeedPage> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT {VIEWED_MESSAGE} FROM mentions mn JOIN messages m ON m.rowid = mn.msg_rowid \
             WHERE mn.user_id = ?9 AND mn.msg_rowid < ?1 \
               AND m.channel_id IN (SELECT channel_id FROM members WHERE user_id = ?9) \
             ORDER BY mn.msg_rowid DESC LIMIT ?2"
        ))?
        .query_map(
            rusqlite::named_params! {"?1": before.unwrap_or(i64::MAX), "?2": i64::from(limit) + 1, "?9": viewer.0},
            viewed_message_from,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(feed_page(rows, limit))
}

/// Adds the messages stored since the last call to the search index, as
/// the last statement of a batch. Once FTS5 has been written in a
/// transaction it flushes at every later statement, so indexing per message
/// would flush per message; this flushes once per batch, and a message is
/// still searchable as soon as its batch commits.
pub fn index_new_messages(c: &Connection) -> Result<()> {
    let indexed: i64 =
        c.prepare_cached("SELECT indexed_rowid FROM search_progress WHERE id = 1")?.query_row([], |row| row.get(0))?;
    let newest: i64 =
        c.prepare_cached("SELECT coalesce(max(rowid), 0) FROM messages")?.query_row([], |row| row.get(0))?;
    if newest > indexed {
        c.prepare_cached("INSERT INTO messages_fts (rowid, text) SELECT rowid, text FROM messages WHERE rowid > ?1")?
            .execute([indexed])?;
        c.prepare_cached("UPDATE search_progress SET indexed_rowid = ?1 WHERE id = 1")?.execute([newest])?;
    }
    Ok(())
}

pub fn set_push_target(c: &Connection, device: DeviceId, user: UserId, target: &str, now_ms: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO push_targets (device_id, user_id, target, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (device_id) DO UPDATE SET target = excluded.target, created_at = excluded.created_at",
    )?
    .execute(params![device.0, user.0, target, now_ms])?;
    Ok(())
}

pub fn push_target(c: &Connection, device: DeviceId) -> Result<Option<String>> {
    Ok(c.prepare_cached("SELECT target FROM push_targets WHERE device_id = ?1")?
        .query_row([device.0], |row| row.get(0))
        .optional()?)
}

pub fn remove_push_target(c: &Connection, device: DeviceId) -> Result<()> {
    c.prepare_cached("DELETE FROM push_targets WHERE device_id = ?1")?.execute([device.0])?;
    c.prepare_cached("DELETE FROM push_outbox WHERE device_id = ?1")?.execute([device.0])?;
    Ok(())
}

pub fn set_muted(c: &Connection, user: UserId, channel: ChannelId, muted: bool) -> Result<()> {
    if !is_member(c, channel, user)? {
        return Err(StoreError::NotAMember);
    }
    let sql = if muted {
        "INSERT OR IGNORE INTO mutes (user_id, channel_id) VALUES (?1, ?2)"
    } else {
        "DELETE FROM mutes WHERE user_id = ?1 AND channel_id = ?2"
    };
    c.prepare_cached(sql)?.execute(params![user.0, channel.0])?;
    Ok(())
}

pub fn push_recipients(c: &Connection, channel: ChannelId, sender: UserId) -> Result<Vec<PushRecipient>> {
    Ok(c.prepare_cached(
        "SELECT p.user_id, p.device_id FROM members m JOIN push_targets p ON p.user_id = m.user_id \
         WHERE m.channel_id = ?1 AND m.user_id != ?2 \
           AND NOT EXISTS (SELECT 1 FROM mutes u WHERE u.user_id = m.user_id AND u.channel_id = ?1) \
         ORDER BY p.device_id",
    )?
    .query_map(params![channel.0, sender.0], |row| {
        Ok(PushRecipient { user_id: UserId(row.get(0)?), device_id: DeviceId(row.get(1)?) })
    })?
    .collect::<rusqlite::Result<_>>()?)
}

/// A pending notification for the same device and channel absorbs the new
/// one: its content becomes the latest message, its count grows, and its
/// due time stays (so a burst goes out as one notification).
pub fn queue_pushes(c: &Connection, items: &[PushItem], due_at_ms: i64) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO push_outbox (device_id, channel_id, payload, count, due_at) VALUES (?1, ?2, ?3, 1, ?4) \
         ON CONFLICT (device_id, channel_id) DO UPDATE SET payload = excluded.payload, \
             count = count + 1, version = version + 1",
    )?;
    for item in items {
        stmt.execute(params![item.device_id.0, item.channel_id.0, item.payload, due_at_ms])?;
    }
    Ok(())
}

/// Claims due rows: they are read and leased in the writer's transaction,
/// so two deliverers never get the same row while its lease runs.
pub fn claim_due_pushes(c: &Connection, now_ms: i64, limit: u32, lease_ms: i64) -> Result<Vec<OutboxItem>> {
    let items: Vec<OutboxItem> = c
        .prepare_cached(
            "SELECT o.id, o.version, o.device_id, p.user_id, o.channel_id, p.target, o.payload, o.count, o.attempts \
             FROM push_outbox o JOIN push_targets p ON p.device_id = o.device_id \
             WHERE o.due_at <= ?1 AND o.claimed_until <= ?1 ORDER BY o.due_at LIMIT ?2",
        )?
        .query_map(params![now_ms, limit], |row| {
            Ok(OutboxItem {
                id: row.get(0)?,
                version: row.get(1)?,
                device_id: DeviceId(row.get(2)?),
                user_id: UserId(row.get(3)?),
                channel_id: ChannelId(row.get(4)?),
                target: row.get(5)?,
                payload: row.get(6)?,
                count: row.get(7)?,
                attempts: row.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut lease = c.prepare_cached("UPDATE push_outbox SET claimed_until = ?2 WHERE id = ?1")?;
    for item in &items {
        lease.execute(params![item.id, now_ms + lease_ms])?;
    }
    Ok(items)
}

/// Removes the row unless it changed since it was claimed; a changed row
/// (a message merged in meanwhile) is released for its next delivery.
pub fn push_delivered(c: &Connection, id: i64, version: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM push_outbox WHERE id = ?1 AND version = ?2")?.execute(params![id, version])?;
    c.prepare_cached("UPDATE push_outbox SET claimed_until = 0 WHERE id = ?1")?.execute([id])?;
    Ok(())
}

pub fn push_retry(c: &Connection, id: i64, attempts: u32, due_at_ms: i64) -> Result<()> {
    c.prepare_cached("UPDATE push_outbox SET attempts = ?2, due_at = ?3, claimed_until = 0 WHERE id = ?1")?
        .execute(params![id, attempts, due_at_ms])?;
    Ok(())
}

pub fn push_dropped(c: &Connection, id: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM push_outbox WHERE id = ?1")?.execute([id])?;
    Ok(())
}

pub fn shared_secret(c: &Connection, name: &str, candidate: &str) -> Result<String> {
    c.prepare_cached("INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)")?
        .execute(params![name, candidate])?;
    Ok(c.prepare_cached("SELECT value FROM secrets WHERE name = ?1")?.query_row([name], |row| row.get(0))?)
}
