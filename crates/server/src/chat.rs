//! The messaging service: authenticate, send (validate, rate-limit, store,
//! fan out), read markers and typing. Shared by the api and gateway roles
//! so both behave the same; `channels` adds the channel lifecycle.

use crate::auth;
use crate::error::store_error;
use crate::members::MemberCache;
use crate::metrics::Metrics;
use crate::notifier::Handoff;
use crate::ratelimit::UserLimiter;
use crate::ServerConfig;
use chinwag_bus::{Bus, Event, Presence};
use chinwag_proto::{validate, ChannelId, ErrorCode, Message, MessageId, UserId, WireError};
use chinwag_store::{Appended, MessageChange, NewMessage, Session, Store, StoreError};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often channels with recent messages have their head announced.
const BEACON_EVERY: Duration = Duration::from_secs(1);
/// How long after its last message a channel is announced every second.
const BEACON_FOR: Duration = Duration::from_secs(5);
/// After that, it is announced every `BEACON_TAIL_EVERY` beacon ticks
/// until this long after its last message: a NATS server's death can
/// break routing for longer than the first few seconds (JetStream elects
/// new leaders, watches start over), and the tail still finds what was
/// lost then, at a fifth of the cost.
const BEACON_TAIL: Duration = Duration::from_secs(30);
const BEACON_TAIL_EVERY: u64 = 5;

/// What a channel head beacon announces, and until when.
#[derive(Debug, Clone, Copy)]
struct Head {
    last_message_id: MessageId,
    last_change_seq: u64,
    /// Announced every tick until then...
    until: Instant,
    /// ...and every few ticks until then.
    tail_until: Instant,
}

/// Where a `send` goes: a channel, or the direct channel with a user.
#[derive(Debug, Clone, Copy)]
pub enum SendTarget {
    Channel(ChannelId),
    User(UserId),
}

/// A message as its sender wrote it.
#[derive(Debug, Clone)]
pub struct Draft {
    pub client_msg_id: String,
    pub text: String,
    /// Upload ids, in order.
    pub attachments: Vec<String>,
    /// The message of the same channel it answers.
    pub reply_to: Option<MessageId>,
}

/// The messaging service, built from the store, the bus, presence (to
/// skip pushes for members who are online) and the notifier's queue.
pub struct Chat {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: Arc<dyn Bus>,
    presence: Arc<dyn Presence>,
    pushes: Handoff,
    /// Signs the URLs of stored messages' attachments.
    media: Arc<crate::media::Media>,
    metrics: Arc<Metrics>,
    pub(crate) config: Arc<ServerConfig>,
    /// Member lists for read markers and typing (never for messages).
    pub(crate) members: MemberCache,
    send_limiter: UserLimiter,
    typing_limiter: UserLimiter,
    request_limiter: UserLimiter,
    /// Direct channel of each ordered pair, so `to_user_id` sends skip the
    /// store lookup (a pair's direct channel never changes).
    direct_channels: Mutex<HashMap<(UserId, UserId), ChannelId>>,
    /// Channels this node stored messages or changes in lately: their
    /// newest id and change, and until when to announce them (only on a bus
    /// that may lose events).
    heads: Mutex<HashMap<ChannelId, Head>>,
}

impl Chat {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        presence: Arc<dyn Presence>,
        pushes: Handoff,
        media: Arc<crate::media::Media>,
        metrics: Arc<Metrics>,
        config: Arc<ServerConfig>,
    ) -> Chat {
        Chat {
            send_limiter: UserLimiter::new(config.send_rate_per_s, config.send_burst),
            typing_limiter: UserLimiter::new(config.typing_rate_per_s, config.typing_rate_per_s),
            request_limiter: UserLimiter::new(config.request_rate_per_s, config.request_burst),
            store,
            bus,
            presence,
            pushes,
            media,
            metrics,
            config,
            members: MemberCache::default(),
            direct_channels: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
        }
    }

    /// Requests that cost the store work (authenticated HTTP calls, `read`
    /// and `sync` frames) are limited per user, so one client cannot
    /// flood the store's threads that everyone shares.
    pub fn check_request(&self, user: UserId) -> Result<(), WireError> {
        self.request_limiter.check(&user)
    }

    /// Lets the limiters forget users who have been quiet for long.
    pub(crate) fn forget_idle(&self) {
        self.send_limiter.forget_idle();
        self.typing_limiter.forget_idle();
        self.request_limiter.forget_idle();
    }

    /// The live device a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Session, WireError> {
        if token.is_empty() || token.len() > 128 {
            return Err(WireError::unauthorized());
        }
        self.store.session(&auth::token_hash(token)).await.map_err(store_error)?.ok_or_else(WireError::unauthorized)
    }

    /// Checks the limits and the sender's rate, resolves the channel, and
    /// queues the message for storage *before returning*, so one caller's
    /// sends are numbered in the order it made them. The returned future
    /// finishes the send (durable store, then fan-out); spawn it so that it
    /// completes even if the caller goes away.
    pub async fn submit_message(
        self: &Arc<Self>,
        sender: UserId,
        target: SendTarget,
        draft: Draft,
    ) -> Result<impl Future<Output = Result<Appended, WireError>> + Send + 'static, WireError> {
        let Draft { client_msg_id, text, attachments, reply_to } = draft;
        validate::client_msg_id(&client_msg_id)?;
        validate::message_body(&text, &attachments)?;
        self.send_limiter.check(&sender)?;
        let channel_id = match target {
            SendTarget::Channel(id) => id,
            SendTarget::User(other) => self.direct_channel_id(sender, other).await?,
        };
        let stored = self.store.append_message(NewMessage {
            channel_id,
            sender_id: sender,
            client_msg_id,
            text,
            created_at: chinwag_proto::now_ms(),
            attachments,
            reply_to,
        });
        let chat = self.clone();
        let accepted = std::time::Instant::now();
        Ok(async move {
            let mut appended = stored.await.map_err(|e| match e {
                // The channel was checked; what is missing is an upload.
                StoreError::NotFound => WireError::not_found("upload"),
                StoreError::MessageNotFound => WireError::not_found("message to reply to"),
                e => store_error(e),
            })?;
            chat.media.sign(&mut appended.message);
            chat.metrics.send_ack_seconds.observe(accepted.elapsed().as_secs_f64());
            if !appended.duplicate {
                chat.metrics.messages_stored.inc();
                chat.fan_out_message(&appended);
            }
            Ok(appended)
        })
    }

    /// Sends and waits for the stored message (the HTTP path).
    pub async fn send_message(
        self: &Arc<Self>,
        sender: UserId,
        target: SendTarget,
        draft: Draft,
    ) -> Result<Appended, WireError> {
        let finish = self.submit_message(sender, target, draft).await?;
        tokio::spawn(finish).await.map_err(|_| WireError::internal())?
    }

    /// Publishes a stored message to the members its own transaction saw
    /// (no cache decides who hears), and hands it to the notifier.
    fn fan_out_message(&self, appended: &Appended) {
        let members = &appended.members;
        self.bus.publish(
            members,
            Event::Message { message: appended.message.clone(), mentions: appended.mentions.clone() },
        );
        // Nobody gets a push when every other member is online (the
        // common case, and it costs no store read).
        let message = &appended.message;
        if !members.iter().all(|&m| m == message.sender_id || self.presence.is_online(m)) {
            self.pushes.hand_over(message.clone());
        }
        self.announce_head(message.channel_id, message.message_id, 0);
    }

    /// Keeps a channel's newest message and change announced for a while.
    fn announce_head(&self, channel: ChannelId, message_id: MessageId, change_seq: u64) {
        if !self.bus.may_lose_events() {
            return;
        }
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let head = heads.entry(channel).or_insert(Head {
            last_message_id: MessageId(0),
            last_change_seq: 0,
            until: now,
            tail_until: now,
        });
        head.last_message_id = head.last_message_id.max(message_id);
        head.last_change_seq = head.last_change_seq.max(change_seq);
        head.until = now + BEACON_FOR;
        head.tail_until = now + BEACON_TAIL;
    }

    /// Announces the newest id and change of each channel that had messages
    /// lately, every second for a few seconds and then now and then for
    /// half a minute, so a connection that missed the last messages of a
    /// burst (the bus is at most once) notices and reads them from the
    /// store. Announcing continues while the bus is cut off.
    pub(crate) async fn send_head_beacons(self: Arc<Self>) {
        let mut every = tokio::time::interval(BEACON_EVERY);
        for tick in 0u64.. {
            every.tick().await;
            let due: Vec<(ChannelId, Head)> = {
                let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if !self.bus.is_connected() {
                    heads.values_mut().for_each(|head| {
                        head.until = head.until.max(now + BEACON_FOR);
                        head.tail_until = head.tail_until.max(now + BEACON_TAIL);
                    });
                }
                heads.retain(|_, head| head.tail_until > now);
                let tail_tick = tick % BEACON_TAIL_EVERY == 0;
                heads
                    .iter()
                    .filter(|(_, head)| head.until > now || tail_tick)
                    .map(|(&channel, &head)| (channel, head))
                    .collect()
            };
            for (channel_id, Head { last_message_id, last_change_seq, .. }) in due {
                match self.members.members(&*self.store, channel_id).await {
                    Ok(members) => {
                        self.bus.publish(&members, Event::ChannelHead { channel_id, last_message_id, last_change_seq })
                    }
                    Err(e) => tracing::debug!(error = %e, "no members for a head beacon"),
                }
            }
        }
    }

    async fn direct_channel_id(&self, me: UserId, other: UserId) -> Result<ChannelId, WireError> {
        if let Some(id) = self.cached_direct(me, other) {
            return Ok(id);
        }
        let (channel, _) = self.open_direct(me, other).await?;
        Ok(channel.id)
    }

    fn cached_direct(&self, me: UserId, other: UserId) -> Option<ChannelId> {
        let cache = self.direct_channels.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&(me, other)).copied()
    }

    pub(crate) fn remember_direct(&self, me: UserId, other: UserId, id: ChannelId) {
        let mut cache = self.direct_channels.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 100_000 {
            cache.clear();
        }
        cache.insert((me, other), id);
        cache.insert((other, me), id);
    }

    /// Edits, deletes or reacts to a stored message, then tells every
    /// member's connections (`message_updated`, no push). A delete's
    /// files leave the object store at once. Returns the message as it
    /// is now.
    pub async fn change_message(
        &self,
        actor: UserId,
        channel: ChannelId,
        message_id: MessageId,
        change: MessageChange,
    ) -> Result<Message, WireError> {
        match &change {
            MessageChange::Edit { text } if !text.is_empty() => validate::text(text)?,
            MessageChange::React { emoji, .. } => validate::emoji(emoji)?,
            _ => {}
        }
        self.send_limiter.check(&actor)?;
        let mut changed = self
            .store
            .change_message(channel, message_id, actor, change, chinwag_proto::now_ms())
            .await
            .map_err(store_error)?;
        if !changed.released_uploads.is_empty() {
            self.media.remove(std::mem::take(&mut changed.released_uploads)).await;
        }
        self.media.sign(&mut changed.message);
        if changed.changed {
            self.metrics.messages_changed.inc();
            let message = &changed.message;
            self.announce_head(message.channel_id, MessageId(0), message.change_seq);
            let event = Event::MessageUpdated { message: changed.message.clone(), mentions: changed.mentions };
            self.bus.publish(&changed.members, event);
        }
        Ok(changed.message)
    }

    /// Moves `user`'s read marker forward and tells every member's
    /// connections (the reader's other devices included).
    pub async fn mark_read(&self, user: UserId, channel: ChannelId, message_id: MessageId) -> Result<(), WireError> {
        let moved = self.store.set_read(channel, user, message_id).await.map_err(store_error)?;
        if let Some(message_id) = moved {
            let members = self.members.members(&*self.store, channel).await.map_err(store_error)?;
            self.bus.publish(&members, Event::Read { channel_id: channel, user_id: user, message_id });
        }
        Ok(())
    }

    /// Relays "typing" to the other members; never stored.
    pub async fn typing(&self, user: UserId, channel: ChannelId) -> Result<(), WireError> {
        self.typing_limiter.check(&user)?;
        let members = self.members_for(user, channel).await?;
        let others: Vec<UserId> = members.iter().copied().filter(|&m| m != user).collect();
        self.bus.publish(&others, Event::Typing { channel_id: channel, user_id: user });
        Ok(())
    }

    /// The members of a channel when `user` is one of them.
    pub async fn members_for(&self, user: UserId, channel: ChannelId) -> Result<Arc<[UserId]>, WireError> {
        let members = self.members.members(&*self.store, channel).await.map_err(store_error)?;
        if members.contains(&user) {
            Ok(members)
        } else {
            Err(WireError::new(ErrorCode::NotFound, "no such channel"))
        }
    }
}

impl Chat {
    /// Applies what other nodes broadcast (cache invalidations). If the bus
    /// drops this node's queue (it fell behind), every cached member list is
    /// forgotten and the node subscribes again.
    pub(crate) async fn follow_broadcasts(self: Arc<Self>) {
        loop {
            let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
            let _subscription = match self.bus.subscribe_broadcasts(tx).await {
                Ok(subscription) => subscription,
                Err(e) => {
                    tracing::warn!(error = %e, "could not follow broadcasts; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(event) = rx.recv().await {
                match event {
                    chinwag_bus::NodeEvent::MembersChanged { channel_id } => self.members.invalidate(channel_id),
                }
            }
            self.members.clear();
        }
    }
}
