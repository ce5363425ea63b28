//! The task behind a `Client`: one connection at a time, reconnecting until
//! the client is closed, resending what was not acknowledged and syncing
//! what was missed.

use crate::changes::{Changes, Verdict};
use crate::order::Ordering;
use crate::{is_transient, Ack, Api, ClientConfig, ClientError, Command, Draft, Event, Target, WireStats};
use chinwag_proto::api::HistoryParams;
use chinwag_proto::validate::HISTORY_LIMIT_MAX;
use chinwag_proto::{ChannelId, ClientFrame, ErrorCode, Message, MessageId, ServerFrame, WireError};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Messages asked per `sync` frame.
const SYNC_PAGE: u32 = 200;

struct Pending {
    client_msg_id: String,
    frame: String,
    reply: oneshot::Sender<Result<Ack, ClientError>>,
    /// Written on the current connection (else waiting to be (re)sent).
    in_flight: bool,
}

/// How one connection ended.
enum End {
    /// Closed by the application or dropped: stop for good.
    Closed,
    /// Network or server trouble: reconnect.
    Lost(String),
    /// The token is refused: stop and fail everything.
    Refused(WireError),
}

pub(crate) struct Driver {
    config: ClientConfig,
    api: Api,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    pending: Vec<Pending>,
    order: Ordering,
    changes: Changes,
    /// Changes to messages not handed over yet, waiting for them.
    parked: Vec<Message>,
    /// When sends refused as transient may be tried again.
    retry_at: Option<Instant>,
    stats: Arc<WireStats>,
}

/// Small socket buffers: a client may hold thousands of connections
/// (the benchmark does), and frames larger than a buffer still work.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(8 * 1024)
}

impl Driver {
    pub fn new(
        config: ClientConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        stats: Arc<WireStats>,
    ) -> Self {
        let order = Ordering::with_cursors(&config.cursors);
        let changes = Changes::with_cursors(&config.change_cursors);
        let api = Api::new(&config.base_url);
        Driver {
            config,
            api,
            commands,
            events,
            pending: Vec::new(),
            order,
            changes,
            parked: Vec::new(),
            retry_at: None,
            stats,
        }
    }

    pub async fn run(mut self, first: oneshot::Sender<Result<(), ClientError>>) {
        let mut first = Some(first);
        let mut attempt = 0;
        loop {
            let (end, was_ready) = self.connection(&mut first).await;
            match end {
                End::Closed => break,
                End::Refused(e) => {
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(ClientError::Server(e)));
                    }
                    break;
                }
                End::Lost(reason) => {
                    if first.is_some() && attempt >= 3 {
                        if let Some(first) = first.take() {
                            let _ = first.send(Err(ClientError::WebSocket(reason)));
                        }
                        break;
                    }
                    self.stats.reconnects.fetch_add(1, Relaxed);
                    let _ = self.events.send(Event::Disconnected { reason }).await;
                }
            }
            attempt = if was_ready { 0 } else { attempt + 1 };
            let pause = self.config.backoff.delay(attempt);
            if !self.wait_offline(pause).await {
                break;
            }
        }
        for p in self.pending.drain(..) {
            let _ = p.reply.send(Err(ClientError::Closed));
        }
    }

    /// Sleeps between connections while still taking commands.
    async fn wait_offline(&mut self, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                command = self.commands.recv() => match command {
                    Some(Command::Send { client_msg_id, target, draft, reply }) => self.queue(client_msg_id, target, draft, reply),
                    Some(Command::Frame(_)) => {} // read/typing while offline: dropped
                    Some(Command::Close(done)) => {
                        let _ = done.send(());
                        return false;
                    }
                    None => return false,
                },
            }
        }
    }

    fn queue(
        &mut self,
        client_msg_id: String,
        target: Target,
        draft: Draft,
        reply: oneshot::Sender<Result<Ack, ClientError>>,
    ) {
        let (channel_id, to_user_id) = match target {
            Target::Channel(c) => (Some(c), None),
            Target::User(u) => (None, Some(u)),
        };
        let frame = encode(&ClientFrame::Send {
            client_msg_id: client_msg_id.clone(),
            channel_id,
            to_user_id,
            text: draft.text,
            attachments: draft.attachments,
            reply_to: draft.reply_to,
        });
        self.pending.push(Pending { client_msg_id, frame, reply, in_flight: false });
    }

    /// Connects to the least-loaded live gateway (with discovery), moving
    /// on to the next one listed when one does not answer (it may have died
    /// since it last renewed its lease); else to the API's own host.
    async fn open(&self) -> Result<Socket, String> {
        if !self.config.use_discovery {
            return self.open_url(&self.api.ws_url()).await;
        }
        let mut failure = String::from("no gateway");
        for url in self.api.discover().await.map_err(|e| e.to_string())? {
            match self.open_url(&url).await {
                Ok(socket) => return Ok(socket),
                Err(e) => failure = format!("{url}: {e}"),
            }
        }
        Err(failure)
    }

    async fn open_url(&self, url: &str) -> Result<Socket, String> {
        let Some(bind) = self.config.bind_ip else {
            // `true`: no Nagle delay on small frames.
            let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(ws);
        };
        let authority = url.split("//").nth(1).and_then(|rest| rest.split('/').next()).ok_or("bad ws url")?;
        let addr = tokio::net::lookup_host(authority).await.map_err(|e| e.to_string())?.next().ok_or("no address")?;
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
            .map_err(|e| e.to_string())?;
        socket.bind((bind, 0).into()).map_err(|e| e.to_string())?;
        let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), Some(ws_config()))
                .await
                .map_err(|e| e.to_string())?;
        Ok(ws)
    }

    /// One connection's life. Returns how it ended and whether it got ready.
    async fn connection(&mut self, first: &mut Option<oneshot::Sender<Result<(), ClientError>>>) -> (End, bool) {
        let timeout = self.config.connect_timeout;
        let ready = tokio::time::timeout(timeout, async {
            let mut ws = self.open().await?;
            let auth = encode(&ClientFrame::Auth { token: self.config.token.clone() });
            ws.send(Ws::text(auth)).await.map_err(|e| e.to_string())?;
            loop {
                match ws.next().await {
                    Some(Ok(Ws::Text(t))) => return Ok((ws, decode(&t)?)),
                    Some(Ok(Ws::Close(f))) => return Err(format!("closed during auth: {f:?}")),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("closed during auth".into()),
                }
            }
        })
        .await;
        let (mut ws, frame) = match ready {
            Err(_) => return (End::Lost("connect timed out".into()), false),
            Ok(Err(reason)) => return (End::Lost(reason), false),
            Ok(Ok(pair)) => pair,
        };
        let heartbeat = match frame {
            ServerFrame::Ready { user, device_id, heartbeat_interval_ms, channels } => {
                let mut changes_behind = Vec::new();
                for c in &channels {
                    self.order.join(c.id, c.last_message_id);
                    changes_behind.extend(self.changes.join(c.id, c.last_change_seq).map(|after| (c.id, after)));
                }
                self.order.reset_syncs();
                let behind: Vec<ChannelId> = channels
                    .iter()
                    .filter(|c| self.order.delivered(c.id).is_some_and(|d| d < c.last_message_id))
                    .map(|c| c.id)
                    .collect();
                if self.events.send(Event::Ready { user, device_id, channels }).await.is_err() {
                    return (End::Closed, true);
                }
                if let Some(first) = first.take() {
                    let _ = first.send(Ok(()));
                }
                for channel in behind {
                    if let Some(after) = self.order.start_sync(channel) {
                        if let Err(e) = send_sync(&mut ws, channel, after).await {
                            return (End::Lost(e), true);
                        }
                    }
                }
                for (channel, after) in changes_behind {
                    if let Err(end) = self.catch_up_changes(channel, after).await {
                        return (end, true);
                    }
                }
                Duration::from_millis(heartbeat_interval_ms.max(100))
            }
            ServerFrame::Error { code: ErrorCode::Unauthorized, message, .. } => {
                return (End::Refused(WireError::new(ErrorCode::Unauthorized, message)), false)
            }
            other => return (End::Lost(format!("expected ready, got {other:?}")), false),
        };
        for p in &mut self.pending {
            p.in_flight = false;
        }
        let end = self.serve(&mut ws, heartbeat).await;
        if matches!(end, End::Closed) {
            let _ = ws.close(None).await;
        }
        (end, true)
    }

    /// Writes every pending send not yet on this connection, in order.
    async fn flush_pending(&mut self, ws: &mut Socket) -> Result<(), String> {
        if self.retry_at.is_some_and(|at| at > Instant::now()) {
            return Ok(());
        }
        self.retry_at = None;
        for p in self.pending.iter_mut().filter(|p| !p.in_flight) {
            ws.feed(Ws::text(p.frame.clone())).await.map_err(|e| e.to_string())?;
            p.in_flight = true;
        }
        ws.flush().await.map_err(|e| e.to_string())
    }

    async fn serve(&mut self, ws: &mut Socket, heartbeat: Duration) -> End {
        let dead_after = heartbeat * 3;
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval(heartbeat);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Err(e) = self.flush_pending(ws).await {
                return End::Lost(e);
            }
            let retry = self.retry_at;
            tokio::select! {
                next = ws.next() => {
                    last_heard = Instant::now();
                    let text = match next {
                        Some(Ok(Ws::Text(t))) => t,
                        Some(Ok(Ws::Close(frame))) => return End::Lost(format!("server closed: {frame:?}")),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return End::Lost(e.to_string()),
                        None => return End::Lost("connection ended".into()),
                    };
                    let frame = match decode(&text) {
                        Ok(frame) => frame,
                        Err(e) => return End::Lost(e),
                    };
                    if let Err(end) = self.on_frame(ws, frame).await {
                        return end;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(Command::Send { client_msg_id, target, draft, reply }) => self.queue(client_msg_id, target, draft, reply),
                    Some(Command::Frame(frame)) => {
                        if let Err(e) = ws.send(Ws::text(encode(&frame))).await {
                            return End::Lost(e.to_string());
                        }
                    }
                    Some(Command::Close(done)) => {
                        let _ = done.send(());
                        return End::Closed;
                    }
                    None => return End::Closed,
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > dead_after {
                        return End::Lost("server silent".into());
                    }
                    if let Err(e) = ws.send(Ws::text(r#"{"type":"ping"}"#)).await {
                        return End::Lost(e.to_string());
                    }
                }
                _ = async { tokio::time::sleep_until(retry.unwrap_or_else(Instant::now)).await }, if retry.is_some() => {}
            }
        }
    }

    async fn on_frame(&mut self, ws: &mut Socket, frame: ServerFrame) -> Result<(), End> {
        let emit = |events: &mpsc::Sender<Event>, event| {
            let events = events.clone();
            async move { events.send(event).await.map_err(|_| End::Closed) }
        };
        match frame {
            ServerFrame::Ack { client_msg_id, channel_id, message_id, created_at } => {
                if let Some(i) = self.pending.iter().position(|p| p.client_msg_id == client_msg_id) {
                    let p = self.pending.remove(i);
                    let _ = p.reply.send(Ok(Ack { client_msg_id, channel_id, message_id, created_at }));
                }
            }
            ServerFrame::Error { code, message, reference, retry_after_ms } => {
                let cmid = reference.as_ref().and_then(Value::as_str);
                if let Some(i) = cmid.and_then(|c| self.pending.iter().position(|p| p.client_msg_id == c)) {
                    if is_transient(code) {
                        self.pending[i].in_flight = false;
                        let wait = Duration::from_millis(retry_after_ms.unwrap_or(500));
                        self.retry_at = Some(Instant::now() + wait);
                    } else {
                        let p = self.pending.remove(i);
                        let _ = p.reply.send(Err(ClientError::Server(WireError { code, message, retry_after_ms })));
                    }
                } else {
                    tracing::debug!(?code, %message, "server error frame");
                }
            }
            ServerFrame::Message(message) => {
                match self.order.delivered(message.channel_id) {
                    Some(d) if message.message_id <= d => self.stats.repeats_dropped.fetch_add(1, Relaxed),
                    Some(d) if message.message_id > d.next() => self.stats.early_held.fetch_add(1, Relaxed),
                    _ => 0,
                };
                for m in self.order.admit(message) {
                    emit(&self.events, Event::Message(m)).await?;
                }
                self.release_parked().await?;
                for (channel, after) in self.order.gaps_to_sync() {
                    self.stats.gap_syncs.fetch_add(1, Relaxed);
                    send_sync(ws, channel, after).await.map_err(End::Lost)?;
                }
            }
            ServerFrame::MessageUpdated { message } => match self.changes.admit(&message) {
                Verdict::Next => self.hand_over_change(message).await?,
                Verdict::Repeat => {
                    self.stats.repeats_dropped.fetch_add(1, Relaxed);
                }
                Verdict::Missed(after) => self.catch_up_changes(message.channel_id, after).await?,
            },
            ServerFrame::Synced { channel_id, has_more, .. } => {
                self.release_parked().await?;
                if let Some(after) = self.order.synced(channel_id, has_more) {
                    send_sync(ws, channel_id, after).await.map_err(End::Lost)?;
                }
                for (channel, after) in self.order.gaps_to_sync() {
                    send_sync(ws, channel, after).await.map_err(End::Lost)?;
                }
            }
            ServerFrame::Channel { channel } => {
                self.order.join(channel.id, channel.last_message_id);
                if let Some(after) = self.changes.join(channel.id, channel.last_change_seq) {
                    self.catch_up_changes(channel.id, after).await?;
                }
                emit(&self.events, Event::Server(ServerFrame::Channel { channel })).await?;
            }
            ServerFrame::ChannelRemoved { channel_id } => {
                self.order.leave(channel_id);
                self.changes.leave(channel_id);
                self.parked.retain(|m| m.channel_id != channel_id);
                emit(&self.events, Event::Server(ServerFrame::ChannelRemoved { channel_id })).await?;
            }
            ServerFrame::Pong | ServerFrame::Ready { .. } => {}
            other => emit(&self.events, Event::Server(other)).await?,
        }
        Ok(())
    }
}

impl Driver {
    /// Reads the changes of a channel after `after` from the store (over
    /// HTTP) and hands over those not handed over yet. A failure ends the
    /// connection: the next `ready` catches up again from the same point.
    async fn catch_up_changes(&mut self, channel: ChannelId, mut after: u64) -> Result<(), End> {
        self.stats.gap_syncs.fetch_add(1, Relaxed);
        loop {
            let params = HistoryParams {
                changed_after: Some(after),
                limit: Some(HISTORY_LIMIT_MAX),
                ..HistoryParams::default()
            };
            let page = match self.api.history(&self.config.token, channel, &params).await {
                Ok(page) => page,
                // No longer a member: its `channel_removed` is on its way.
                Err(ClientError::Server(e)) if e.code == ErrorCode::NotFound => return Ok(()),
                Err(e) => return Err(End::Lost(format!("catching up changes: {e}"))),
            };
            after = page.messages.last().map_or(after, |m| m.change_seq);
            for message in self.changes.caught_up(channel, page.messages) {
                self.hand_over_change(message).await?;
            }
            if !page.has_more {
                return Ok(());
            }
        }
    }

    /// Hands a change over, or parks it until its message has been.
    async fn hand_over_change(&mut self, message: Message) -> Result<(), End> {
        if self.order.delivered(message.channel_id).is_some_and(|d| message.message_id > d) {
            self.parked.push(message);
            return Ok(());
        }
        self.events.send(Event::MessageUpdated(message)).await.map_err(|_| End::Closed)
    }

    /// Hands over parked changes whose messages have been handed over.
    async fn release_parked(&mut self) -> Result<(), End> {
        if self.parked.is_empty() {
            return Ok(());
        }
        let (ready, waiting): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|m| self.order.delivered(m.channel_id).is_none_or(|d| m.message_id <= d));
        self.parked = waiting;
        for message in ready {
            self.events.send(Event::MessageUpdated(message)).await.map_err(|_| End::Closed)?;
        }
        Ok(())
    }
}

async fn send_sync(ws: &mut Socket, channel: ChannelId, after: MessageId) -> Result<(), String> {
    let frame = ClientFrame::Sync { channel_id: channel, after, limit: Some(SYNC_PAGE) };
    ws.send(Ws::text(encode(&frame))).await.map_err(|e| e.to_string())
}

/// A client frame as text (serializing plain data cannot fail).
fn encode(frame: &ClientFrame) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

fn decode(text: &str) -> Result<ServerFrame, String> {
    serde_json::from_str(text).map_err(|e| format!("undecodable frame: {e}"))
}
