//! The embedded store: SQLite in WAL mode with `synchronous=FULL`.
//!
//! Why threads: SQLite calls block, so none of them may run on the async
//! runtime. One writer thread owns the only write connection and drains its
//! queue into batches: every job of a batch runs inside one transaction
//! (each does all its checks before its first write, so a refused job
//! leaves nothing behind), and one commit (one fsync) makes the whole batch
//! durable before any caller hears back (group commit). Reader threads each own a
//! read connection; WAL lets them read while the writer writes.

mod queries;
mod schema;

use crate::CommitObserver;
use crate::{
    Account, Appended, BackupInfo, BoxFuture, Changed, ChannelState, Credentials, FeedPage, HistoryQuery, MemberAdded,
    MessageChange, NewDevice, NewGroup, NewMessage, NewUpload, NewUser, OutboxItem, Page, PushItem, PushRecipient,
    SearchQuery, Session, Store, StoreError, StoredUpload,
};
use async_trait::async_trait;
use chinwag_proto::{Channel, ChannelId, DeviceId, Invitation, MessageId, User, UserId};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most jobs one transaction takes; bounds the latency a batch adds.
const MAX_BATCH: usize = 512;
/// Writes waiting for the writer; senders wait (backpressure) beyond this.
const WRITE_QUEUE: usize = 8192;
const READ_QUEUE: usize = 8192;

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub path: PathBuf,
    pub reader_threads: usize,
}

impl SqliteConfig {
    /// The store file `chinwag.db` inside a data directory.
    pub fn in_dir(dir: &Path) -> Self {
        SqliteConfig { path: dir.join("chinwag.db"), reader_threads: 2 }
    }
}

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A write: runs inside the batch's transaction, then learns whether the
/// batch committed and answers its caller.
///
/// The rule every write follows: *all checks before any write*. A job that
/// refuses (not a member, name taken, ...) returns before touching a row, so
/// it leaves nothing in the batch and needs no savepoint. (Savepoints per
/// job would also make FTS5 flush its index once per message instead of
/// once per batch, which cost a fifth of the server's CPU.) Only an engine
/// failure can stop a job halfway; then the whole batch is rolled back and
/// every job in it fails.
trait WriteJob: Send {
    /// Runs the job; `false` when the engine failed (the batch must abort).
    fn run(&mut self, conn: &Connection) -> bool;
    /// `commit` is the batch's fate: `Err` carries why it was rolled back.
    fn finish(self: Box<Self>, commit: Result<(), &str>);
}

struct Job<T, F> {
    work: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return true };
        let outcome = work(conn);
        let engine_ok = !matches!(outcome, Err(StoreError::Backend(_)));
        self.outcome = Some(outcome);
        engine_ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &str>) {
        let answer = match (commit, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (_, Some(Err(e @ StoreError::Backend(_)))) => Err(e),
            (Err(why), _) => Err(StoreError::Backend(why.to_owned().into())),
            (_, None) => Err(StoreError::Closed),
        };
        // The caller may have gone away; the write stands either way.
        let _ = self.reply.send(answer);
    }
}

enum WriterMsg {
    Job(Box<dyn WriteJob>),
    Shutdown(oneshot::Sender<()>),
}

/// The embedded SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    writes: flume::Sender<WriterMsg>,
    reads: flume::Sender<ReadJob>,
    /// The database file, for backups on their own connection.
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating and migrating when needed) the store and starts its
    /// threads.
    pub fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        Self::open_observed(config, None)
    }

    /// Like [`SqliteStore::open`], reporting each group commit to `observer`.
    pub fn open_observed(config: &SqliteConfig, observer: Option<Box<dyn CommitObserver>>) -> Result<Self, StoreError> {
        let writer = schema::open_writer(&config.path)?;
        let checkpointer = schema::open_checkpointer(&config.path)?;
        // The writer holds `stop_checkpoints`; when it exits, so does the
        // checkpointer.
        let (stop_checkpoints, stopped) = flume::bounded::<()>(0);
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, stopped))
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let (writes, write_rx) = flume::bounded(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let _stop_checkpoints = stop_checkpoints;
                writer_loop(writer, write_rx, observer)
            })
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let (reads, read_rx) = flume::bounded::<ReadJob>(READ_QUEUE);
        for i in 0..config.reader_threads.max(1) {
            let conn = schema::open_reader(&config.path)?;
            let rx = read_rx.clone();
            std::thread::Builder::new()
                .name(format!("store-reader-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job(&conn);
                    }
                })
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
        }
        Ok(SqliteStore { writes, reads, path: config.path.clone() })
    }

    /// Queues a write now (keeping call order when the queue has room) and
    /// returns its answer as a future.
    fn submit_write<T, F>(&self, work: F) -> BoxFuture<'static, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = WriterMsg::Job(Box::new(Job { work: Some(work), outcome: None, reply }));
        let queued = match self.writes.try_send(job) {
            Ok(()) => None,
            Err(flume::TrySendError::Full(job)) => Some((self.writes.clone(), job)),
            Err(flume::TrySendError::Disconnected(_)) => return Box::pin(std::future::ready(Err(StoreError::Closed))),
        };
        Box::pin(async move {
            // A full queue means overload: wait for room (backpressure).
            if let Some((writes, job)) = queued {
                writes.send_async(job).await.map_err(|_| StoreError::Closed)?;
            }
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_write(work).await
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(work(conn));
        });
        self.reads.send_async(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Copies the WAL into the database off the writer's path (the writer has
/// automatic checkpoints turned off, so commits never pay for them). Only
/// PASSIVE checkpoints: they never block the writer, and once one copies
/// everything, SQLite starts the WAL over at the next write. Ends when the
/// writer thread does.
fn checkpoint_loop(conn: Connection, stop: flume::Receiver<()>) {
    while let Err(flume::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "checkpoint failed");
        }
    }
}

fn writer_loop(conn: Connection, rx: flume::Receiver<WriterMsg>, observer: Option<Box<dyn CommitObserver>>) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    let mut shutdown = None;
    while shutdown.is_none() {
        let Ok(first) = rx.recv() else { break };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                WriterMsg::Job(job) => batch.push(job),
                WriterMsg::Shutdown(done) => {
                    shutdown = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            commit_batch(&conn, &mut batch, observer.as_deref());
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "checkpoint at shutdown failed");
    }
    drop(conn);
    if let Some(done) = shutdown {
        let _ = done.send(());
    }
}

fn commit_batch(conn: &Connection, batch: &mut Vec<Box<dyn WriteJob>>, observer: Option<&dyn CommitObserver>) {
    let jobs = batch.len();
    let started = Instant::now();
    let exec = |sql: &str| -> Result<(), String> {
        conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(|e| e.to_string())
    };
    let commit = (|| {
        exec("BEGIN IMMEDIATE")?;
        for job in batch.iter_mut() {
            if !job.run(conn) {
                return Err("a write failed in the engine; its batch was rolled back".to_owned());
            }
        }
        queries::index_new_messages(conn).map_err(|e| e.to_string())?;
        exec("COMMIT")
    })();
    if let Err(why) = &commit {
        tracing::error!(error = %why, jobs, "store batch failed");
        let _ = conn.execute_batch("ROLLBACK");
    }
    if let Some(observer) = observer {
        observer.batch_committed(jobs, started.elapsed());
    }
    for job in batch.drain(..) {
        job.finish(commit.as_ref().map(|_| ()).map_err(String::as_str));
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.write(move |c| queries::create_user(c, &user)).await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.read(move |c| queries::user(c, id)).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let username = username.to_lowercase();
        self.read(move |c| queries::user_by_username(c, &username)).await
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        let username = username.to_lowercase();
        self.read(move |c| queries::credentials(c, &username)).await
    }

    async fn update_display_name(&self, id: UserId, display_name: &str) -> Result<User, StoreError> {
        let display_name = display_name.to_owned();
        self.write(move |c| queries::update_display_name(c, id, &display_name)).await
    }

    async fn accounts(&self, after: Option<UserId>, limit: u32) -> Result<Vec<Account>, StoreError> {
        self.read(move |c| queries::accounts(c, after, limit)).await
    }

    async fn account(&self, id: UserId) -> Result<Option<Account>, StoreError> {
        self.read(move |c| queries::account(c, id)).await
    }

    async fn active_session(&self, session: Session) -> Result<Option<User>, StoreError> {
        self.read(move |c| queries::active_session(c, session)).await
    }

    async fn set_disabled(&self, id: UserId, disabled: bool, now_ms: i64) -> Result<Vec<DeviceId>, StoreError> {
        self.write(move |c| queries::set_disabled(c, id, disabled, now_ms)).await
    }

    /// Runs on a thread of its own: a large store takes a while to copy,
    /// and the readers keep serving meanwhile.
    async fn backup(&self, dest: &Path) -> Result<BackupInfo, StoreError> {
        let (source, dest) = (self.path.clone(), dest.to_path_buf());
        let (reply, answer) = oneshot::channel();
        std::thread::Builder::new()
            .name("store-backup".into())
            .spawn(move || {
                let _ = reply.send(schema::backup(&source, &dest));
            })
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn create_device(&self, device: NewDevice) -> Result<DeviceId, StoreError> {
        self.write(move |c| queries::create_device(c, &device)).await
    }

    async fn session(&self, token_hash: &[u8]) -> Result<Option<Session>, StoreError> {
        let token_hash = token_hash.to_vec();
        self.read(move |c| queries::session(c, &token_hash)).await
    }

    async fn revoke_device(&self, device: DeviceId) -> Result<(), StoreError> {
        self.write(move |c| queries::revoke_device(c, device)).await
    }

    async fn direct_channel(&self, me: UserId, other: UserId, now_ms: i64) -> Result<(Channel, bool), StoreError> {
        self.write(move |c| queries::direct_channel(c, me, other, now_ms)).await
    }

    async fn create_group(&self, group: NewGroup) -> Result<Channel, StoreError> {
        self.write(move |c| queries::create_group(c, &group)).await
    }

    async fn channel(&self, id: ChannelId, viewer: UserId) -> Result<Option<Channel>, StoreError> {
        self.read(move |c| queries::channel_for(c, id, viewer)).await
    }

    async fn channel_state(&self, id: ChannelId) -> Result<Option<ChannelState>, StoreError> {
        self.read(move |c| queries::channel_state(c, id)).await
    }

    async fn channels_of(&self, user: UserId) -> Result<Vec<Channel>, StoreError> {
        self.read(move |c| queries::channels_of(c, user)).await
    }

    async fn members(&self, id: ChannelId) -> Result<Vec<UserId>, StoreError> {
        self.read(move |c| queries::members(c, id)).await
    }

    async fn add_member(
        &self,
        id: ChannelId,
        user: UserId,
        actor: UserId,
        now_ms: i64,
    ) -> Result<MemberAdded, StoreError> {
        self.write(move |c| queries::add_member(c, id, user, actor, now_ms)).await
    }

    async fn remove_member(&self, id: ChannelId, user: UserId, actor: UserId, now_ms: i64) -> Result<bool, StoreError> {
        self.write(move |c| queries::remove_member(c, id, user, actor, now_ms)).await
    }

    async fn invitations(&self, user: UserId) -> Result<Vec<Invitation>, StoreError> {
        self.read(move |c| queries::invitations(c, user)).await
    }

    async fn accept_invitation(&self, id: ChannelId, user: UserId, now_ms: i64) -> Result<(), StoreError> {
        self.write(move |c| queries::accept_invitation(c, id, user, now_ms)).await
    }

    async fn decline_invitation(&self, id: ChannelId, user: UserId) -> Result<bool, StoreError> {
        self.write(move |c| queries::decline_invitation(c, id, user)).await
    }

    async fn users_at_channel_limit(&self, users: &[UserId], limit: usize) -> Result<Vec<UserId>, StoreError> {
        let users = users.to_vec();
        self.read(move |c| queries::users_at_channel_limit(c, &users, limit)).await
    }

    async fn block(&self, owner: UserId, blocked: UserId, now_ms: i64) -> Result<bool, StoreError> {
        self.write(move |c| queries::block(c, owner, blocked, now_ms)).await
    }

    async fn unblock(&self, owner: UserId, blocked: UserId) -> Result<bool, StoreError> {
        self.write(move |c| queries::unblock(c, owner, blocked)).await
    }

    async fn blocked_users(&self, owner: UserId) -> Result<Vec<User>, StoreError> {
        self.read(move |c| queries::blocked_users(c, owner)).await
    }

    async fn presence_visible(&self, viewer: UserId, users: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        let users = users.to_vec();
        self.read(move |c| queries::presence_visible(c, viewer, &users)).await
    }

    fn append_message(&self, message: NewMessage) -> BoxFuture<'static, Result<Appended, StoreError>> {
        self.submit_write(move |c| queries::append_message(c, message))
    }

    async fn messages(
        &self,
        id: ChannelId,
        query: HistoryQuery,
        limit: u32,
        viewer: UserId,
    ) -> Result<Page, StoreError> {
        self.read(move |c| queries::messages(c, id, query, limit, viewer)).await
    }

    async fn add_contact(&self, owner: UserId, contact: UserId, now_ms: i64) -> Result<bool, StoreError> {
        self.write(move |c| queries::add_contact(c, owner, contact, now_ms)).await
    }

    async fn remove_contact(&self, owner: UserId, contact: UserId) -> Result<bool, StoreError> {
        self.write(move |c| queries::remove_contact(c, owner, contact)).await
    }

    async fn contacts(&self, owner: UserId) -> Result<Vec<User>, StoreError> {
        self.read(move |c| queries::contacts(c, owner)).await
    }

    async fn presence_audience(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        self.read(move |c| queries::presence_audience(c, user)).await
    }

    async fn set_last_active(&self, users: &[UserId], at_ms: i64) -> Result<(), StoreError> {
        let users = users.to_vec();
        self.write(move |c| queries::set_last_active(c, &users, at_ms)).await
    }

    async fn last_active(&self, users: &[UserId]) -> Result<Vec<(UserId, Option<i64>)>, StoreError> {
        let users = users.to_vec();
        self.read(move |c| queries::last_active(c, &users)).await
    }

    async fn search(&self, viewer: UserId, query: SearchQuery) -> Result<FeedPage, StoreError> {
        self.read(move |c| queries::search(c, viewer, &query)).await
    }

    async fn mentions(&self, viewer: UserId, before: Option<i64>, limit: u32) -> Result<FeedPage, StoreError> {
        self.read(move |c| queries::mentions(c, viewer, before, limit)).await
    }

    async fn change_message(
        &self,
        channel: ChannelId,
        message_id: MessageId,
        actor: UserId,
        change: MessageChange,
        now_ms: i64,
    ) -> Result<Changed, StoreError> {
        self.write(move |c| queries::change_message(c, channel, message_id, actor, &change, now_ms)).await
    }

    async fn changes(&self, channel: ChannelId, after: u64, limit: u32, viewer: UserId) -> Result<Page, StoreError> {
        self.read(move |c| queries::changes(c, channel, after, limit, viewer)).await
    }

    async fn set_read(
        &self,
        id: ChannelId,
        user: UserId,
        message_id: MessageId,
    ) -> Result<Option<MessageId>, StoreError> {
        self.write(move |c| queries::set_read(c, id, user, message_id)).await
    }

    async fn set_push_target(
        &self,
        device: DeviceId,
        user: UserId,
        target: String,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(move |c| queries::set_push_target(c, device, user, &target, now_ms)).await
    }

    async fn push_target(&self, device: DeviceId) -> Result<Option<String>, StoreError> {
        self.read(move |c| queries::push_target(c, device)).await
    }

    async fn remove_push_target(&self, device: DeviceId) -> Result<(), StoreError> {
        self.write(move |c| queries::remove_push_target(c, device)).await
    }

    async fn set_muted(&self, user: UserId, channel: ChannelId, muted: bool) -> Result<(), StoreError> {
        self.write(move |c| queries::set_muted(c, user, channel, muted)).await
    }

    async fn push_recipients(&self, channel: ChannelId, sender: UserId) -> Result<Vec<PushRecipient>, StoreError> {
        self.read(move |c| queries::push_recipients(c, channel, sender)).await
    }

    async fn queue_pushes(&self, items: Vec<PushItem>, due_at_ms: i64) -> Result<(), StoreError> {
        self.write(move |c| queries::queue_pushes(c, &items, due_at_ms)).await
    }

    async fn claim_due_pushes(&self, now_ms: i64, limit: u32, lease_ms: i64) -> Result<Vec<OutboxItem>, StoreError> {
        self.write(move |c| queries::claim_due_pushes(c, now_ms, limit, lease_ms)).await
    }

    async fn push_delivered(&self, id: i64, version: i64) -> Result<(), StoreError> {
        self.write(move |c| queries::push_delivered(c, id, version)).await
    }

    async fn push_retry(&self, id: i64, attempts: u32, due_at_ms: i64) -> Result<(), StoreError> {
        self.write(move |c| queries::push_retry(c, id, attempts, due_at_ms)).await
    }

    async fn push_dropped(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |c| queries::push_dropped(c, id)).await
    }

    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let (name, candidate) = (name.to_owned(), candidate.to_owned());
        self.write(move |c| queries::shared_secret(c, &name, &candidate)).await
    }

    async fn begin_upload(&self, upload: NewUpload, quota_bytes: u64) -> Result<(), StoreError> {
        self.write(move |c| queries::begin_upload(c, &upload, quota_bytes)).await
    }

    async fn upload_stored(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |c| queries::upload_stored(c, &id)).await
    }

    async fn upload(&self, id: &str) -> Result<Option<StoredUpload>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| queries::upload(c, &id)).await
    }

    async fn may_view_upload(&self, id: &str, viewer: UserId) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.read(move |c| queries::may_view_upload(c, &id, viewer)).await
    }

    async fn collectable_uploads(&self, unattached_before_ms: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(move |c| queries::collectable_uploads(c, unattached_before_ms, limit)).await
    }

    async fn forget_upload(&self, id: &str, unattached_before_ms: i64) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |c| queries::forget_upload(c, &id, unattached_before_ms)).await
    }

    async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.writes.send_async(WriterMsg::Shutdown(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn open_temp() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&SqliteConfig::in_dir(dir.path())).expect("open store");
        (dir, store)
    }

    crate::store_contract_tests!(open_temp);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_is_a_consistent_copy_taken_while_writing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&SqliteConfig::in_dir(dir.path())).unwrap());
        let (a, b) = crate::contract::two_users(&*store).await;
        let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
        for i in 0..200 {
            crate::contract::send(&*store, ch.id, a, &format!("before-{i}")).await;
        }
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..500 {
                    crate::contract::send(&*store, ch.id, b, &format!("during-{i}")).await;
                }
            })
        };
        let dest = dir.path().join("copy.db");
        let info = store.backup(&dest).await.unwrap();
        writer.await.unwrap();
        assert_eq!(info.bytes, std::fs::metadata(&dest).unwrap().len());
        assert!(store.backup(&dest).await.is_err(), "an existing file is never overwritten");
        assert!(!dir.path().join("copy.db.partial").exists());

        // The copy opens as a store of its own, with a gap-free prefix.
        let copy_dir = tempfile::tempdir().unwrap();
        std::fs::copy(&dest, copy_dir.path().join("chinwag.db")).unwrap();
        let copy = SqliteStore::open(&SqliteConfig::in_dir(copy_dir.path())).unwrap();
        let page = copy.messages(ch.id, HistoryQuery::Range { after: None, before: None }, 200, a).await.unwrap();
        assert_eq!(page.messages.len(), 200);
        let ids: Vec<i64> = page.messages.iter().map(|m| m.message_id.0).collect();
        assert_eq!(ids, (1..=200).collect::<Vec<_>>());
        let last = copy.channel(ch.id, a).await.unwrap().unwrap().last_message_id.0;
        assert!((200..=700).contains(&last));
        let tail = copy.messages(ch.id, HistoryQuery::Before(MessageId(last + 1)), 200, a).await.unwrap();
        assert_eq!(tail.messages.last().unwrap().message_id.0, last, "the copy's channel and messages agree");
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::in_dir(dir.path());
        let store = SqliteStore::open(&config).unwrap();
        let (a, b) = crate::contract::two_users(&store).await;
        let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
        let m = crate::contract::send(&store, ch.id, a, "c1").await;
        store.close().await;
        let store = SqliteStore::open(&config).unwrap();
        let again = crate::contract::send(&store, ch.id, a, "c1").await;
        assert!(again.duplicate);
        assert_eq!(again.message, m.message);
        assert_eq!(crate::contract::send(&store, ch.id, b, "c2").await.message.message_id, MessageId(2));
    }
}
