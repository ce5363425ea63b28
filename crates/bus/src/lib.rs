//! The `Bus` seam: events between roles, addressed by user. A gateway
//! subscribes one bounded queue per connection under its user; a publisher
//! addresses users and never learns where their connections live. The
//! in-process [`LocalBus`] delivers straight into the [`Registry`]; a cluster
//! bus routes between nodes and delivers into each node's registry, so the
//! gateway code is the same in both.
//!
//! This crate must not know about storage, HTTP or WebSocket framing.

mod discovery;
mod registry;

pub use discovery::{Discovery, GatewayInfo, LocalDiscovery};
pub use registry::{Registry, Subscription};

use bytes::Bytes;
use chinwag_proto::{Channel, ChannelId, DeviceId, Invitation, Message, MessageId, PresenceStatus, UserId};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

/// Something that happened, for the connections of the addressed users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A message was stored; `mentions` are the members its text mentions.
    Message { message: Message, mentions: Vec<UserId> },
    /// A member's read marker moved.
    Read { channel_id: ChannelId, user_id: UserId, message_id: MessageId },
    /// A member is typing.
    Typing { channel_id: ChannelId, user_id: UserId },
    /// The addressed user joined the channel, or it changed; `channel` is as
    /// that user sees it.
    Channel { channel: Channel },
    /// The addressed user left or was removed.
    ChannelRemoved { channel_id: ChannelId },
    /// The addressed user was invited back into a group they had left.
    Invitation { invitation: Invitation },
    /// A user came online or went offline.
    Presence { user_id: UserId, status: PresenceStatus, last_active_at: Option<i64> },
    /// A device's token was revoked: its connections must close.
    DeviceRevoked { device_id: DeviceId },
}

/// One published event shared by every queue it lands in, with its wire
/// encoding computed once for all recipients.
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    encoded: OnceLock<Bytes>,
}

impl Delivery {
    pub fn new(event: Event) -> Self {
        Delivery { event, encoded: OnceLock::new() }
    }

    /// The encoded frame, made by `encode` the first time anyone asks.
    pub fn encoded(&self, encode: impl FnOnce(&Event) -> Bytes) -> Bytes {
        self.encoded.get_or_init(|| encode(&self.event)).clone()
    }
}

/// The sending half of a connection's bounded event queue.
pub type EventSender = tokio::sync::mpsc::Sender<Arc<Delivery>>;

/// Moves events to the connections of users, wherever they are connected.
pub trait Bus: Send + Sync + 'static {
    /// Queues `event` for every connection of each user in `users`. Never
    /// blocks: a connection whose queue is full is dropped from the bus (its
    /// queue closes, and the gateway closes the socket with a reason).
    fn publish(&self, users: &[UserId], event: Event);

    /// Routes `user`'s events into `queue` until the returned handle drops.
    fn subscribe(&self, user: UserId, queue: EventSender) -> Subscription;

    /// This node's view of connections, for presence and load reports.
    fn registry(&self) -> &Arc<Registry>;
}

/// The single-process bus: publishing is delivering.
#[derive(Default)]
pub struct LocalBus {
    registry: Arc<Registry>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Bus for LocalBus {
    fn publish(&self, users: &[UserId], event: Event) {
        self.registry.deliver(users, Arc::new(Delivery::new(event)));
    }

    fn subscribe(&self, user: UserId, queue: EventSender) -> Subscription {
        self.registry.add(user, queue)
    }

    fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}
