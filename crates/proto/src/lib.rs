//! The chinwag wire contract as plain data: ids, objects, frames, error codes
//! and validation rules. No sockets and no storage live here, so every other
//! crate (server, clients, tests, the benchmark) shares one definition of what
//! travels on the wire.

pub mod api;
pub mod error;
pub mod frames;
pub mod ids;
pub mod mentions;
pub mod objects;
pub mod pages;
pub mod validate;

pub use error::{ErrorBody, ErrorCode, WireError};
pub use frames::{ClientFrame, FrameError, PresenceStatus, ServerFrame};
pub use ids::{ChannelId, DeviceId, MessageId, UserId};
pub use objects::{Attachment, Channel, ChannelKind, Invitation, Message, Reaction, Upload, User};

/// Milliseconds since the Unix epoch, the one time unit of the protocol.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
