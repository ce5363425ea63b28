//! Where a message is sequenced and stored on PostgreSQL: group commit.
//!
//! Appends are queued to writer tasks (a channel always to the same one, so
//! its messages are numbered in the order they were submitted). A writer
//! takes everything queued, up to `MAX_BATCH`, and stores it in one
//! transaction of a few set-based statements, whatever the batch size:
//!
//! 1. lock the batch's channel rows (in id order, so writers on other nodes
//!    cannot deadlock with it) and read their last ids;
//! 2. read their members (with usernames, for mentions), the earlier copies
//!    of resent messages, and blocks between direct-channel members;
//! 3. decide each message in order: a resend returns the original, a
//!    refusal (not a member, blocked) writes nothing, the rest get the
//!    channel's next ids;
//! 4. insert the messages and their mentions, move the channels' last ids,
//!    commit: one fsync for the whole batch.
//!
//! Holding the channel locks until commit makes ids gap-free and committed
//! in order, also with several nodes writing.

use super::search;
use crate::{Appended, CommitObserver, NewMessage, StoreError};
use chinwag_proto::{Attachment, ChannelId, Message, MessageId, UserId};
use deadpool_postgres::Pool;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

type Param<'a> = dyn tokio_postgres::types::ToSql + Sync + 'a;

/// Most messages one transaction takes.
const MAX_BATCH: usize = 1024;
/// Times a batch is tried again after a serialization failure or deadlock.
const RETRIES: usize = 3;

/// A queued append and where its answer goes.
pub(super) struct AppendJob {
    pub message: NewMessage,
    pub reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// Runs one writer until its queue closes.
pub(super) async fn run_writer(
    pool: Pool,
    jobs: flume::Receiver<AppendJob>,
    observer: Option<Arc<dyn CommitObserver>>,
) {
    while let Ok(first) = jobs.recv_async().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let messages: Vec<&NewMessage> = batch.iter().map(|j| &j.message).collect();
        let started = Instant::now();
        let mut outcome = store_batch(&pool, &messages).await;
        for _ in 0..RETRIES {
            match &outcome {
                Err(StoreError::Backend(e)) if is_retryable(e.as_ref()) => {
                    outcome = store_batch(&pool, &messages).await
                }
                _ => break,
            }
        }
        match outcome {
            Ok(results) => {
                if let Some(observer) = &observer {
                    observer.batch_committed(batch.len(), started.elapsed());
                }
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = batch.len(), "a batch of messages failed");
                let unavailable = matches!(e, StoreError::Unavailable(_) | StoreError::Closed);
                for job in batch {
                    let error = if unavailable {
                        StoreError::Unavailable(e.to_string())
                    } else {
                        StoreError::Backend(e.to_string().into())
                    };
                    let _ = job.reply.send(Err(error));
                }
            }
        }
    }
}

fn is_retryable(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    use tokio_postgres::error::SqlState;
    e.downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// What the transaction learned about the batch's channels.
#[derive(Default)]
struct Channels {
    last: HashMap<i64, i64>,
    direct: HashSet<i64>,
    /// Members with their usernames, ascending by id.
    members: HashMap<i64, Vec<(UserId, String)>>,
    /// (owner, blocked) among direct-channel members.
    blocks: HashSet<(i64, i64)>,
    /// Earlier copies of resent messages by (channel, sender, client id).
    stored: HashMap<(i64, i64, String), Message>,
    /// The stored uploads the batch names, with their owners.
    uploads: HashMap<String, (UserId, Attachment)>,
}

impl Channels {
    /// The attachments `m` names, when each is a stored upload of its sender.
    fn attachments_of(&self, m: &NewMessage) -> Option<Vec<Attachment>> {
        m.attachments
            .iter()
            .map(|id| self.uploads.get(id).filter(|(owner, _)| *owner == m.sender_id).map(|(_, a)| a.clone()))
            .collect()
    }
}

/// A message to insert.
struct NewRow<'a> {
    message: &'a NewMessage,
    id: i64,
    mentions: Vec<UserId>,
    /// The attachments as stored (JSON).
    attachments: String,
}

/// Stores a batch in one transaction; one answer per message, in order.
///
/// Two round trips whatever the batch size: `BEGIN` goes out with the
/// reads, `COMMIT` with the writes (tokio-postgres pipelines statements
/// sent together; they run in order). On any failure the connection is
/// dropped instead of going back to the pool, which rolls back whatever
/// was open.
async fn store_batch(pool: &Pool, batch: &[&NewMessage]) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let client = pool.get().await?;
    let outcome = store_batch_on(&client, batch).await;
    if outcome.is_err() {
        drop(deadpool_postgres::Object::take(client));
    }
    outcome
}

async fn store_batch_on(
    tx: &deadpool_postgres::Object,
    batch: &[&NewMessage],
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let mut ids: Vec<i64> = batch.iter().map(|m| m.channel_id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let known = read_channels(tx, &ids, batch).await?;

    let mut last = known.last.clone();
    let mut answers = Vec::with_capacity(batch.len());
    let mut rows: Vec<NewRow> = Vec::new();
    let mut in_batch: HashMap<(i64, i64, &str), Message> = HashMap::new();
    for &m in batch {
        let key = (m.channel_id.0, m.sender_id.0, m.client_msg_id.as_str());
        let earlier = known.stored.get(&(key.0, key.1, key.2.to_owned())).or_else(|| in_batch.get(&key));
        if let Some(message) = earlier {
            answers.push(Ok(resend(message.clone())));
            continue;
        }
        let members = known.members.get(&m.channel_id.0).map(Vec::as_slice).unwrap_or_default();
        if !members.iter().any(|(id, _)| *id == m.sender_id) {
            answers.push(Err(StoreError::NotAMember));
            continue;
        }
        let blocked = known.direct.contains(&m.channel_id.0)
            && members.iter().any(|(other, _)| {
                let (a, b) = (m.sender_id.0, other.0);
                a != b && (known.blocks.contains(&(a, b)) || known.blocks.contains(&(b, a)))
            });
        if blocked {
            answers.push(Err(StoreError::Blocked));
            continue;
        }
        let Some(attachments) = known.attachments_of(m) else {
            answers.push(Err(StoreError::NotFound));
            continue;
        };
        let Some(next) = last.get_mut(&m.channel_id.0) else {
            answers.push(Err(StoreError::NotAMember));
            continue;
        };
        // Ids have no holes: every id from 1 to the newest exists.
        if m.reply_to.is_some_and(|r| !(1..=*next).contains(&r.0)) {
            answers.push(Err(StoreError::MessageNotFound));
            continue;
        }
        *next += 1;
        let names = chinwag_proto::mentions::mentioned_usernames(&m.text);
        let mentions: Vec<UserId> =
            members.iter().filter(|(id, name)| *id != m.sender_id && names.contains(name)).map(|(id, _)| *id).collect();
        let message = Message {
            channel_id: m.channel_id,
            message_id: MessageId(*next),
            sender_id: m.sender_id,
            client_msg_id: m.client_msg_id.clone(),
            text: m.text.clone(),
            created_at: m.created_at,
            mentioned: false,
            attachments,
            edited_at: None,
            deleted: false,
            reply_to: m.reply_to,
            reactions: Vec::new(),
            change_seq: 0,
        };
        in_batch.insert(key, message.clone());
        let attachments = crate::attachments_json(&message.attachments);
        answers.push(Ok(Appended {
            message,
            duplicate: false,
            mentions: mentions.clone(),
            members: members.iter().map(|(id, _)| *id).collect(),
        }));
        rows.push(NewRow { message: m, id: *next, mentions, attachments });
    }
    if rows.is_empty() {
        tx.batch_execute("COMMIT").await?;
    } else {
        insert_rows(tx, &rows, &last, &known.last).await?;
    }
    Ok(answers)
}

/// A resend: the original, with nothing to fan out again.
fn resend(message: Message) -> Appended {
    Appended { message, duplicate: true, mentions: Vec::new(), members: Vec::new() }
}

/// Reads what the batch needs in one round trip: the statements are sent
/// together (tokio-postgres pipelines them) and run in order, the lock
/// first, so the reads see the channels as locked.
async fn read_channels(
    tx: &deadpool_postgres::Object,
    ids: &[i64],
    batch: &[&NewMessage],
) -> Result<Channels, StoreError> {
    let stored_sql = format!(
        "SELECT {} FROM messages m JOIN unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS k(channel_id, sender_id, cmid) \
           ON m.channel_id = k.channel_id AND m.sender_id = k.sender_id AND m.client_msg_id = k.cmid",
        super::MESSAGE_COLS
    );
    // Usernames only matter when some text may mention someone.
    let members_sql = if batch.iter().any(|m| m.text.contains('@')) {
        "SELECT m.channel_id, m.user_id, u.username FROM members m JOIN users u ON u.id = m.user_id \
         WHERE m.channel_id = ANY($1) ORDER BY m.channel_id, m.user_id"
    } else {
        "SELECT channel_id, user_id, '' FROM members WHERE channel_id = ANY($1) ORDER BY channel_id, user_id"
    };
    let (lock, members, stored, blocks) = tokio::try_join!(
        tx.prepare_cached(
            "SELECT id, direct_key IS NOT NULL, last_message_id FROM channels \
             WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        ),
        tx.prepare_cached(members_sql),
        tx.prepare_cached(&stored_sql),
        // Blocks between the two members of each direct channel.
        tx.prepare_cached(
            "SELECT b.owner_id, b.blocked_id FROM channels c \
             JOIN members one ON one.channel_id = c.id JOIN members two ON two.channel_id = c.id \
             JOIN blocks b ON b.owner_id = one.user_id AND b.blocked_id = two.user_id \
             WHERE c.id = ANY($1) AND c.direct_key IS NOT NULL",
        ),
    )?;
    let channels: Vec<i64> = batch.iter().map(|m| m.channel_id.0).collect();
    let senders: Vec<i64> = batch.iter().map(|m| m.sender_id.0).collect();
    let client_ids: Vec<&[u8]> = batch.iter().map(|m| m.client_msg_id.as_bytes()).collect();
    let by_id: [&Param<'_>; 1] = [&ids];
    let by_key: [&Param<'_>; 3] = [&channels, &senders, &client_ids];
    let mut upload_ids: Vec<&str> = batch.iter().flat_map(|m| m.attachments.iter().map(String::as_str)).collect();
    upload_ids.sort_unstable();
    upload_ids.dedup();
    // Only batches with attachments pay for this read; the shared lock
    // keeps a named upload from being collected before the commit.
    let upload_rows = async {
        if upload_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {} FROM uploads WHERE id = ANY($1) AND stored FOR SHARE", super::UPLOAD_COLS);
        let statement = tx.prepare_cached(&sql).await?;
        tx.query(&statement, &[&upload_ids]).await
    };
    let (_, locked, member_rows, stored_rows, block_rows, upload_rows) = tokio::try_join!(
        tx.batch_execute("BEGIN"),
        tx.query(&lock, &by_id),
        tx.query(&members, &by_id),
        tx.query(&stored, &by_key),
        tx.query(&blocks, &by_id),
        upload_rows,
    )?;
    let mut known = Channels::default();
    for row in locked {
        let id: i64 = row.get(0);
        known.last.insert(id, row.get(2));
        if row.get::<_, bool>(1) {
            known.direct.insert(id);
        }
    }
    for row in member_rows {
        known.members.entry(row.get(0)).or_default().push((UserId(row.get(1)), row.get(2)));
    }
    for row in stored_rows {
        let message = super::message_from(&row);
        known.stored.insert((message.channel_id.0, message.sender_id.0, message.client_msg_id.clone()), message);
    }
    for row in block_rows {
        known.blocks.insert((row.get(0), row.get(1)));
    }
    for row in upload_rows {
        let upload = super::upload_from(&row);
        known.uploads.insert(upload.upload.id.clone(), (upload.owner, crate::attachment_of(upload.upload)));
    }
    Ok(known)
}

/// Inserts the messages and their mentions, moves the channels' last ids
/// and commits, the statements sent together (one round trip).
async fn insert_rows(
    tx: &deadpool_postgres::Object,
    rows: &[NewRow<'_>],
    last: &HashMap<i64, i64>,
    before: &HashMap<i64, i64>,
) -> Result<(), StoreError> {
    let channels: Vec<i64> = rows.iter().map(|r| r.message.channel_id.0).collect();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let senders: Vec<i64> = rows.iter().map(|r| r.message.sender_id.0).collect();
    let client_ids: Vec<&[u8]> = rows.iter().map(|r| r.message.client_msg_id.as_bytes()).collect();
    let texts: Vec<&[u8]> = rows.iter().map(|r| r.message.text.as_bytes()).collect();
    let created: Vec<i64> = rows.iter().map(|r| r.message.created_at).collect();
    let words: Vec<String> = rows.iter().map(|r| search::words(&r.message.text).join(" ")).collect();
    let attachments: Vec<&str> = rows.iter().map(|r| r.attachments.as_str()).collect();
    let replies: Vec<Option<i64>> = rows.iter().map(|r| r.message.reply_to.map(|m| m.0)).collect();
    let (mut a_uploads, mut a_channels, mut a_ids) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        for upload in &row.message.attachments {
            a_uploads.push(upload.as_str());
            a_channels.push(row.message.channel_id.0);
            a_ids.push(row.id);
        }
    }
    let (mut m_channels, mut m_ids, mut m_users) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        for user in &row.mentions {
            m_channels.push(row.message.channel_id.0);
            m_ids.push(row.id);
            m_users.push(user.0);
        }
    }
    let (moved, to): (Vec<i64>, Vec<i64>) =
        last.iter().filter(|(id, n)| before.get(id) != Some(n)).map(|(id, n)| (*id, *n)).unzip();
    let (insert, mentions, attach, advance) = tokio::try_join!(
        tx.prepare_cached(
            "INSERT INTO messages (channel_id, message_id, sender_id, client_msg_id, text, created_at, search, attachments, \
                                   reply_to) \
             SELECT c, m, s, k, t, a, array_to_tsvector(string_to_array(w, ' ')), f, r \
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bigint[], $7::text[], \
                         $8::text[], $9::bigint[]) AS v(c, m, s, k, t, a, w, f, r)",
        ),
        // Runs after the insert (same connection, in order): the feed ids exist.
        tx.prepare_cached(
            "INSERT INTO mentions (channel_id, message_id, user_id, feed_id) \
             SELECT v.c, v.m, v.u, msg.feed_id FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(c, m, u) \
             JOIN messages msg ON msg.channel_id = v.c AND msg.message_id = v.m",
        ),
        tx.prepare_cached(
            "WITH added AS (INSERT INTO attachments (upload_id, channel_id, message_id) \
               SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING) \
             UPDATE uploads SET attached = true WHERE id = ANY($1)",
        ),
        tx.prepare_cached(
            "UPDATE channels SET last_message_id = v.last \
             FROM unnest($1::bigint[], $2::bigint[]) AS v(id, last) WHERE channels.id = v.id",
        ),
    )?;
    let message_params: [&Param<'_>; 9] =
        [&channels, &ids, &senders, &client_ids, &texts, &created, &words, &attachments, &replies];
    let mention_params: [&Param<'_>; 3] = [&m_channels, &m_ids, &m_users];
    let advance_params: [&Param<'_>; 2] = [&moved, &to];
    let mention_rows = async {
        if m_users.is_empty() {
            Ok(0)
        } else {
            tx.execute(&mentions, &mention_params).await
        }
    };
    let attachment_params: [&Param<'_>; 3] = [&a_uploads, &a_channels, &a_ids];
    let attachment_rows = async {
        if a_uploads.is_empty() {
            Ok(0)
        } else {
            tx.execute(&attach, &attachment_params).await
        }
    };
    tokio::try_join!(
        tx.execute(&insert, &message_params),
        mention_rows,
        attachment_rows,
        tx.execute(&advance, &advance_params),
        tx.batch_execute("COMMIT"),
    )?;
    Ok(())
}

/// The channel a message's writer is chosen by.
pub(super) fn writer_of(channel: ChannelId, writers: usize) -> usize {
    (channel.0.unsigned_abs() % writers.max(1) as u64) as usize
}
