//! The messaging service: authenticate, send (validate, rate-limit, store,
//! fan out), read markers and typing. Shared by HTTP and WebSocket so both
//! behave the same.

use crate::auth;
use crate::error::store_error;
use crate::App;
use chinwag_bus::Event;
use chinwag_proto::{validate, ChannelId, ErrorCode, MessageId, UserId, WireError};
use chinwag_store::{Appended, NewMessage, Session};
use std::future::Future;
use std::sync::Arc;

/// Where a `send` goes: a channel, or the direct channel with a user.
#[derive(Debug, Clone, Copy)]
pub enum SendTarget {
    Channel(ChannelId),
    User(UserId),
}

impl App {
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
        client_msg_id: String,
        text: String,
    ) -> Result<impl Future<Output = Result<Appended, WireError>> + Send + 'static, WireError> {
        validate::client_msg_id(&client_msg_id)?;
        validate::text(&text)?;
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
        });
        let app = self.clone();
        let accepted = std::time::Instant::now();
        Ok(async move {
            let appended = stored.await.map_err(store_error)?;
            app.metrics.send_ack_seconds.observe(accepted.elapsed().as_secs_f64());
            if !appended.duplicate {
                app.metrics.messages_stored.inc();
                app.fan_out_message(&appended);
            }
            Ok(appended)
        })
    }

    /// Sends and waits for the stored message (the HTTP path).
    pub async fn send_message(
        self: &Arc<Self>,
        sender: UserId,
        target: SendTarget,
        client_msg_id: String,
        text: String,
    ) -> Result<Appended, WireError> {
        let finish = self.submit_message(sender, target, client_msg_id, text).await?;
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
        self.message_for_push(&appended.message, members);
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
