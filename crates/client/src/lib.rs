//! The chinwag client SDK: the one client implementation that the
//! benchmark, the tests and the terminal client share.
//!
//! A [`Client`] keeps one logical session alive across network failures: it
//! reconnects with exponential backoff and full jitter, resends every
//! unacknowledged message with its original `client_msg_id` (the server
//! answers resends with the original ack, so nothing is stored twice), and
//! after each reconnect fetches what it missed from its own per-channel
//! cursors. The application therefore sees every message exactly once and
//! in order, whatever the network did.
//!
//! ```no_run
//! # async fn demo() -> Result<(), chinwag_client::ClientError> {
//! use chinwag_client::{Api, Client, ClientConfig, Event, Target};
//! let api = Api::new("http://127.0.0.1:8080");
//! let session = api.login("alice", "correct horse").await?;
//! let mut client = Client::connect(ClientConfig::new("http://127.0.0.1:8080", &session.token)).await?;
//! let bob = api.user_by_name(&session.token, "bob").await?;
//! let ack = client.send(Target::User(bob.id), "hello").await?;
//! println!("stored as message {} of channel {}", ack.message_id, ack.channel_id);
//! while let Some(event) = client.next_event().await {
//!     if let Event::Message(m) = event { println!("{}: {}", m.sender_id, m.text) }
//! }
//! # Ok(()) }
//! ```

mod api;
mod backoff;
mod changes;
mod driver;
mod order;

pub use api::{Api, LoginSession};
pub use backoff::Backoff;

use chinwag_proto::{
    Channel, ChannelId, ClientFrame, DeviceId, ErrorCode, Message, MessageId, ServerFrame, User, UserId, WireError,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request (bad input, not a member, ...).
    #[error("server said {0}")]
    Server(WireError),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The client was closed (or its token revoked) before the answer came.
    #[error("client closed")]
    Closed,
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// How to reach the server and how to behave.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API's base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    pub token: String,
    /// Ask `/v1/discovery` for the least-loaded gateway before each connect.
    pub use_discovery: bool,
    pub backoff: Backoff,
    /// Source address of the TCP connection (to spread many connections
    /// over 127.0.0.x when one address runs out of ports).
    pub bind_ip: Option<IpAddr>,
    /// Where the application's history ends, per channel. Channels not
    /// listed start at their newest message when first seen.
    pub cursors: HashMap<ChannelId, MessageId>,
    /// The newest change (`change_seq`) the application has applied, per
    /// channel; the client catches up from there. Channels not listed
    /// start at their newest change when first seen.
    pub change_cursors: HashMap<ChannelId, u64>,
    /// Events buffered for the application before the client stops reading.
    pub event_queue: usize,
    /// How long to wait for a connection plus `ready`.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    pub fn new(base_url: &str, token: &str) -> Self {
        ClientConfig {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            use_discovery: false,
            backoff: Backoff::default(),
            bind_ip: None,
            cursors: HashMap::new(),
            change_cursors: HashMap::new(),
            event_queue: 4096,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Channel(ChannelId),
    /// The direct channel with this user (created if needed).
    User(UserId),
}

/// What a message says: text, uploads (`Api::upload`) and the message it
/// answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    pub text: String,
    pub attachments: Vec<String>,
    pub reply_to: Option<MessageId>,
}

impl Draft {
    pub fn text(text: &str) -> Self {
        Draft { text: text.to_owned(), ..Draft::default() }
    }
}

/// The server's word that a message is durably stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub client_msg_id: String,
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub created_at: i64,
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// (Re)connected; `channels` is the server's snapshot.
    Ready { user: User, device_id: DeviceId, channels: Vec<Channel> },
    /// The next message of a channel: exactly once, in `message_id` order.
    Message(Message),
    /// A message was edited, deleted or reacted to: the whole message as
    /// it is now. Exactly once per `change_seq`, ascending per channel,
    /// never before the message itself; changes missed while away arrive
    /// after the reconnect (several changes to one message then as one).
    MessageUpdated(Message),
    /// Any other server frame: `read`, `typing`, `presence`, `channel`,
    /// `channel_removed`.
    Server(ServerFrame),
    /// The connection dropped; the client is reconnecting.
    Disconnected { reason: String },
}

pub(crate) enum Command {
    Send { client_msg_id: String, target: Target, draft: Draft, reply: oneshot::Sender<Result<Ack, ClientError>> },
    Frame(ClientFrame),
    Close(oneshot::Sender<()>),
}

/// A live session with a chinwag server: a [`ClientHandle`] to act with and
/// the stream of events.
pub struct Client {
    handle: ClientHandle,
    events: mpsc::Receiver<Event>,
}

/// The acting half of a client; cheap to clone into many tasks.
#[derive(Clone)]
pub struct ClientHandle {
    commands: mpsc::Sender<Command>,
    stats: Arc<WireStats>,
    /// The HTTP half, for changes to messages.
    api: Api,
    token: Arc<str>,
}

/// What the client had to repair on the wire (all zero against a correct
/// server on a healthy connection).
#[derive(Debug, Default)]
pub struct WireStats {
    /// Messages received again (already handed to the application).
    pub repeats_dropped: AtomicU64,
    /// Messages received before an earlier one of their channel.
    pub early_held: AtomicU64,
    /// Syncs started to fill a hole in a channel.
    pub gap_syncs: AtomicU64,
    /// Connections re-established after a loss.
    pub reconnects: AtomicU64,
}

impl Client {
    /// Connects and waits for the first `ready` (which is also the first
    /// event). A refused token fails here instead of retrying forever.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let (commands, command_rx) = mpsc::channel(1024);
        let (event_tx, events) = mpsc::channel(config.event_queue.max(16));
        let (first, first_rx) = oneshot::channel();
        let stats = Arc::new(WireStats::default());
        let (api, token) = (Api::new(&config.base_url), Arc::from(config.token.as_str()));
        tokio::spawn(driver::Driver::new(config, command_rx, event_tx, stats.clone()).run(first));
        match first_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ClientError::Closed),
        }
        // The `ready` is already queued: the application's first event.
        Ok(Client { handle: ClientHandle { commands, stats, api, token }, events })
    }

    /// A handle for sending from other tasks while this one reads events.
    pub fn handle(&self) -> ClientHandle {
        self.handle.clone()
    }

    /// The next event; `None` once the client is closed for good.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    pub async fn send(&self, target: Target, text: &str) -> Result<Ack, ClientError> {
        self.handle.send(target, text).await
    }

    pub async fn send_with_id(&self, target: Target, client_msg_id: &str, text: &str) -> Result<Ack, ClientError> {
        self.handle.send_with_id(target, client_msg_id, text).await
    }

    /// Sends uploads (`Api::upload`) with `text` (which may be empty).
    pub async fn send_files(&self, target: Target, text: &str, uploads: &[String]) -> Result<Ack, ClientError> {
        self.handle.send_files(target, &new_client_msg_id(), text, uploads).await
    }

    /// Closes the socket cleanly; unacknowledged sends fail with `Closed`.
    pub async fn close(self) {
        self.handle.close().await
    }
}

impl ClientHandle {
    /// Sends `text` with a fresh `client_msg_id`; returns once it is stored.
    pub async fn send(&self, target: Target, text: &str) -> Result<Ack, ClientError> {
        self.send_with_id(target, &new_client_msg_id(), text).await
    }

    /// Sends with a `client_msg_id` of your choosing (resending the same id
    /// never stores the message twice).
    pub async fn send_with_id(&self, target: Target, client_msg_id: &str, text: &str) -> Result<Ack, ClientError> {
        self.send_files(target, client_msg_id, text, &[]).await
    }

    /// Sends uploads (`Api::upload`) with `text` (which may be empty then)
    /// under a `client_msg_id` of your choosing.
    pub async fn send_files(
        &self,
        target: Target,
        client_msg_id: &str,
        text: &str,
        uploads: &[String],
    ) -> Result<Ack, ClientError> {
        let draft = Draft { text: text.to_owned(), attachments: uploads.to_vec(), reply_to: None };
        self.send_draft(target, client_msg_id, draft).await
    }

    /// Sends a message of any shape (a reply, files) under a
    /// `client_msg_id` of your choosing; returns once it is stored.
    pub async fn send_draft(&self, target: Target, client_msg_id: &str, draft: Draft) -> Result<Ack, ClientError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Send { client_msg_id: client_msg_id.to_owned(), target, draft, reply };
        self.commands.send(command).await.map_err(|_| ClientError::Closed)?;
        answer.await.map_err(|_| ClientError::Closed)?
    }

    /// Changes the text of one of this user's messages.
    pub async fn edit(&self, channel: ChannelId, message: MessageId, text: &str) -> Result<Message, ClientError> {
        self.api.edit_message(&self.token, channel, message, text).await
    }

    /// Deletes a message for everyone (this user's, or any in a group this
    /// user created).
    pub async fn delete(&self, channel: ChannelId, message: MessageId) -> Result<(), ClientError> {
        self.api.delete_message(&self.token, channel, message).await
    }

    /// Adds (`add`) or removes this user's reaction.
    pub async fn react(
        &self,
        channel: ChannelId,
        message: MessageId,
        emoji: &str,
        add: bool,
    ) -> Result<(), ClientError> {
        self.api.react(&self.token, channel, message, emoji, add).await
    }

    /// Moves this user's read marker forward.
    pub async fn mark_read(&self, channel: ChannelId, message_id: MessageId) -> Result<(), ClientError> {
        let frame = ClientFrame::Read { channel_id: channel, message_id };
        self.commands.send(Command::Frame(frame)).await.map_err(|_| ClientError::Closed)
    }

    /// Tells the other members this user is typing.
    pub async fn typing(&self, channel: ChannelId) -> Result<(), ClientError> {
        let frame = ClientFrame::Typing { channel_id: channel };
        self.commands.send(Command::Frame(frame)).await.map_err(|_| ClientError::Closed)
    }

    /// Counters of what the client repaired on the wire.
    pub fn stats(&self) -> &WireStats {
        &self.stats
    }

    /// Closes the socket cleanly; unacknowledged sends fail with `Closed`.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.commands.send(Command::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

/// A random 128-bit id, hex encoded (32 characters).
pub fn new_client_msg_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Errors worth retrying after a pause rather than reporting.
pub(crate) fn is_transient(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable | ErrorCode::Internal)
}
