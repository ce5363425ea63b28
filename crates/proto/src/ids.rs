//! Id newtypes, so a user id can never be passed where a channel id belongs.
//! All ids travel as plain JSON integers below 2^53.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A registered account.
    UserId
);
id_type!(
    /// A direct or group conversation.
    ChannelId
);
id_type!(
    /// A logged-in device: one token per device.
    DeviceId
);
id_type!(
    /// Position of a message in its channel: 1, 2, 3... without gaps.
    MessageId
);

impl MessageId {
    /// The id after this one in the same channel.
    pub fn next(self) -> MessageId {
        MessageId(self.0 + 1)
    }
}
