//! Per-channel order of changes to messages (`message_updated`): each is
//! handed to the application once, in `change_seq` order. A jump means
//! some were missed (a lost event, time offline); they are read with
//! `?changed_after=`, which gives each changed message once, as it is now.

use chinwag_proto::{ChannelId, Message};
use std::collections::HashMap;

/// The newest change handed over, per channel.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    seen: HashMap<ChannelId, u64>,
}

/// What to do with a live change.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The next one: hand it over.
    Next,
    /// Handed over before, or of a channel not followed.
    Repeat,
    /// Some came between: catch up from this `change_seq`.
    Missed(u64),
}

impl Changes {
    pub fn with_cursors(cursors: &HashMap<ChannelId, u64>) -> Self {
        Changes { seen: cursors.clone() }
    }

    /// Learns a channel's newest change (from `ready` or `channel`): where
    /// to catch up from when this client is behind. A channel seen for
    /// the first time starts at its newest change.
    pub fn join(&mut self, channel: ChannelId, last: u64) -> Option<u64> {
        match self.seen.get(&channel) {
            None => {
                self.seen.insert(channel, last);
                None
            }
            Some(&seen) if seen < last => Some(seen),
            Some(_) => None,
        }
    }

    pub fn leave(&mut self, channel: ChannelId) {
        self.seen.remove(&channel);
    }

    /// Judges a live change; a `Next` one counts as handed over.
    pub fn admit(&mut self, message: &Message) -> Verdict {
        let Some(seen) = self.seen.get_mut(&message.channel_id) else { return Verdict::Repeat };
        if message.change_seq <= *seen {
            Verdict::Repeat
        } else if message.change_seq == *seen + 1 {
            *seen = message.change_seq;
            Verdict::Next
        } else {
            Verdict::Missed(*seen)
        }
    }

    /// Of a caught-up page (ascending by `change_seq`), the changes not
    /// handed over yet; counts them as handed over.
    pub fn caught_up(&mut self, channel: ChannelId, page: Vec<Message>) -> Vec<Message> {
        let seen = self.seen.entry(channel).or_default();
        let fresh: Vec<Message> = page.into_iter().filter(|m| m.change_seq > *seen).collect();
        if let Some(last) = fresh.last() {
            *seen = last.change_seq;
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chinwag_proto::MessageId;

    fn change(seq: u64, id: i64) -> Message {
        Message { channel_id: ChannelId(1), message_id: MessageId(id), change_seq: seq, ..Default::default() }
    }

    #[test]
    fn once_in_order_with_jumps_caught_up() {
        let mut changes = Changes::default();
        assert_eq!(changes.admit(&change(1, 1)), Verdict::Repeat, "channel not followed");
        assert_eq!(changes.join(ChannelId(1), 2), None, "first seen: starts at its newest");
        assert_eq!(changes.admit(&change(2, 1)), Verdict::Repeat);
        assert_eq!(changes.admit(&change(3, 1)), Verdict::Next);
        assert_eq!(changes.admit(&change(5, 2)), Verdict::Missed(3));
        let fresh = changes.caught_up(ChannelId(1), vec![change(3, 1), change(5, 2), change(6, 7)]);
        assert_eq!(fresh.iter().map(|m| m.change_seq).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(changes.admit(&change(6, 7)), Verdict::Repeat);
        assert_eq!(changes.join(ChannelId(1), 9), Some(6), "behind after a reconnect");
    }
}
