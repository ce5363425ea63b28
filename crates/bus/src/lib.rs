//! The `Bus` seam: events between roles, addressed by user. A gateway
//! subscribes one bounded queue per connection under its user; a publisher
//! addresses users and never learns where their connections live. The
//! in-process [`LocalBus`] delivers straight into the [`Registry`]; a cluster
//! bus routes between nodes and delivers into each node's registry, so the
//! gateway code is the same in both.
//!
//! Besides user-addressed events, the bus carries [`NodeEvent`]s to every
//! node (cache invalidations), and `subscribe` is async and fallible: it
//! returns only once events published after it will be delivered, which a
//! network bus must wait for.
//!
//! The crate also holds the other seams a cluster shares between nodes:
//! [`Presence`] (who is online), [`Discovery`] (live gateways) and the
//! [`RateLimiter`] of the limits that protect accounts.
//!
//! This crate must not know about storage, HTTP or WebSocket framing.

/// The behaviour every backend must have, for `bus_contract_tests!`.
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
mod discovery;
/// The cluster backends: NATS core pub/sub and JetStream KV.
pub mod nats;
mod presence;
mod ratelimit;
mod registry;

pub use discovery::{Discovery, GatewayInfo, LocalDiscovery};
pub use presence::{LocalPresence, Presence, PresenceChange};
pub use ratelimit::{Limit, LocalRateLimiter, RateLimiter};
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
    /// A stored message was edited, deleted or reacted to: the whole
    /// message as it is now; `mentions` are the members its text mentions.
    MessageUpdated { message: Message, mentions: Vec<UserId> },
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
    /// The channel's newest message is `last_message_id` (repeated for a
    /// while after each message or change), so a connection that missed
    /// the last ones of a burst notices and fills them from the store. Never
    /// sent to clients.
    ChannelHead {
        channel_id: ChannelId,
        last_message_id: MessageId,
        /// The channel's newest change (edit, delete, reaction), so a lost
        /// `MessageUpdated` is noticed the same way.
        #[serde(default)]
        last_change_seq: u64,
    },
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

/// Something every node must hear of (not addressed to users).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeEvent {
    /// A channel's members changed: cached member lists are stale.
    MembersChanged { channel_id: ChannelId },
}

/// The sending half of a node's bounded queue of [`NodeEvent`]s.
pub type NodeEventSender = tokio::sync::mpsc::Sender<NodeEvent>;

/// Why the bus could not do something; callers answer `unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
}

/// Moves events to the connections of users, wherever they are connected.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Queues `event` for every connection of each user in `users`. Never
    /// blocks: a connection whose queue is full is dropped from the bus (its
    /// queue closes, and the gateway closes the socket with a reason).
    /// Events of one publisher reach each queue in the order published.
    fn publish(&self, users: &[UserId], event: Event);

    /// Routes `user`'s events into `queue` until the returned handle drops.
    /// Returns only once every event published after it will be delivered.
    async fn subscribe(&self, user: UserId, queue: EventSender) -> Result<Subscription, BusError>;

    /// Delivers `event` to every node's broadcast queues, this one's too.
    fn broadcast(&self, event: NodeEvent);

    /// Routes every node's broadcasts into `queue` until the handle drops
    /// (a full queue is closed, like a connection's).
    async fn subscribe_broadcasts(&self, queue: NodeEventSender) -> Result<Subscription, BusError>;

    /// This node's connections: for this node's load and per-node caps,
    /// never cluster-wide answers (those are `Presence`'s).
    fn local_registry(&self) -> &Arc<Registry>;

    /// Whether events published now reach other nodes (a network bus that
    /// lost its connection says no).
    fn is_connected(&self) -> bool {
        true
    }

    /// Whether events can be lost on the way (a network bus is at most
    /// once): then stored messages are followed by channel head beacons.
    fn may_lose_events(&self) -> bool {
        false
    }

    /// Events sent to other nodes so far, one per node per event: what
    /// crossed the network (0 for a bus in one process).
    fn routed_events(&self) -> u64 {
        0
    }
}

/// The single-process bus: publishing is delivering.
#[derive(Default)]
pub struct LocalBus {
    registry: Arc<Registry>,
    broadcasts: Arc<registry::Broadcasts>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl Bus for LocalBus {
    fn publish(&self, users: &[UserId], event: Event) {
        self.registry.deliver(users, Arc::new(Delivery::new(event)));
    }

    async fn subscribe(&self, user: UserId, queue: EventSender) -> Result<Subscription, BusError> {
        Ok(self.registry.add(user, queue))
    }

    fn broadcast(&self, event: NodeEvent) {
        self.broadcasts.deliver(&event);
    }

    async fn subscribe_broadcasts(&self, queue: NodeEventSender) -> Result<Subscription, BusError> {
        Ok(self.broadcasts.add(queue))
    }

    fn local_registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

#[cfg(test)]
mod tests {
    async fn local() -> ((), super::LocalBus) {
        ((), super::LocalBus::new())
    }

    async fn local_presence() -> ((), super::LocalPresence) {
        ((), super::LocalPresence::new(crate::contract::GRACE))
    }

    async fn local_discovery() -> ((), super::LocalDiscovery) {
        ((), super::LocalDiscovery::new(crate::contract::DISCOVERY_TTL))
    }

    crate::bus_contract_tests!(local);
    crate::presence_contract_tests!(local_presence);
    crate::discovery_contract_tests!(local_discovery);
}
