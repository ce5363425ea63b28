//! The cluster store: PostgreSQL through a connection pool.
//!
//! Appends are group-committed by writer tasks (`append`); every other
//! method is one short transaction or statement on a pooled connection.
//! Races between nodes are settled by the engine: unique indexes (names,
//! direct pairs, idempotency keys), row locks on the channel (member
//! counts, ids) and single-statement updates (read markers), so each
//! conflicting write gets the same answer it would get on one node.
//!
//! A lost connection (restart, failover) surfaces as
//! `StoreError::Unavailable`; the pool reconnects on the next call.

mod append;
pub mod local;
mod schema;
mod search;

use crate::change::ChannelFacts;
use crate::paging::{self, feed_page, Budget, Run};
use crate::{
    Account, Appended, BackupInfo, BoxFuture, Changed, ChannelState, CommitObserver, Credentials, FeedPage,
    HistoryQuery, MemberAdded, MessageChange, NewDevice, NewGroup, NewMessage, NewUpload, NewUser, OutboxItem, Page,
    PushItem, PushRecipient, SearchQuery, Session, Store, StoreError, StoredUpload,
};
use append::AppendJob;
use async_trait::async_trait;
use chinwag_proto::validate::{GROUP_MAX_MEMBERS, PAGE_MAX_BYTES};
use chinwag_proto::{Channel, ChannelId, ChannelKind, DeviceId, Invitation, Message, MessageId, User, UserId};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_postgres::Row;

pub use local::LocalPostgres;

type Result<T> = std::result::Result<T, StoreError>;

/// Appends waiting per writer; callers wait (backpressure) beyond this.
const WRITE_QUEUE: usize = 8192;

/// Settings of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user@host:port/db`.
    pub url: String,
    /// Pooled connections for everything but appends.
    pub pool_size: usize,
    /// Writer tasks for appends (each with its own connection at a time).
    pub writers: usize,
}

impl PgConfig {
    pub fn new(url: &str) -> PgConfig {
        PgConfig { url: url.to_owned(), pool_size: 16, writers: 4 }
    }
}

/// The PostgreSQL backend.
pub struct PgStore {
    pool: Pool,
    /// The writers' queues; emptied by `close`.
    writers: std::sync::RwLock<Vec<flume::Sender<AppendJob>>>,
    tasks: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

const USER_COLS: &str = "id, username, display_name, created_at";
const MESSAGE_COLS: &str = "m.channel_id, m.message_id, m.sender_id, m.client_msg_id, m.text, m.created_at, \
    m.attachments, m.reply_to, m.edited_at, m.deleted, m.reactions, m.change_seq";

fn user_from(row: &Row) -> User {
    User { id: UserId(row.get(0)), username: row.get(1), display_name: row.get(2), created_at: row.get(3) }
}

/// Client-chosen text stored as bytes (see the schema).
fn text_of(row: &Row, column: usize) -> String {
    String::from_utf8_lossy(row.get::<_, &[u8]>(column)).into_owned()
}

/// A row of `MESSAGE_COLS`.
fn message_from(row: &Row) -> Message {
    Message {
        channel_id: ChannelId(row.get(0)),
        message_id: MessageId(row.get(1)),
        sender_id: UserId(row.get(2)),
        client_msg_id: text_of(row, 3),
        text: text_of(row, 4),
        created_at: row.get(5),
        mentioned: false,
        attachments: crate::attachments_from_json(row.get(6)),
        reply_to: row.get::<_, Option<i64>>(7).map(MessageId),
        edited_at: row.get(8),
        deleted: row.get(9),
        reactions: crate::change::reactions_from_json(row.get(10)),
        change_seq: row.get::<_, i64>(11) as u64,
    }
}

/// `MESSAGE_COLS` plus whether the message mentions the viewer (`$1`) and
/// its feed cursor.
const VIEWED_MESSAGE: &str = "m.channel_id, m.message_id, m.sender_id, m.client_msg_id, m.text, m.created_at, \
    m.attachments, m.reply_to, m.edited_at, m.deleted, m.reactions, m.change_seq, \
    EXISTS (SELECT 1 FROM mentions x WHERE x.channel_id = m.channel_id AND x.message_id = m.message_id \
            AND x.user_id = $1), m.feed_id";

fn viewed_from(row: &Row) -> (Message, i64) {
    let mut message = message_from(row);
    message.mentioned = row.get(12);
    (message, row.get(13))
}

impl PgStore {
    /// Connects, applies pending migrations and starts the writers.
    pub async fn connect(config: &PgConfig, observer: Option<Box<dyn CommitObserver>>) -> Result<PgStore> {
        let pg: tokio_postgres::Config =
            config.url.parse().map_err(|e: tokio_postgres::Error| StoreError::Backend(Box::new(e)))?;
        let manager =
            Manager::from_config(pg, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let timeout = Some(Duration::from_secs(5));
        let pool = Pool::builder(manager)
            .max_size(config.pool_size + config.writers)
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts { wait: timeout, create: timeout, recycle: timeout })
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        {
            let mut client = pool.get().await?;
            schema::migrate(&mut client).await?;
        }
        let observer: Option<Arc<dyn CommitObserver>> = observer.map(Arc::from);
        let mut writers = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..config.writers.max(1) {
            let (tx, rx) = flume::bounded(WRITE_QUEUE);
            writers.push(tx);
            tasks.push(tokio::spawn(append::run_writer(pool.clone(), rx, observer.clone())));
        }
        Ok(PgStore { pool, writers: std::sync::RwLock::new(writers), tasks: tokio::sync::Mutex::new(tasks) })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        if self.pool.is_closed() {
            return Err(StoreError::Closed);
        }
        Ok(self.pool.get().await?)
    }

    /// One statement's rows.
    async fn rows(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    /// One statement's row, if any.
    async fn row(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Option<Row>> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }

    /// One statement's count of changed rows.
    async fn execute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await?)
    }
}

/// Runs `sql` on `client` (a connection or a transaction).
async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

async fn exec<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

async fn user_exists<C: GenericClient>(client: &C, id: UserId) -> Result<bool> {
    Ok(!query(client, "SELECT 1 FROM users WHERE id = $1", &[&id.0]).await?.is_empty())
}

/// The channel row and every member's read marker.
async fn channel_state<C: GenericClient>(client: &C, id: ChannelId) -> Result<Option<ChannelState>> {
    let rows = query(
        client,
        "SELECT kind, name, created_by, last_message_id, created_at, last_change_seq FROM channels WHERE id = $1",
        &[&id.0],
    )
    .await?;
    let Some(row) = rows.first() else { return Ok(None) };
    let kind: String = row.get(0);
    let mut read_markers = HashMap::new();
    let mut member_ids = Vec::new();
    for m in query(client, "SELECT user_id, read_up_to FROM members WHERE channel_id = $1 ORDER BY user_id", &[&id.0])
        .await?
    {
        let user = UserId(m.get(0));
        member_ids.push(user);
        read_markers.insert(user, MessageId(m.get(1)));
    }
    Ok(Some(ChannelState {
        channel: Channel {
            id,
            kind: if kind == "direct" { ChannelKind::Direct } else { ChannelKind::Group },
            name: row.get(1),
            member_ids,
            created_by: UserId(row.get(2)),
            last_message_id: MessageId(row.get(3)),
            read_up_to: MessageId(0),
            created_at: row.get(4),
            last_change_seq: row.get::<_, i64>(5) as u64,
        },
        read_markers,
    }))
}

async fn channel_for<C: GenericClient>(client: &C, id: ChannelId, viewer: UserId) -> Result<Option<Channel>> {
    Ok(channel_state(client, id).await?.filter(|s| s.read_markers.contains_key(&viewer)).map(|s| s.for_member(viewer)))
}

/// Who a stored message mentions.
async fn mentioned_in<C: GenericClient>(client: &C, channel: ChannelId, message_id: MessageId) -> Result<Vec<UserId>> {
    let rows = query(
        client,
        "SELECT user_id FROM mentions WHERE channel_id = $1 AND message_id = $2 ORDER BY user_id",
        &[&channel.0, &message_id.0],
    )
    .await?;
    Ok(rows.iter().map(|r| UserId(r.get(0))).collect())
}

async fn is_member<C: GenericClient>(client: &C, id: ChannelId, user: UserId) -> Result<bool> {
    Ok(!query(client, "SELECT 1 FROM members WHERE channel_id = $1 AND user_id = $2", &[&id.0, &user.0])
        .await?
        .is_empty())
}

/// A new member starts with everything before their arrival read: history
/// they may scroll through, not a pile of unread (a re-added member too).
async fn insert_member<C: GenericClient>(client: &C, id: ChannelId, user: UserId, now_ms: i64) -> Result<()> {
    exec(
        client,
        "INSERT INTO members (channel_id, user_id, read_up_to, joined_at) \
         VALUES ($1, $2, (SELECT last_message_id FROM channels WHERE id = $1), $3) \
         ON CONFLICT DO NOTHING",
        &[&id.0, &user.0, &now_ms],
    )
    .await?;
    Ok(())
}

/// Locks a group's row (so member counts cannot race) and checks room.
async fn lock_with_room<C: GenericClient>(client: &C, id: ChannelId) -> Result<()> {
    if query(client, "SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", &[&id.0]).await?.is_empty() {
        return Err(StoreError::NotFound);
    }
    let count: i64 = query(client, "SELECT count(*) FROM members WHERE channel_id = $1", &[&id.0]).await?[0].get(0);
    if count as usize >= GROUP_MAX_MEMBERS {
        return Err(StoreError::GroupTooLarge);
    }
    Ok(())
}

impl PgStore {
    async fn message_run(&self, id: ChannelId, viewer: UserId, run: Run) -> Result<(Vec<Message>, bool)> {
        let order = if run.descending { "DESC" } else { "ASC" };
        let rows = self
            .rows(
                &format!(
                    "SELECT {VIEWED_MESSAGE} FROM messages m \
                     WHERE m.channel_id = $2 AND m.message_id > $3 AND m.message_id < $4 \
                     ORDER BY m.message_id {order} LIMIT $5"
                ),
                &[&viewer.0, &id.0, &run.lower, &run.upper, &(i64::from(run.limit) + 1)],
            )
            .await?;
        Ok(run.finish(rows.iter().map(|r| viewed_from(r).0).collect()))
    }
}

fn outbox_from(row: &Row) -> OutboxItem {
    OutboxItem {
        id: row.get(0),
        version: row.get(1),
        device_id: DeviceId(row.get(2)),
        user_id: UserId(row.get(3)),
        channel_id: ChannelId(row.get(4)),
        target: row.get(5),
        payload: row.get(6),
        count: row.get::<_, i32>(7) as u32,
        attempts: row.get::<_, i32>(8) as u32,
    }
}

fn ids(users: &[UserId]) -> Vec<i64> {
    users.iter().map(|u| u.0).collect()
}

#[async_trait]
impl Store for PgStore {
    async fn create_user(&self, u: NewUser) -> Result<User> {
        let row = self
            .row(
                &format!(
                    "INSERT INTO users (username, display_name, password_hash, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (username) DO NOTHING RETURNING {USER_COLS}"
                ),
                &[&u.username, &u.display_name, &u.password_hash, &u.created_at],
            )
            .await?;
        row.map(|r| user_from(&r)).ok_or(StoreError::UsernameTaken)
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        Ok(self.row(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"), &[&id.0]).await?.map(|r| user_from(&r)))
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let name = username.to_lowercase();
        Ok(self
            .row(&format!("SELECT {USER_COLS} FROM users WHERE username = $1"), &[&name])
            .await?
            .map(|r| user_from(&r)))
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let name = username.to_lowercase();
        Ok(self
            .row(
                &format!("SELECT {USER_COLS}, password_hash, disabled_at IS NOT NULL FROM users WHERE username = $1"),
                &[&name],
            )
            .await?
            .map(|r| Credentials { user: user_from(&r), password_hash: r.get(4), disabled: r.get(5) }))
    }

    async fn update_display_name(&self, id: UserId, display_name: &str) -> Result<User> {
        self.row(
            &format!("UPDATE users SET display_name = $2 WHERE id = $1 RETURNING {USER_COLS}"),
            &[&id.0, &display_name],
        )
        .await?
        .map(|r| user_from(&r))
        .ok_or(StoreError::NotFound)
    }

    async fn accounts(&self, after: Option<UserId>, limit: u32) -> Result<Vec<Account>> {
        let rows = self
            .rows(
                "SELECT u.id, u.username, u.display_name, u.created_at, u.last_active_at, u.disabled_at, \
                   (SELECT count(*) FROM devices d WHERE d.user_id = u.id AND d.revoked_at IS NULL) \
                 FROM users u WHERE u.id > $1 ORDER BY u.id LIMIT $2",
                &[&after.map_or(0, |u| u.0), &i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(account_from).collect())
    }

    async fn account(&self, id: UserId) -> Result<Option<Account>> {
        Ok(self
            .row(
                "SELECT u.id, u.username, u.display_name, u.created_at, u.last_active_at, u.disabled_at, \
                   (SELECT count(*) FROM devices d WHERE d.user_id = u.id AND d.revoked_at IS NULL) \
                 FROM users u WHERE u.id = $1",
                &[&id.0],
            )
            .await?
            .map(|r| account_from(&r)))
    }

    async fn active_session(&self, session: Session) -> Result<Option<User>> {
        Ok(self
            .row(
                "SELECT u.id, u.username, u.display_name, u.created_at FROM devices d JOIN users u ON u.id = d.user_id \
                 WHERE d.id = $1 AND d.user_id = $2 AND d.revoked_at IS NULL AND u.disabled_at IS NULL",
                &[&session.device_id.0, &session.user_id.0],
            )
            .await?
            .map(|r| user_from(&r)))
    }

    async fn set_disabled(&self, id: UserId, disabled: bool, now_ms: i64) -> Result<Vec<DeviceId>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A second disable keeps the first time.
        let sql = "UPDATE users SET disabled_at = CASE WHEN $3 THEN coalesce(disabled_at, $2) END WHERE id = $1";
        if exec(&tx, sql, &[&id.0, &now_ms, &disabled]).await? == 0 {
            return Err(StoreError::NotFound);
        }
        let mut revoked = Vec::new();
        if disabled {
            for row in query(
                &tx,
                "UPDATE devices SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
                &[&id.0, &now_ms],
            )
            .await?
            {
                revoked.push(DeviceId(row.get(0)));
            }
            let devices: Vec<i64> = revoked.iter().map(|d| d.0).collect();
            exec(&tx, "DELETE FROM push_outbox WHERE device_id = ANY($1)", &[&devices]).await?;
            exec(&tx, "DELETE FROM push_targets WHERE device_id = ANY($1)", &[&devices]).await?;
        }
        tx.commit().await?;
        revoked.sort();
        Ok(revoked)
    }

    async fn backup(&self, _dest: &std::path::Path) -> Result<BackupInfo> {
        Err(StoreError::Unsupported("backups on PostgreSQL (use pg_dump or the server's own backup tools)"))
    }

    async fn create_device(&self, d: NewDevice) -> Result<DeviceId> {
        let row = self
            .row(
                "INSERT INTO devices (user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&d.user_id.0, &d.name.as_deref().map(str::as_bytes), &d.token_hash, &d.created_at],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(DeviceId(row.get(0)))
    }

    async fn session(&self, token_hash: &[u8]) -> Result<Option<Session>> {
        Ok(self
            .row(
                "SELECT d.user_id, d.id FROM devices d JOIN users u ON u.id = d.user_id \
                 WHERE d.token_hash = $1 AND d.revoked_at IS NULL AND u.disabled_at IS NULL",
                &[&token_hash],
            )
            .await?
            .map(|r| Session { user_id: UserId(r.get(0)), device_id: DeviceId(r.get(1)) }))
    }

    async fn revoke_device(&self, device: DeviceId) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        exec(
            &tx,
            "UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&device.0, &chinwag_proto::now_ms()],
        )
        .await?;
        exec(&tx, "DELETE FROM push_targets WHERE device_id = $1", &[&device.0]).await?;
        exec(&tx, "DELETE FROM push_outbox WHERE device_id = $1", &[&device.0]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn direct_channel(&self, me: UserId, other: UserId, now_ms: i64) -> Result<(Channel, bool)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if !user_exists(&tx, me).await? || !user_exists(&tx, other).await? {
            return Err(StoreError::NotFound);
        }
        let key = format!("{}:{}", me.0.min(other.0), me.0.max(other.0));
        let existing = query(&tx, "SELECT id FROM channels WHERE direct_key = $1", &[&key]).await?;
        let (id, created) = match existing.first() {
            Some(row) => (ChannelId(row.get(0)), false),
            None => {
                let blocked = query(
                    &tx,
                    "SELECT 1 FROM blocks WHERE (owner_id = $1 AND blocked_id = $2) OR (owner_id = $2 AND blocked_id = $1)",
                    &[&me.0, &other.0],
                )
                .await?;
                if !blocked.is_empty() {
                    return Err(StoreError::Blocked);
                }
                // Both sides at once: the unique key lets one insert win;
                // the other waits for it, inserts nothing and reads it.
                let inserted = query(
                    &tx,
                    "INSERT INTO channels (kind, name, created_by, direct_key, created_at) \
                     VALUES ('direct', NULL, $1, $2, $3) ON CONFLICT (direct_key) DO NOTHING RETURNING id",
                    &[&me.0, &key, &now_ms],
                )
                .await?;
                match inserted.first() {
                    Some(row) => {
                        let id = ChannelId(row.get(0));
                        for user in BTreeSet::from([me, other]) {
                            insert_member(&tx, id, user, now_ms).await?;
                        }
                        (id, true)
                    }
                    None => {
                        let row = query(&tx, "SELECT id FROM channels WHERE direct_key = $1", &[&key]).await?;
                        (ChannelId(row.first().ok_or(StoreError::NotFound)?.get(0)), false)
                    }
                }
            }
        };
        let channel = channel_for(&tx, id, me).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok((channel, created))
    }

    async fn create_group(&self, g: NewGroup) -> Result<Channel> {
        let mut members: BTreeSet<UserId> = g.member_ids.iter().copied().collect();
        members.insert(g.creator);
        if members.len() > GROUP_MAX_MEMBERS {
            return Err(StoreError::GroupTooLarge);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let wanted: Vec<i64> = members.iter().map(|u| u.0).collect();
        let found: i64 = query(&tx, "SELECT count(*) FROM users WHERE id = ANY($1)", &[&wanted]).await?[0].get(0);
        if found as usize != wanted.len() {
            return Err(StoreError::NotFound);
        }
        let blocking =
            query(&tx, "SELECT 1 FROM blocks WHERE owner_id = ANY($1) AND blocked_id = $2", &[&wanted, &g.creator.0])
                .await?;
        if !blocking.is_empty() {
            return Err(StoreError::Blocked);
        }
        let row = query(
            &tx,
            "INSERT INTO channels (kind, name, created_by, created_at) VALUES ('group', $1, $2, $3) RETURNING id",
            &[&g.name, &g.creator.0, &g.created_at],
        )
        .await?;
        let id = ChannelId(row[0].get(0));
        exec(
            &tx,
            "INSERT INTO members (channel_id, user_id, read_up_to, joined_at) SELECT $1, u, 0, $3 FROM unnest($2::bigint[]) u",
            &[&id.0, &wanted, &g.created_at],
        )
        .await?;
        let channel = channel_for(&tx, id, g.creator).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(channel)
    }

    async fn channel(&self, id: ChannelId, viewer: UserId) -> Result<Option<Channel>> {
        channel_for(&self.client().await?, id, viewer).await
    }

    async fn channel_state(&self, id: ChannelId) -> Result<Option<ChannelState>> {
        channel_state(&self.client().await?, id).await
    }

    /// One round trip for the whole list (the connect path's `ready`).
    async fn channels_of(&self, user: UserId) -> Result<Vec<Channel>> {
        let rows = self
            .rows(
                "SELECT c.id, c.kind, c.name, c.created_by, c.last_message_id, c.created_at, mine.read_up_to, \
                   (SELECT array_agg(o.user_id ORDER BY o.user_id) FROM members o WHERE o.channel_id = c.id), \
                   c.last_change_seq \
                 FROM members mine JOIN channels c ON c.id = mine.channel_id \
                 WHERE mine.user_id = $1 ORDER BY c.id",
                &[&user.0],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let kind: String = r.get(1);
                let members: Vec<i64> = r.get(7);
                Channel {
                    id: ChannelId(r.get(0)),
                    kind: if kind == "direct" { ChannelKind::Direct } else { ChannelKind::Group },
                    name: r.get(2),
                    member_ids: members.into_iter().map(UserId).collect(),
                    created_by: UserId(r.get(3)),
                    last_message_id: MessageId(r.get(4)),
                    read_up_to: MessageId(r.get(6)),
                    created_at: r.get(5),
                    last_change_seq: r.get::<_, i64>(8) as u64,
                }
            })
            .collect())
    }

    async fn members(&self, id: ChannelId) -> Result<Vec<UserId>> {
        let rows = self.rows("SELECT user_id FROM members WHERE channel_id = $1 ORDER BY user_id", &[&id.0]).await?;
        Ok(rows.iter().map(|r| UserId(r.get(0))).collect())
    }

    async fn add_member(&self, id: ChannelId, new: UserId, actor: UserId, now_ms: i64) -> Result<MemberAdded> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if !user_exists(&tx, new).await? {
            return Err(StoreError::NotFound);
        }
        if query(&tx, "SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", &[&id.0]).await?.is_empty() {
            return Err(StoreError::NotFound);
        }
        if is_member(&tx, id, new).await? {
            return Ok(MemberAdded::AlreadyMember);
        }
        let blocked =
            query(&tx, "SELECT 1 FROM blocks WHERE owner_id = $1 AND blocked_id = $2", &[&new.0, &actor.0]).await?;
        if !blocked.is_empty() {
            return Err(StoreError::Blocked);
        }
        lock_with_room(&tx, id).await?;
        let departed = !query(&tx, "SELECT 1 FROM departures WHERE channel_id = $1 AND user_id = $2", &[&id.0, &new.0])
            .await?
            .is_empty();
        let added = if departed && actor != new {
            exec(
                &tx,
                "INSERT INTO invitations (channel_id, user_id, invited_by, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (channel_id, user_id) DO UPDATE SET invited_by = $3, created_at = $4",
                &[&id.0, &new.0, &actor.0, &now_ms],
            )
            .await?;
            MemberAdded::Invited
        } else {
            insert_member(&tx, id, new, now_ms).await?;
            MemberAdded::Added
        };
        tx.commit().await?;
        Ok(added)
    }

    async fn remove_member(&self, id: ChannelId, user: UserId, actor: UserId, now_ms: i64) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let removed =
            exec(&tx, "DELETE FROM members WHERE channel_id = $1 AND user_id = $2", &[&id.0, &user.0]).await?;
        if removed > 0 && actor == user {
            exec(
                &tx,
                "INSERT INTO departures (channel_id, user_id, left_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (channel_id, user_id) DO UPDATE SET left_at = $3",
                &[&id.0, &user.0, &now_ms],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(removed > 0)
    }

    async fn invitations(&self, user: UserId) -> Result<Vec<Invitation>> {
        let rows = self
            .rows(
                "SELECT i.channel_id, ch.name, i.invited_by, i.created_at FROM invitations i \
                 JOIN channels ch ON ch.id = i.channel_id WHERE i.user_id = $1 ORDER BY i.created_at DESC",
                &[&user.0],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Invitation {
                channel_id: ChannelId(r.get(0)),
                name: r.get(1),
                invited_by: UserId(r.get(2)),
                created_at: r.get(3),
            })
            .collect())
    }

    async fn accept_invitation(&self, id: ChannelId, user: UserId, now_ms: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let invited =
            query(&tx, "SELECT 1 FROM invitations WHERE channel_id = $1 AND user_id = $2", &[&id.0, &user.0]).await?;
        if invited.is_empty() {
            return Err(StoreError::NotFound);
        }
        if !is_member(&tx, id, user).await? {
            lock_with_room(&tx, id).await?;
            insert_member(&tx, id, user, now_ms).await?;
        }
        exec(&tx, "DELETE FROM invitations WHERE channel_id = $1 AND user_id = $2", &[&id.0, &user.0]).await?;
        exec(&tx, "DELETE FROM departures WHERE channel_id = $1 AND user_id = $2", &[&id.0, &user.0]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn decline_invitation(&self, id: ChannelId, user: UserId) -> Result<bool> {
        Ok(self.execute("DELETE FROM invitations WHERE channel_id = $1 AND user_id = $2", &[&id.0, &user.0]).await? > 0)
    }

    async fn users_at_channel_limit(&self, users: &[UserId], limit: usize) -> Result<Vec<UserId>> {
        let rows = self
            .rows(
                "SELECT user_id FROM members WHERE user_id = ANY($1) GROUP BY user_id HAVING count(*) >= $2 \
                 ORDER BY user_id",
                &[&ids(users), &(limit as i64)],
            )
            .await?;
        let full: Vec<UserId> = rows.iter().map(|r| UserId(r.get(0))).collect();
        Ok(users.iter().copied().filter(|u| full.contains(u)).collect())
    }

    async fn block(&self, owner: UserId, blocked: UserId, now_ms: i64) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if !user_exists(&tx, blocked).await? {
            return Err(StoreError::NotFound);
        }
        let added = exec(
            &tx,
            "INSERT INTO blocks (owner_id, blocked_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&owner.0, &blocked.0, &now_ms],
        )
        .await?;
        tx.commit().await?;
        Ok(added > 0)
    }

    async fn unblock(&self, owner: UserId, blocked: UserId) -> Result<bool> {
        Ok(self.execute("DELETE FROM blocks WHERE owner_id = $1 AND blocked_id = $2", &[&owner.0, &blocked.0]).await?
            > 0)
    }

    async fn blocked_users(&self, owner: UserId) -> Result<Vec<User>> {
        let rows = self
            .rows(
                &format!(
                    "SELECT {USER_COLS} FROM users WHERE id IN (SELECT blocked_id FROM blocks WHERE owner_id = $1) \
                     ORDER BY id"
                ),
                &[&owner.0],
            )
            .await?;
        Ok(rows.iter().map(user_from).collect())
    }

    async fn presence_visible(&self, viewer: UserId, users: &[UserId]) -> Result<Vec<UserId>> {
        let rows = self
            .rows(
                "SELECT u FROM unnest($2::bigint[]) AS u \
                 WHERE u = $1 OR (NOT EXISTS (SELECT 1 FROM blocks WHERE owner_id = u AND blocked_id = $1) AND ( \
                   EXISTS (SELECT 1 FROM contacts WHERE owner_id = u AND contact_id = $1) \
                   OR EXISTS (SELECT 1 FROM members mine JOIN members theirs ON theirs.channel_id = mine.channel_id \
                              WHERE mine.user_id = u AND theirs.user_id = $1)))",
                &[&viewer.0, &ids(users)],
            )
            .await?;
        let visible: Vec<UserId> = rows.iter().map(|r| UserId(r.get(0))).collect();
        Ok(users.iter().copied().filter(|u| visible.contains(u)).collect())
    }

    fn append_message(&self, message: NewMessage) -> BoxFuture<'static, Result<Appended>> {
        let (reply, answer) = oneshot::channel();
        let writers = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let Some(writer) = writers.get(append::writer_of(message.channel_id, writers.len())) else {
            return Box::pin(std::future::ready(Err(StoreError::Closed)));
        };
        let job = AppendJob { message, reply };
        let queued = match writer.try_send(job) {
            Ok(()) => None,
            Err(flume::TrySendError::Full(job)) => Some((writer.clone(), job)),
            Err(flume::TrySendError::Disconnected(_)) => return Box::pin(std::future::ready(Err(StoreError::Closed))),
        };
        Box::pin(async move {
            // A full queue means overload: wait for room (backpressure).
            if let Some((writer, job)) = queued {
                writer.send_async(job).await.map_err(|_| StoreError::Closed)?;
            }
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    async fn messages(&self, id: ChannelId, query: HistoryQuery, limit: u32, viewer: UserId) -> Result<Page> {
        if !is_member(&self.client().await?, id, viewer).await? {
            return Err(StoreError::NotAMember);
        }
        let full = Budget::Page(PAGE_MAX_BYTES);
        let run = |lower, upper, descending, limit, budget| {
            self.message_run(id, viewer, Run { lower, upper, descending, limit, budget })
        };
        let (messages, has_more) = match query {
            HistoryQuery::Latest => run(0, i64::MAX, true, limit, full).await?,
            HistoryQuery::Before(before) => run(0, before.0, true, limit, full).await?,
            HistoryQuery::Range { after, before } => {
                run(after.map_or(0, |m| m.0), before.map_or(i64::MAX, |m| m.0), false, limit, full).await?
            }
            HistoryQuery::Around(center) => {
                // The center and what follows first; older messages get the
                // rest of the page's bytes.
                let older_limit = limit / 2;
                let (newer, newer_more) = run(center.0 - 1, i64::MAX, false, limit - older_limit, full).await?;
                let rest = paging::rest_after(&newer);
                let (mut older, older_more) = if older_limit > 0 {
                    run(0, center.0, true, older_limit, rest).await?
                } else {
                    let more = self
                        .row("SELECT 1 FROM messages WHERE channel_id = $1 AND message_id < $2", &[&id.0, &center.0])
                        .await?
                        .is_some();
                    (Vec::new(), more)
                };
                older.extend(newer);
                (older, older_more || newer_more)
            }
        };
        Ok(Page { messages, has_more })
    }

    /// One statement: concurrent markers can only move forward.
    async fn change_message(
        &self,
        channel: ChannelId,
        message_id: MessageId,
        actor: UserId,
        change: MessageChange,
        now_ms: i64,
    ) -> Result<Changed> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The channel row is locked first, as appends do: changes of one
        // channel take their `change_seq` and commit one after another.
        let rows = query(&tx, "SELECT kind, created_by FROM channels WHERE id = $1 FOR UPDATE", &[&channel.0]).await?;
        let row = rows.first().ok_or(StoreError::NotAMember)?;
        let facts = ChannelFacts {
            kind: if row.get::<_, String>(0) == "direct" { ChannelKind::Direct } else { ChannelKind::Group },
            created_by: UserId(row.get(1)),
        };
        let members: Vec<UserId> =
            query(&tx, "SELECT user_id FROM members WHERE channel_id = $1 ORDER BY user_id", &[&channel.0])
                .await?
                .iter()
                .map(|r| UserId(r.get(0)))
                .collect();
        if !members.contains(&actor) {
            return Err(StoreError::NotAMember);
        }
        let sql =
            format!("SELECT {MESSAGE_COLS}, m.feed_id FROM messages m WHERE m.channel_id = $1 AND m.message_id = $2");
        let rows = query(&tx, &sql, &[&channel.0, &message_id.0]).await?;
        let row = rows.first().ok_or(StoreError::MessageNotFound)?;
        let (before, feed_id): (Message, i64) = (message_from(row), row.get(12));
        let mut message = before.clone();
        if !crate::change::apply(&mut message, actor, facts, &change, now_ms)? {
            let mentions = mentioned_in(&tx, channel, message_id).await?;
            return Ok(Changed { message, changed: false, members, mentions, released_uploads: Vec::new() });
        }
        let seq: i64 = query(
            &tx,
            "UPDATE channels SET last_change_seq = last_change_seq + 1 WHERE id = $1 RETURNING last_change_seq",
            &[&channel.0],
        )
        .await?
        .first()
        .map(|r| r.get(0))
        .ok_or(StoreError::NotAMember)?;
        message.change_seq = seq as u64;
        let words = search::words(&message.text).join(" ");
        exec(
            &tx,
            "UPDATE messages SET text = $3, attachments = $4, edited_at = $5, deleted = $6, reactions = $7, \
               change_seq = $8, search = array_to_tsvector(string_to_array($9, ' ')) \
             WHERE channel_id = $1 AND message_id = $2",
            &[
                &channel.0,
                &message_id.0,
                &message.text.as_bytes(),
                &crate::attachments_json(&message.attachments),
                &message.edited_at,
                &message.deleted,
                &crate::change::reactions_json(&message.reactions),
                &seq,
                &words,
            ],
        )
        .await?;
        if message.text != before.text {
            exec(&tx, "DELETE FROM mentions WHERE channel_id = $1 AND message_id = $2", &[&channel.0, &message_id.0])
                .await?;
            let names: Vec<String> = chinwag_proto::mentions::mentioned_usernames(&message.text).into_iter().collect();
            if !names.is_empty() {
                exec(
                    &tx,
                    "INSERT INTO mentions (channel_id, message_id, user_id, feed_id) \
                     SELECT $1, $2, u.id, $3 FROM users u JOIN members mb ON mb.user_id = u.id AND mb.channel_id = $1 \
                     WHERE u.username = ANY($4) AND u.id != $5",
                    &[&channel.0, &message_id.0, &feed_id, &names, &message.sender_id.0],
                )
                .await?;
            }
        }
        let mut released_uploads = Vec::new();
        if message.attachments.len() < before.attachments.len() {
            exec(
                &tx,
                "DELETE FROM attachments WHERE channel_id = $1 AND message_id = $2",
                &[&channel.0, &message_id.0],
            )
            .await?;
            let ids: Vec<&str> = before.attachments.iter().map(|a| a.id.as_str()).collect();
            released_uploads = query(
                &tx,
                "SELECT u FROM unnest($1::text[]) AS u WHERE NOT EXISTS (SELECT 1 FROM attachments a WHERE a.upload_id = u)",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        }
        let mentions = mentioned_in(&tx, channel, message_id).await?;
        tx.commit().await?;
        Ok(Changed { message, changed: true, members, mentions, released_uploads })
    }

    async fn changes(&self, channel: ChannelId, after: u64, limit: u32, viewer: UserId) -> Result<Page> {
        if !is_member(&self.client().await?, channel, viewer).await? {
            return Err(StoreError::NotAMember);
        }
        let run = Run {
            lower: i64::try_from(after).unwrap_or(i64::MAX),
            upper: i64::MAX,
            descending: false,
            limit,
            budget: Budget::Page(PAGE_MAX_BYTES),
        };
        let rows = self
            .rows(
                &format!(
                    "SELECT {VIEWED_MESSAGE} FROM messages m \
                     WHERE m.channel_id = $2 AND m.change_seq > $3 ORDER BY m.change_seq LIMIT $4"
                ),
                &[&viewer.0, &channel.0, &run.lower, &(i64::from(limit) + 1)],
            )
            .await?;
        let (messages, has_more) = run.finish(rows.iter().map(|r| viewed_from(r).0).collect());
        Ok(Page { messages, has_more })
    }

    async fn set_read(&self, id: ChannelId, user: UserId, message_id: MessageId) -> Result<Option<MessageId>> {
        let row = self
            .row(
                "WITH target AS ( \
                   SELECT m.read_up_to, least($3, ch.last_message_id) AS up_to FROM members m \
                   JOIN channels ch ON ch.id = m.channel_id WHERE m.channel_id = $1 AND m.user_id = $2), \
                 moved AS ( \
                   UPDATE members m SET read_up_to = t.up_to FROM target t \
                   WHERE m.channel_id = $1 AND m.user_id = $2 AND m.read_up_to < t.up_to RETURNING m.read_up_to) \
                 SELECT (SELECT read_up_to FROM moved), EXISTS (SELECT 1 FROM target)",
                &[&id.0, &user.0, &message_id.0],
            )
            .await?
            .ok_or(StoreError::NotAMember)?;
        if !row.get::<_, bool>(1) {
            return Err(StoreError::NotAMember);
        }
        Ok(row.get::<_, Option<i64>>(0).map(MessageId))
    }

    async fn add_contact(&self, owner: UserId, contact: UserId, now_ms: i64) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if !user_exists(&tx, contact).await? {
            return Err(StoreError::NotFound);
        }
        let added = exec(
            &tx,
            "INSERT INTO contacts (owner_id, contact_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&owner.0, &contact.0, &now_ms],
        )
        .await?;
        tx.commit().await?;
        Ok(added > 0)
    }

    async fn remove_contact(&self, owner: UserId, contact: UserId) -> Result<bool> {
        Ok(self
            .execute("DELETE FROM contacts WHERE owner_id = $1 AND contact_id = $2", &[&owner.0, &contact.0])
            .await?
            > 0)
    }

    async fn contacts(&self, owner: UserId) -> Result<Vec<User>> {
        let rows = self
            .rows(
                &format!(
                    "SELECT {USER_COLS} FROM users WHERE id IN (SELECT contact_id FROM contacts WHERE owner_id = $1) \
                     ORDER BY id"
                ),
                &[&owner.0],
            )
            .await?;
        Ok(rows.iter().map(user_from).collect())
    }

    async fn presence_audience(&self, user: UserId) -> Result<Vec<UserId>> {
        let rows = self
            .rows(
                "(SELECT contact_id FROM contacts WHERE owner_id = $1 \
                  UNION \
                  SELECT other.user_id FROM members mine JOIN members other ON other.channel_id = mine.channel_id \
                  WHERE mine.user_id = $1 AND other.user_id != $1) \
                 EXCEPT SELECT blocked_id FROM blocks WHERE owner_id = $1 ORDER BY 1",
                &[&user.0],
            )
            .await?;
        Ok(rows.iter().map(|r| UserId(r.get(0))).collect())
    }

    async fn set_last_active(&self, users: &[UserId], at_ms: i64) -> Result<()> {
        self.execute(
            "UPDATE users SET last_active_at = greatest(coalesce(last_active_at, 0), $2) WHERE id = ANY($1)",
            &[&ids(users), &at_ms],
        )
        .await?;
        Ok(())
    }

    async fn last_active(&self, users: &[UserId]) -> Result<Vec<(UserId, Option<i64>)>> {
        let rows = self.rows("SELECT id, last_active_at FROM users WHERE id = ANY($1)", &[&ids(users)]).await?;
        let found: HashMap<UserId, Option<i64>> = rows.iter().map(|r| (UserId(r.get(0)), r.get(1))).collect();
        Ok(users.iter().filter_map(|u| found.get(u).map(|at| (*u, *at))).collect())
    }

    async fn search(&self, viewer: UserId, q: SearchQuery) -> Result<FeedPage> {
        let Some(tsquery) = search::tsquery(&q.terms) else {
            return Ok(FeedPage::default());
        };
        let rows = self
            .rows(
                &format!(
                    "SELECT {VIEWED_MESSAGE} FROM messages m \
                     WHERE m.search @@ CAST($2::text AS tsquery) \
                       AND m.channel_id IN (SELECT channel_id FROM members WHERE user_id = $1) \
                       AND ($3::bigint IS NULL OR m.channel_id = $3) AND m.feed_id < $4 \
                     ORDER BY m.feed_id DESC LIMIT $5"
                ),
                &[
                    &viewer.0,
                    &tsquery,
                    &q.channel.map(|c| c.0),
                    &q.before.unwrap_or(i64::MAX),
                    &(i64::from(q.limit) + 1),
                ],
            )
            .await?;
        Ok(feed_page(rows.iter().map(viewed_from).collect(), q.limit))
    }

    async fn mentions(&self, viewer: UserId, before: Option<i64>, limit: u32) -> Result<FeedPage> {
        let rows = self
            .rows(
                &format!(
                    "SELECT {VIEWED_MESSAGE} FROM mentions mn \
                     JOIN messages m ON m.channel_id = mn.channel_id AND m.message_id = mn.message_id \
                     WHERE mn.user_id = $1 AND mn.feed_id < $2 \
                       AND m.channel_id IN (SELECT channel_id FROM members WHERE user_id = $1) \
                     ORDER BY mn.feed_id DESC LIMIT $3"
                ),
                &[&viewer.0, &before.unwrap_or(i64::MAX), &(i64::from(limit) + 1)],
            )
            .await?;
        Ok(feed_page(rows.iter().map(viewed_from).collect(), limit))
    }

    async fn set_push_target(&self, device: DeviceId, user: UserId, target: String, now_ms: i64) -> Result<()> {
        self.execute(
            "INSERT INTO push_targets (device_id, user_id, target, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device_id) DO UPDATE SET target = excluded.target, created_at = excluded.created_at",
            &[&device.0, &user.0, &target, &now_ms],
        )
        .await?;
        Ok(())
    }

    async fn push_target(&self, device: DeviceId) -> Result<Option<String>> {
        Ok(self.row("SELECT target FROM push_targets WHERE device_id = $1", &[&device.0]).await?.map(|r| r.get(0)))
    }

    async fn remove_push_target(&self, device: DeviceId) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        exec(&tx, "DELETE FROM push_targets WHERE device_id = $1", &[&device.0]).await?;
        exec(&tx, "DELETE FROM push_outbox WHERE device_id = $1", &[&device.0]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_muted(&self, user: UserId, channel: ChannelId, muted: bool) -> Result<()> {
        let client = self.client().await?;
        if !is_member(&client, channel, user).await? {
            return Err(StoreError::NotAMember);
        }
        let sql = if muted {
            "INSERT INTO mutes (channel_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM mutes WHERE channel_id = $1 AND user_id = $2"
        };
        exec(&client, sql, &[&channel.0, &user.0]).await?;
        Ok(())
    }

    async fn push_recipients(&self, channel: ChannelId, sender: UserId) -> Result<Vec<PushRecipient>> {
        let rows = self
            .rows(
                "SELECT p.user_id, p.device_id FROM members m JOIN push_targets p ON p.user_id = m.user_id \
                 WHERE m.channel_id = $1 AND m.user_id != $2 \
                   AND NOT EXISTS (SELECT 1 FROM mutes u WHERE u.channel_id = $1 AND u.user_id = m.user_id) \
                 ORDER BY p.device_id",
                &[&channel.0, &sender.0],
            )
            .await?;
        Ok(rows.iter().map(|r| PushRecipient { user_id: UserId(r.get(0)), device_id: DeviceId(r.get(1)) }).collect())
    }

    /// One statement for all items: a pending row for the same device and
    /// channel absorbs the new one (its count grows, its due time stays).
    async fn queue_pushes(&self, items: Vec<PushItem>, due_at_ms: i64) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let devices: Vec<i64> = items.iter().map(|i| i.device_id.0).collect();
        let channels: Vec<i64> = items.iter().map(|i| i.channel_id.0).collect();
        let payloads: Vec<&str> = items.iter().map(|i| i.payload.as_str()).collect();
        self.execute(
            "INSERT INTO push_outbox (device_id, channel_id, payload, count, due_at) \
             SELECT d, c, p, 1, $4 FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS v(d, c, p) \
             ON CONFLICT (device_id, channel_id) DO UPDATE SET payload = excluded.payload, \
                 count = push_outbox.count + 1, version = push_outbox.version + 1",
            &[&devices, &channels, &payloads, &due_at_ms],
        )
        .await?;
        Ok(())
    }

    /// `FOR UPDATE SKIP LOCKED` plus the lease: deliverers on many nodes
    /// share the outbox and no row is handed out twice.
    async fn claim_due_pushes(&self, now_ms: i64, limit: u32, lease_ms: i64) -> Result<Vec<OutboxItem>> {
        let rows = self
            .rows(
                "WITH claimed AS ( \
                   UPDATE push_outbox o SET claimed_until = $3 WHERE o.id IN ( \
                     SELECT id FROM push_outbox WHERE due_at <= $1 AND claimed_until <= $1 \
                       AND device_id IN (SELECT device_id FROM push_targets) \
                     ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                   RETURNING o.id, o.version, o.device_id, o.channel_id, o.payload, o.count, o.attempts, o.due_at) \
                 SELECT c.id, c.version, c.device_id, p.user_id, c.channel_id, p.target, c.payload, c.count, c.attempts \
                 FROM claimed c JOIN push_targets p ON p.device_id = c.device_id ORDER BY c.due_at, c.id",
                &[&now_ms, &i64::from(limit), &(now_ms + lease_ms)],
            )
            .await?;
        Ok(rows.iter().map(outbox_from).collect())
    }

    async fn push_delivered(&self, id: i64, version: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        exec(&tx, "DELETE FROM push_outbox WHERE id = $1 AND version = $2", &[&id, &version]).await?;
        exec(&tx, "UPDATE push_outbox SET claimed_until = 0 WHERE id = $1", &[&id]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn push_retry(&self, id: i64, attempts: u32, due_at_ms: i64) -> Result<()> {
        self.execute(
            "UPDATE push_outbox SET attempts = $2, due_at = $3, claimed_until = 0 WHERE id = $1",
            &[&id, &(attempts as i32), &due_at_ms],
        )
        .await?;
        Ok(())
    }

    async fn push_dropped(&self, id: i64) -> Result<()> {
        self.execute("DELETE FROM push_outbox WHERE id = $1", &[&id]).await?;
        Ok(())
    }

    /// Two statements: the `SELECT` must see a row another node inserted
    /// while this insert waited on it.
    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String> {
        self.execute("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&name, &candidate])
            .await?;
        let row = self.row("SELECT value FROM secrets WHERE name = $1", &[&name]).await?;
        Ok(row.ok_or(StoreError::NotFound)?.get(0))
    }

    /// The owner's row is locked while their uploads are summed, so two
    /// uploads at once cannot both squeeze past the quota.
    async fn begin_upload(&self, u: NewUpload, quota_bytes: u64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        query(&tx, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&u.owner.0]).await?;
        let used: i64 =
            query(&tx, "SELECT coalesce(sum(size), 0)::bigint FROM uploads WHERE owner_id = $1", &[&u.owner.0]).await?
                [0]
            .get(0);
        if used as u64 + u.size > quota_bytes {
            return Err(StoreError::QuotaExceeded);
        }
        let (size, width, height) = (u.size as i64, u.width.map(|w| w as i32), u.height.map(|h| h as i32));
        exec(
            &tx,
            "INSERT INTO uploads (id, owner_id, name, content_type, size, width, height, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&u.id, &u.owner.0, &u.name, &u.content_type, &size, &width, &height, &u.created_at],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upload_stored(&self, id: &str) -> Result<()> {
        match self.execute("UPDATE uploads SET stored = true WHERE id = $1", &[&id]).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn upload(&self, id: &str) -> Result<Option<StoredUpload>> {
        let row = self.row(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = $1"), &[&id]).await?;
        Ok(row.map(|r| upload_from(&r)))
    }

    async fn may_view_upload(&self, id: &str, viewer: UserId) -> Result<bool> {
        let row = self
            .row(
                "SELECT 1 FROM uploads WHERE id = $1 AND stored AND (owner_id = $2 OR EXISTS ( \
                   SELECT 1 FROM attachments a JOIN members mb ON mb.channel_id = a.channel_id \
                   WHERE a.upload_id = $1 AND mb.user_id = $2))",
                &[&id, &viewer.0],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn collectable_uploads(&self, unattached_before_ms: i64, limit: u32) -> Result<Vec<String>> {
        let rows = self
            .rows(
                &format!("SELECT id FROM uploads u WHERE {COLLECTABLE} LIMIT $2"),
                &[&unattached_before_ms, &i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn forget_upload(&self, id: &str, unattached_before_ms: i64) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let sql = format!("DELETE FROM uploads u WHERE id = $2 AND ({COLLECTABLE})");
        let forgotten = exec(&tx, &sql, &[&unattached_before_ms, &id]).await? > 0;
        if forgotten {
            exec(&tx, "DELETE FROM attachments WHERE upload_id = $1", &[&id]).await?;
        }
        tx.commit().await?;
        Ok(forgotten)
    }

    /// Stops taking appends, lets the writers store what is queued, then
    /// closes the pool.
    async fn close(&self) {
        self.writers.write().unwrap_or_else(|p| p.into_inner()).clear();
        for task in std::mem::take(&mut *self.tasks.lock().await) {
            let _ = task.await;
        }
        self.pool.close();
    }
}

const UPLOAD_COLS: &str = "id, name, content_type, size, width, height, owner_id, stored, created_at";

/// Uploads whose bytes should go (`u`; `$1` is the cut-off for uploads
/// never attached).
const COLLECTABLE: &str = "(NOT u.attached AND u.created_at < $1) \
    OR (u.attached AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.upload_id = u.id))";

fn upload_from(row: &Row) -> StoredUpload {
    StoredUpload {
        upload: chinwag_proto::Upload {
            id: row.get(0),
            name: row.get(1),
            content_type: row.get(2),
            size: row.get::<_, i64>(3) as u64,
            width: row.get::<_, Option<i32>>(4).map(|w| w as u32),
            height: row.get::<_, Option<i32>>(5).map(|h| h as u32),
        },
        owner: UserId(row.get(6)),
        stored: row.get(7),
        created_at: row.get(8),
    }
}

fn account_from(row: &Row) -> Account {
    Account {
        user: user_from(row),
        last_active_at: row.get(4),
        disabled_at: row.get(5),
        live_devices: row.get::<_, i64>(6) as u32,
    }
}

/// A private server shared by a test binary, with a fresh database per
/// caller: what the contract suite and end-to-end tests run against.
#[cfg(any(test, feature = "contract-tests"))]
pub mod testing {
    use super::{LocalPostgres, PgConfig, PgStore};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static SERVER: tokio::sync::OnceCell<LocalPostgres> = tokio::sync::OnceCell::const_new();
    static DATABASES: AtomicUsize = AtomicUsize::new(0);

    /// The URL of a new, empty database on the shared server.
    pub async fn fresh_database() -> String {
        let server = SERVER
            .get_or_init(|| async {
                tokio::task::spawn_blocking(|| LocalPostgres::start(false).expect("start a private PostgreSQL"))
                    .await
                    .expect("starting PostgreSQL")
            })
            .await;
        let name = format!("test_{}", DATABASES.fetch_add(1, Ordering::SeqCst));
        let url = server.url(&name);
        let create = format!("CREATE DATABASE {name}");
        let (client, connection) =
            tokio_postgres::connect(&server.url("postgres"), tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        client.batch_execute(&create).await.expect("create database");
        url
    }

    /// A store on a new, empty database.
    pub async fn fresh_store() -> ((), PgStore) {
        let url = fresh_database().await;
        ((), PgStore::connect(&PgConfig::new(&url), None).await.expect("connect the store"))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{fresh_database, fresh_store};
    use super::{PgConfig, PgStore};

    crate::store_contract_tests!(fresh_store);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_starting_together_migrate_once() {
        let url = fresh_database().await;
        let config = PgConfig::new(&url);
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let config = config.clone();
                tokio::spawn(async move { PgStore::connect(&config, None).await.map(|_| ()) })
            })
            .collect();
        for start in starts {
            start.await.unwrap().expect("every node starts");
        }
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let versions: i64 = client.query_one("SELECT count(*) FROM schema_version", &[]).await.unwrap().get(0);
        assert_eq!(versions as usize, super::schema::MIGRATIONS.len(), "each migration recorded once");
    }
}
