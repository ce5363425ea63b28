//! Exactly once and in order for the application: per channel, the id up
//! to which messages were handed over, and messages that came early.

use chinwag_proto::{ChannelId, Message, MessageId};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
struct Cursor {
    delivered: MessageId,
    held: BTreeMap<MessageId, Message>,
    /// A `sync` is in flight for this channel.
    syncing: bool,
}

/// Cursors of every channel the client follows.
#[derive(Debug, Default)]
pub struct Ordering {
    channels: HashMap<ChannelId, Cursor>,
}

impl Ordering {
    pub fn with_cursors(cursors: &HashMap<ChannelId, MessageId>) -> Self {
        let channels = cursors.iter().map(|(&c, &m)| (c, Cursor { delivered: m, ..Cursor::default() })).collect();
        Ordering { channels }
    }

    /// Follows a channel first seen with `last` as its newest id.
    pub fn join(&mut self, channel: ChannelId, last: MessageId) {
        self.channels.entry(channel).or_insert_with(|| Cursor { delivered: last, ..Cursor::default() });
    }

    pub fn leave(&mut self, channel: ChannelId) {
        self.channels.remove(&channel);
    }

    pub fn delivered(&self, channel: ChannelId) -> Option<MessageId> {
        self.channels.get(&channel).map(|c| c.delivered)
    }

    /// Takes a message; returns those now due in order.
    pub fn admit(&mut self, message: Message) -> Vec<Message> {
        let Some(cursor) = self.channels.get_mut(&message.channel_id) else { return Vec::new() };
        if message.message_id <= cursor.delivered {
            return Vec::new();
        }
        cursor.held.insert(message.message_id, message);
        let mut due = Vec::new();
        while let Some(entry) = cursor.held.first_entry() {
            if *entry.key() != cursor.delivered.next() {
                break;
            }
            cursor.delivered = *entry.key();
            due.push(entry.remove());
        }
        due
    }

    /// Channels with a hole below held messages and no sync in flight;
    /// marks them syncing. Returns `(channel, after)` to sync from.
    pub fn gaps_to_sync(&mut self) -> Vec<(ChannelId, MessageId)> {
        self.channels
            .iter_mut()
            .filter(|(_, c)| !c.syncing && !c.held.is_empty())
            .map(|(&id, c)| {
                c.syncing = true;
                (id, c.delivered)
            })
            .collect()
    }

    /// Marks a sync started (e.g. after `ready` showed newer messages).
    pub fn start_sync(&mut self, channel: ChannelId) -> Option<MessageId> {
        let cursor = self.channels.get_mut(&channel)?;
        if cursor.syncing {
            return None;
        }
        cursor.syncing = true;
        Some(cursor.delivered)
    }

    /// A sync answered up to `up_to`; returns where to continue when more
    /// remains.
    pub fn synced(&mut self, channel: ChannelId, has_more: bool) -> Option<MessageId> {
        let cursor = self.channels.get_mut(&channel)?;
        if has_more {
            return Some(cursor.delivered);
        }
        cursor.syncing = false;
        None
    }

    /// Forgets in-flight syncs (the connection that carried them is gone).
    pub fn reset_syncs(&mut self) {
        for cursor in self.channels.values_mut() {
            cursor.syncing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chinwag_proto::UserId;

    fn m(id: i64) -> Message {
        Message {
            channel_id: ChannelId(1),
            message_id: MessageId(id),
            sender_id: UserId(1),
            client_msg_id: format!("c{id}"),
            text: String::new(),
            created_at: 0,
            mentioned: false,
            attachments: Vec::new(),
            ..Default::default()
        }
    }

    #[test]
    fn in_order_once_with_gaps_reported() {
        let mut o = Ordering::default();
        o.join(ChannelId(1), MessageId(0));
        assert_eq!(o.admit(m(1)).len(), 1);
        assert!(o.admit(m(1)).is_empty());
        assert!(o.admit(m(3)).is_empty());
        assert_eq!(o.gaps_to_sync(), vec![(ChannelId(1), MessageId(1))]);
        assert!(o.gaps_to_sync().is_empty(), "already syncing");
        let due: Vec<i64> = o.admit(m(2)).iter().map(|m| m.message_id.0).collect();
        assert_eq!(due, vec![2, 3]);
        assert_eq!(o.synced(ChannelId(1), false), None);
        assert_eq!(o.delivered(ChannelId(1)), Some(MessageId(3)));
    }
}
