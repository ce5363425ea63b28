//! One task per WebSocket: authenticate, then a single `select!` over
//! inbound frames, acks of this socket's sends, the bounded queue of bus
//! events, the heartbeat deadline, the gap-fill timer and shutdown.
//!
//! Close codes: 1001 server shutting down, 1007 invalid UTF-8, 1008 auth
//! failed or token revoked, 1009 frame too large, 1013 too slow to keep up
//! (reconnect and sync), 4000 heartbeat timeout.

use super::cursor::Cursors;
use crate::chat::{Draft, SendTarget};
use crate::error::caused_by;
use crate::guarded_io::{Guard, ReadBudgetSpent};
use crate::slots::IpSlot;
use crate::App;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use bytes::Bytes;
use chinwag_bus::{Delivery, Event};
use chinwag_proto::{
    validate, ChannelId, ClientFrame, DeviceId, ErrorCode, Message, MessageId, ServerFrame, UserId, WireError,
};
use chinwag_store::{HistoryQuery, Session};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Acks and errors of this socket's sends that may wait to be written.
const REPLY_QUEUE: usize = 256;
/// Events written per wake-up before the loop looks at other work.
const EVENT_BATCH: usize = 128;

const GOING_AWAY: u16 = 1001;
const INVALID_DATA: u16 = 1007;
const POLICY: u16 = 1008;
const TOO_BIG: u16 = 1009;
const TRY_AGAIN_LATER: u16 = 1013;
const HEARTBEAT_TIMEOUT: u16 = 4000;

/// Why a connection ends; `None` close code means the peer is gone.
struct Closing(Option<(u16, &'static str)>);

type Step = Result<(), Closing>;

struct Connection {
    app: Arc<App>,
    ws: WebSocket,
    /// Time of the last frame from the client (any frame is a heartbeat).
    last_seen: Instant,
    outgoing: Vec<Arc<Delivery>>,
}

/// What an anonymous socket holds until it authenticates: its read
/// budget (lifted then) and its place among the address's anonymous
/// sockets (given back then).
pub(super) struct PreAuth {
    pub guard: Arc<Guard>,
    pub slot: Option<IpSlot>,
}

pub(super) async fn run(app: Arc<App>, ws: WebSocket, session: Option<Session>, pre_auth: PreAuth) {
    // Every write below has its own deadline, which closes a peer that
    // does not read with 1013 (the I/O's own would just drop it).
    pre_auth.guard.hand_over_write_timeout();
    let mut conn = Connection { app, ws, last_seen: Instant::now(), outgoing: Vec::new() };
    let authenticated = match session {
        Some(session) => Ok(session),
        None => conn.authenticate().await,
    };
    let PreAuth { guard, slot } = pre_auth;
    guard.lift_read_limit();
    drop(slot);
    let outcome = match authenticated {
        Ok(session) => conn.serve(session).await,
        Err(closing) => closing,
    };
    match outcome {
        Closing(Some((code, reason))) => {
            if code == TRY_AGAIN_LATER {
                conn.app.metrics.slow_consumers_closed.inc();
            }
            tracing::debug!(code, reason, "closing socket");
            conn.close(code, reason).await;
        }
        Closing(None) => tracing::debug!("peer closed socket"),
    }
}

/// Counts a socket in presence from authentication until it ends, however
/// it ends.
struct Online {
    app: Arc<App>,
    user: UserId,
}

impl Online {
    fn new(app: &Arc<App>, user: UserId) -> Online {
        app.metrics.connections.inc();
        app.presence.seam.connection_opened(user);
        Online { app: app.clone(), user }
    }
}

impl Drop for Online {
    fn drop(&mut self) {
        self.app.metrics.connections.dec();
        self.app.presence.seam.connection_closed(self.user);
    }
}

/// What an inbound WebSocket message turned out to be.
enum Inbound {
    Text(Utf8Bytes),
    Other,
}

impl Connection {
    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = WsMessage::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }));
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.send(frame)).await;
    }

    /// Reads one message; protocol violations become the matching close.
    fn inbound(&mut self, next: Option<Result<WsMessage, axum::Error>>) -> Result<Inbound, Closing> {
        self.last_seen = Instant::now();
        match next {
            None | Some(Ok(WsMessage::Close(_))) => Err(Closing(None)),
            Some(Ok(WsMessage::Text(text))) => Ok(Inbound::Text(text)),
            Some(Ok(WsMessage::Binary(data))) => Utf8Bytes::try_from(data)
                .map(Inbound::Text)
                .map_err(|_| Closing(Some((INVALID_DATA, "frame is not valid UTF-8")))),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Ok(Inbound::Other),
            Some(Err(e)) => Err(classify_read_error(e)),
        }
    }

    async fn write_frame(&mut self, frame: &ServerFrame) -> Step {
        self.write_all([text_frame(frame)]).await
    }

    async fn write_error(&mut self, error: &WireError, reference: Option<Value>) -> Step {
        self.write_frame(&ServerFrame::error(error, reference)).await
    }

    /// Writes and flushes, giving up on a peer that does not read.
    async fn write_all(&mut self, messages: impl IntoIterator<Item = WsMessage>) -> Step {
        let timeout = self.app.config.write_timeout();
        let ws = &mut self.ws;
        let written = tokio::time::timeout(timeout, async {
            for message in messages {
                ws.feed(message).await?;
            }
            ws.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Closing(None)),
            Err(_) => Err(Closing(Some((TRY_AGAIN_LATER, "client is not reading")))),
        }
    }

    /// Waits for the `auth` frame (other frames get an error and a retry).
    async fn authenticate(&mut self) -> Result<Session, Closing> {
        let deadline = tokio::time::Instant::now() + self.app.config.auth_timeout();
        loop {
            let next = tokio::select! {
                next = self.ws.next() => next,
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Closing(Some((POLICY, "no auth frame in time"))));
                }
                _ = self.app.shutdown.cancelled() => {
                    return Err(Closing(Some((GOING_AWAY, "server shutting down"))));
                }
            };
            let Inbound::Text(text) = self.inbound(next)? else { continue };
            let reply = match ClientFrame::decode(&text) {
                Err(e) => (e.error, e.reference),
                Ok((ClientFrame::Auth { token }, reference)) => match self.app.chat.authenticate(&token).await {
                    Ok(session) => return Ok(session),
                    Err(e) => {
                        let _ = self.write_error(&e, reference).await;
                        return Err(Closing(Some((POLICY, "authentication failed"))));
                    }
                },
                Ok((ClientFrame::Ping, _)) => {
                    self.write_frame(&ServerFrame::Pong).await?;
                    continue;
                }
                Ok((_, reference)) => (WireError::new(ErrorCode::Unauthorized, "send an auth frame first"), reference),
            };
            self.write_error(&reply.0, reply.1).await?;
        }
    }

    /// The authenticated life of the connection.
    async fn serve(&mut self, session: Session) -> Closing {
        // Counted over every gateway of a cluster.
        if self.app.presence.seam.connections_of(session.user_id) >= self.app.config.max_connections_per_user {
            let error = WireError::new(ErrorCode::RateLimited, "too many connections for this user");
            let _ = self.write_error(&error, None).await;
            return Closing(Some((POLICY, "too many connections for this user")));
        }
        // Counted before `ready` goes out, so a device that opens its next
        // socket as soon as this one is ready meets the cap.
        let _online = Online::new(&self.app, session.user_id);
        let (events_tx, mut events) = mpsc::channel(self.app.config.outbound_queue_frames);
        // Subscribed before the snapshot: whatever happens after it arrives.
        let _subscription = match self.app.bus.subscribe(session.user_id, events_tx).await {
            Ok(subscription) => subscription,
            Err(e) => {
                tracing::warn!(error = %e, "could not subscribe a socket");
                let error = WireError {
                    retry_after_ms: Some(1_000),
                    ..WireError::new(ErrorCode::Unavailable, "try again shortly")
                };
                let _ = self.write_error(&error, None).await;
                return Closing(Some((TRY_AGAIN_LATER, "bus unavailable")));
            }
        };
        // Encoded frames, not `ServerFrame`s: a channel allocates its first
        // block of slots up front, and every idle socket pays for it.
        let (replies_tx, mut replies) = mpsc::channel::<Utf8Bytes>(REPLY_QUEUE);
        let mut state = match self.ready(session).await {
            Ok(state) => state,
            Err(closing) => return closing,
        };
        tracing::debug!(user = session.user_id.0, device = session.device_id.0, "socket ready");
        let heartbeat = self.app.config.heartbeat_timeout();
        let gap_delay = self.app.config.gap_fill_delay();
        let far_future = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let silence = tokio::time::sleep(heartbeat);
        let gap_timer = tokio::time::sleep_until(far_future());
        tokio::pin!(silence, gap_timer);
        loop {
            let step = tokio::select! {
                biased;
                _ = self.app.shutdown.cancelled() => Err(Closing(Some((GOING_AWAY, "server shutting down")))),
                next = self.ws.next() => match self.inbound(next) {
                    Ok(Inbound::Text(text)) => self.on_frame(&mut state, &text, &replies_tx).await,
                    Ok(Inbound::Other) => Ok(()),
                    Err(closing) => Err(closing),
                },
                Some(reply) = replies.recv() => self.write_all([WsMessage::Text(reply)]).await,
                event = events.recv() => match event {
                    Some(first) => self.on_events(&mut state, first, &mut events).await,
                    // The bus dropped our queue: we fell too far behind, or
                    // events were lost on the way (a cluster bus cut off).
                    None => Err(Closing(Some((TRY_AGAIN_LATER, "too slow to keep up; reconnect and sync")))),
                },
                _ = &mut silence => {
                    let deadline = self.last_seen + heartbeat;
                    if deadline <= Instant::now() {
                        Err(Closing(Some((HEARTBEAT_TIMEOUT, "no heartbeat"))))
                    } else {
                        silence.as_mut().reset(deadline.into());
                        Ok(())
                    }
                }
                _ = &mut gap_timer => self.fill_gaps(&mut state, gap_delay).await,
            };
            if let Err(closing) = step {
                return closing;
            }
            let due =
                if state.cursors.overfull() { Some(Instant::now()) } else { state.cursors.next_gap_due(gap_delay) };
            let wanted = due.map_or_else(far_future, Into::into);
            if gap_timer.deadline() != wanted {
                gap_timer.as_mut().reset(wanted);
            }
        }
    }

    async fn ready(&mut self, session: Session) -> Result<State, Closing> {
        let store = &self.app.store;
        // Read after subscribing: a device logged out (or an account
        // disabled) before this read is seen here; after it, the bus
        // event closes us. Either way no revoked token stays connected.
        // Both reads at once: one round trip's wait on a remote store.
        let loaded = tokio::try_join!(store.active_session(session), store.channels_of(session.user_id));
        let (user, channels) = match loaded {
            Ok((Some(user), channels)) => (user, channels),
            Ok((None, _)) => return Err(Closing(Some((POLICY, "token revoked or account disabled")))),
            Err(e) => {
                let _ = self.write_error(&crate::error::store_error(e), None).await;
                return Err(Closing(Some((TRY_AGAIN_LATER, "store unavailable"))));
            }
        };
        let mut cursors = Cursors::default();
        for channel in &channels {
            cursors.join(channel.id, channel.last_message_id, channel.last_change_seq);
        }
        self.write_frame(&ServerFrame::Ready {
            user,
            device_id: session.device_id,
            heartbeat_interval_ms: self.app.config.heartbeat_interval_ms,
            channels,
        })
        .await?;
        Ok(State { user: session.user_id, device: session.device_id, cursors })
    }

    async fn on_frame(&mut self, state: &mut State, text: &str, replies: &mpsc::Sender<Utf8Bytes>) -> Step {
        let (frame, reference) = match ClientFrame::decode(text) {
            Ok(decoded) => decoded,
            Err(e) => return self.write_error(&e.error, e.reference).await,
        };
        // Frames that cost the store work count against the user's rate.
        if matches!(frame, ClientFrame::Sync { .. } | ClientFrame::Read { .. }) {
            if let Err(e) = self.app.chat.check_request(state.user) {
                return self.write_error(&e, reference).await;
            }
        }
        let result = match frame {
            ClientFrame::Ping => return self.write_frame(&ServerFrame::Pong).await,
            ClientFrame::Auth { .. } => Err(WireError::bad_request("already authenticated")),
            ClientFrame::Send { client_msg_id, channel_id, to_user_id, text, attachments, reply_to } => {
                let target = match (channel_id, to_user_id) {
                    (Some(channel), _) => Some(SendTarget::Channel(channel)),
                    (None, Some(user)) => Some(SendTarget::User(user)),
                    (None, None) => None,
                };
                match target {
                    Some(target) => {
                        let draft = Draft { client_msg_id, text, attachments, reply_to };
                        self.send(state.user, target, draft, reference.clone(), replies).await
                    }
                    None => Err(WireError::bad_request("`send` needs `channel_id` or `to_user_id`")),
                }
            }
            ClientFrame::Sync { channel_id, after, limit } => {
                return self.sync(state, channel_id, after, limit, reference).await;
            }
            ClientFrame::Read { channel_id, message_id } => {
                self.app.chat.mark_read(state.user, channel_id, message_id).await
            }
            ClientFrame::Typing { channel_id } => self.app.chat.typing(state.user, channel_id).await,
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.write_error(&e, reference).await,
        }
    }

    /// Queues the message for storage now (keeping this socket's order) and
    /// lets a task deliver the ack once it is durable.
    async fn send(
        &mut self,
        user: UserId,
        target: SendTarget,
        draft: Draft,
        reference: Option<Value>,
        replies: &mpsc::Sender<Utf8Bytes>,
    ) -> Result<(), WireError> {
        let client_msg_id = draft.client_msg_id.clone();
        let finish = self.app.chat.submit_message(user, target, draft).await?;
        let replies = replies.clone();
        tokio::spawn(async move {
            let reply = match finish.await {
                Ok(appended) => ServerFrame::Ack {
                    client_msg_id,
                    channel_id: appended.message.channel_id,
                    message_id: appended.message.message_id,
                    created_at: appended.message.created_at,
                },
                Err(e) => ServerFrame::error(&e, reference),
            };
            // The socket may be gone; the message is stored either way and
            // the client learns its id when it resends after reconnecting.
            let _ = replies.send(Utf8Bytes::from(reply.to_json())).await;
        });
        Ok(())
    }

    async fn sync(
        &mut self,
        state: &mut State,
        channel: ChannelId,
        after: MessageId,
        limit: Option<u32>,
        reference: Option<Value>,
    ) -> Step {
        if !state.cursors.contains(channel) {
            return self.write_error(&WireError::not_found("channel"), reference).await;
        }
        let limit = match validate::history_limit(limit) {
            Ok(limit) => limit,
            Err(e) => return self.write_error(&e, reference).await,
        };
        let query = HistoryQuery::Range { after: Some(after), before: None };
        let mut page = match self.app.store.messages(channel, query, limit, state.user).await {
            Ok(page) => page,
            Err(e) => return self.write_error(&crate::error::store_error(e), reference).await,
        };
        self.app.media.sign_all(&mut page.messages);
        let up_to = page.messages.last().map_or(after, |m| m.message_id);
        let synced = ServerFrame::Synced { channel_id: channel, up_to, has_more: page.has_more };
        let frames = page.messages.into_iter().map(message_frame).chain([text_frame(&synced)]);
        self.write_all(frames.collect::<Vec<_>>()).await?;
        state.cursors.advance(channel, up_to, &mut self.outgoing);
        self.flush_outgoing().await
    }

    /// Handles a batch of bus events, then writes what they released.
    async fn on_events(
        &mut self,
        state: &mut State,
        first: Arc<Delivery>,
        events: &mut mpsc::Receiver<Arc<Delivery>>,
    ) -> Step {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(delivery) = next.take() {
            self.route(state, delivery)?;
            taken += 1;
            if taken < EVENT_BATCH {
                next = events.try_recv().ok();
            }
        }
        self.flush_outgoing().await
    }

    /// Decides what one event means for this connection.
    fn route(&mut self, state: &mut State, delivery: Arc<Delivery>) -> Step {
        match &delivery.event {
            Event::Message { message, .. } => {
                let (channel, id) = (message.channel_id, message.message_id);
                let delivery = flagged_for(state.user, delivery);
                state.cursors.admit(channel, id, delivery, Instant::now(), &mut self.outgoing);
            }
            Event::MessageUpdated { message, .. } => {
                let (channel, id) = (message.channel_id, (message.message_id, message.change_seq));
                let delivery = flagged_for(state.user, delivery);
                state.cursors.change(channel, id, delivery, &mut self.outgoing);
            }
            Event::Presence { .. } | Event::Invitation { .. } => self.outgoing.push(delivery),
            Event::Read { channel_id, .. } | Event::Typing { channel_id, .. } => {
                if state.cursors.contains(*channel_id) {
                    self.outgoing.push(delivery);
                }
            }
            Event::Channel { channel } => {
                state.cursors.join(channel.id, channel.last_message_id, channel.last_change_seq);
                self.outgoing.push(delivery);
            }
            Event::ChannelRemoved { channel_id } => {
                state.cursors.leave(*channel_id);
                self.outgoing.push(delivery);
            }
            Event::DeviceRevoked { device_id } => {
                if *device_id == state.device {
                    return Err(Closing(Some((POLICY, "token revoked"))));
                }
            }
            Event::ChannelHead { channel_id, last_message_id, last_change_seq } => {
                state.cursors.head(*channel_id, *last_message_id, Instant::now());
                state.cursors.change_head(*channel_id, *last_change_seq, Instant::now());
            }
        }
        Ok(())
    }

    async fn flush_outgoing(&mut self) -> Step {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        let messages = self.outgoing.iter().filter(|d| matches!(d.event, Event::Message { .. })).count();
        self.app.metrics.messages_delivered.inc_by(messages as u64);
        let frames: Vec<WsMessage> = self
            .outgoing
            .drain(..)
            .filter_map(|d| {
                let bytes = d.encoded(encode_event);
                Utf8Bytes::try_from(bytes).ok().filter(|t| !t.is_empty()).map(WsMessage::Text)
            })
            .collect();
        self.write_all(frames).await
    }

    /// Fetches from the store the messages that did not arrive live in time.
    async fn fill_gaps(&mut self, state: &mut State, delay: Duration) -> Step {
        for gap in state.cursors.due_gaps(Instant::now(), delay) {
            let wanted = (gap.before.0 - gap.after.0 - 1).clamp(1, validate::HISTORY_LIMIT_MAX.into()) as u32;
            let query = HistoryQuery::Range { after: Some(gap.after), before: Some(gap.before) };
            let read = self.app.store.messages(gap.channel, query, wanted, state.user).await;
            let Some(mut page) = filled(read, state, gap.channel)? else { continue };
            self.app.media.sign_all(&mut page.messages);
            let filled_to = page.messages.last().map_or(gap.after, |m| m.message_id);
            self.app.metrics.messages_delivered.inc_by(page.messages.len() as u64);
            let frames: Vec<WsMessage> = page.messages.into_iter().map(message_frame).collect();
            self.write_all(frames).await?;
            // Ids have no holes: anything still missing below `before` was
            // fetched above, or the page was full and the rest follows.
            let up_to = if page.has_more { filled_to } else { MessageId(gap.before.0 - 1) };
            state.cursors.advance(gap.channel, up_to, &mut self.outgoing);
        }
        // Changes a beacon named that never arrived live (a page at a time;
        // what is left stays due).
        for (channel, after) in state.cursors.due_change_gaps(Instant::now(), delay) {
            let read = self.app.store.changes(channel, after, validate::HISTORY_LIMIT_MAX, state.user).await;
            let Some(mut page) = filled(read, state, channel)? else { continue };
            self.app.media.sign_all(&mut page.messages);
            for message in page.messages {
                let id = (message.message_id, message.change_seq);
                let delivery = Arc::new(Delivery::new(Event::MessageUpdated { message, mentions: Vec::new() }));
                state.cursors.change(channel, id, delivery, &mut self.outgoing);
            }
        }
        self.flush_outgoing().await
    }
}

/// A page read to fill a gap; `None` when the user is no longer a member
/// (the removal's event is on its way or was lost: nothing more of that
/// channel reaches this connection). A store that cannot answer closes
/// the connection: the client syncs when it is back.
fn filled(
    read: Result<chinwag_store::Page, chinwag_store::StoreError>,
    state: &mut State,
    channel: ChannelId,
) -> Result<Option<chinwag_store::Page>, Closing> {
    match read {
        Ok(page) => Ok(Some(page)),
        Err(chinwag_store::StoreError::NotAMember) => {
            state.cursors.leave(channel);
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "gap fill failed; the client will sync");
            Err(Closing(Some((TRY_AGAIN_LATER, "store unavailable; reconnect and sync"))))
        }
    }
}

/// What the connection knows after `ready`.
struct State {
    user: UserId,
    device: DeviceId,
    cursors: Cursors,
}

/// A member whom a message's text mentions gets their own copy, flagged;
/// everyone else shares the one delivery (and its encoding).
fn flagged_for(user: UserId, delivery: Arc<Delivery>) -> Arc<Delivery> {
    let flag = |message: &Message| Message { mentioned: true, ..message.clone() };
    let event = match &delivery.event {
        Event::Message { message, mentions } if mentions.contains(&user) => {
            Event::Message { message: flag(message), mentions: Vec::new() }
        }
        Event::MessageUpdated { message, mentions } if mentions.contains(&user) => {
            Event::MessageUpdated { message: flag(message), mentions: Vec::new() }
        }
        _ => return delivery,
    };
    Arc::new(Delivery::new(event))
}

fn text_frame(frame: &ServerFrame) -> WsMessage {
    WsMessage::Text(Utf8Bytes::from(frame.to_json()))
}

fn message_frame(message: Message) -> WsMessage {
    text_frame(&ServerFrame::Message(message))
}

/// The wire frame of an event (empty for events that are not sent).
fn encode_event(event: &Event) -> Bytes {
    let frame = match event {
        Event::Message { message, .. } => ServerFrame::Message(message.clone()),
        Event::MessageUpdated { message, .. } => ServerFrame::MessageUpdated { message: message.clone() },
        Event::Presence { user_id, status, last_active_at } => {
            ServerFrame::Presence { user_id: *user_id, status: *status, last_active_at: *last_active_at }
        }
        Event::Read { channel_id, user_id, message_id } => {
            ServerFrame::Read { channel_id: *channel_id, user_id: *user_id, message_id: *message_id }
        }
        Event::Typing { channel_id, user_id } => ServerFrame::Typing { channel_id: *channel_id, user_id: *user_id },
        Event::Channel { channel } => ServerFrame::Channel { channel: channel.clone() },
        Event::ChannelRemoved { channel_id } => ServerFrame::ChannelRemoved { channel_id: *channel_id },
        Event::Invitation { invitation } => ServerFrame::Invitation { invitation: invitation.clone() },
        Event::DeviceRevoked { .. } | Event::ChannelHead { .. } => return Bytes::new(),
    };
    Bytes::from(frame.to_json())
}

/// Oversized and non-UTF-8 frames get their RFC 6455 close codes; any
/// other read error means the peer is gone.
fn classify_read_error(error: axum::Error) -> Closing {
    match error.into_inner().downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Closing(Some((TOO_BIG, "frame too large"))),
        Some(tungstenite::Error::Utf8(_)) => Closing(Some((INVALID_DATA, "frame is not valid UTF-8"))),
        Some(tungstenite::Error::Io(io)) if caused_by::<ReadBudgetSpent>(io) => {
            Closing(Some((TOO_BIG, "too much data before authentication")))
        }
        _ => Closing(None),
    }
}
