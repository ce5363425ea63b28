//! Per-connection delivery order. Live messages may reach a connection out of
//! order (senders finish their commits in parallel; in a cluster they travel
//! different routes), and some may never arrive live. This guard releases a
//! channel's messages strictly in `message_id` order, drops repeats, and
//! reports gaps that have waited too long so the connection fills them from
//! the store, which is the source of truth. A change to a message
//! (`message_updated`) never overtakes the message itself: it waits here
//! until the message has been sent. Changes have a gap check of their own:
//! a beacon naming a newer `change_seq` than any seen makes the connection
//! read the missing changes from the store.

use chinwag_bus::Delivery;
use chinwag_proto::{ChannelId, MessageId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Held messages per channel beyond which a gap is filled at once.
const MAX_HELD: usize = 256;

#[derive(Default)]
struct Cursor {
    /// Every message up to here has been sent on this connection (or was
    /// before the connection's snapshot, which the client fetches itself).
    delivered: MessageId,
    held: BTreeMap<MessageId, Arc<Delivery>>,
    /// Changes to messages not sent yet, sent right after them.
    changes: BTreeMap<MessageId, Vec<Arc<Delivery>>>,
    /// The newest `change_seq` sent or waiting here (or in the client's
    /// snapshot).
    changes_seen: u64,
    /// The newest `change_seq` a beacon named, while not seen, and since when.
    change_head: Option<(u64, Instant)>,
    /// The newest id a channel head beacon named, while not delivered.
    head: Option<MessageId>,
    gap_since: Option<Instant>,
}

/// A missing run of ids to fetch: `after < id < before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub channel: ChannelId,
    pub after: MessageId,
    pub before: MessageId,
}

/// The channels a connection may see, and how far each was delivered.
#[derive(Default)]
pub struct Cursors {
    channels: HashMap<ChannelId, Cursor>,
}

impl Cursors {
    /// Starts following a channel whose messages up to `last` and changes
    /// up to `last_change` the client already knows of. Following it
    /// already changes nothing.
    pub fn join(&mut self, channel: ChannelId, last: MessageId, last_change: u64) {
        self.channels.entry(channel).or_insert_with(|| Cursor {
            delivered: last,
            changes_seen: last_change,
            ..Cursor::default()
        });
    }

    /// Stops following a channel (left or removed): nothing more of it is sent.
    pub fn leave(&mut self, channel: ChannelId) {
        self.channels.remove(&channel);
    }

    pub fn contains(&self, channel: ChannelId) -> bool {
        self.channels.contains_key(&channel)
    }

    /// Takes a live message; pushes onto `out` whatever may now be sent.
    pub fn admit(
        &mut self,
        channel: ChannelId,
        id: MessageId,
        delivery: Arc<Delivery>,
        now: Instant,
        out: &mut Vec<Arc<Delivery>>,
    ) {
        let Some(cursor) = self.channels.get_mut(&channel) else { return };
        if id <= cursor.delivered {
            return;
        }
        if id == cursor.delivered.next() {
            Self::deliver(cursor, id, delivery, out);
            Self::release(cursor, out);
        } else {
            cursor.held.insert(id, delivery);
            cursor.gap_since.get_or_insert(now);
        }
    }

    /// Takes a change to message `id`: sent now if the message was sent,
    /// else right after it.
    pub fn change(
        &mut self,
        channel: ChannelId,
        (id, change_seq): (MessageId, u64),
        delivery: Arc<Delivery>,
        out: &mut Vec<Arc<Delivery>>,
    ) {
        let Some(cursor) = self.channels.get_mut(&channel) else { return };
        cursor.changes_seen = cursor.changes_seen.max(change_seq);
        if cursor.change_head.is_some_and(|(head, _)| head <= cursor.changes_seen) {
            cursor.change_head = None;
        }
        if id <= cursor.delivered || cursor.changes.len() >= MAX_HELD {
            out.push(delivery);
        } else {
            cursor.changes.entry(id).or_default().push(delivery);
        }
    }

    /// Learns that the channel's newest change is `last_change`: if it
    /// never arrived live, the changes after the newest seen are missing.
    pub fn change_head(&mut self, channel: ChannelId, last_change: u64, now: Instant) {
        let Some(cursor) = self.channels.get_mut(&channel) else { return };
        if last_change > cursor.changes_seen && cursor.change_head.is_none_or(|(head, _)| last_change > head) {
            let since = cursor.change_head.map_or(now, |(_, since)| since);
            cursor.change_head = Some((last_change, since));
        }
    }

    /// Channels whose missing changes waited `delay` by `now`, with the
    /// newest `change_seq` seen (read the changes after it).
    pub fn due_change_gaps(&self, now: Instant, delay: Duration) -> Vec<(ChannelId, u64)> {
        self.channels
            .iter()
            .filter(|(_, c)| c.change_head.is_some_and(|(_, since)| since + delay <= now))
            .map(|(&channel, c)| (channel, c.changes_seen))
            .collect()
    }

    /// Learns that the channel's newest message is `last`: if it never
    /// arrived live (the tail of a burst was lost), that is a gap too.
    pub fn head(&mut self, channel: ChannelId, last: MessageId, now: Instant) {
        let Some(cursor) = self.channels.get_mut(&channel) else { return };
        if last > cursor.delivered && cursor.head.is_none_or(|head| last > head) {
            cursor.head = Some(last);
            cursor.gap_since.get_or_insert(now);
        }
    }

    /// Records that everything up to `up_to` was sent (by a sync or a gap
    /// fill) and releases held messages that follow on.
    pub fn advance(&mut self, channel: ChannelId, up_to: MessageId, out: &mut Vec<Arc<Delivery>>) {
        let Some(cursor) = self.channels.get_mut(&channel) else { return };
        if up_to > cursor.delivered {
            cursor.delivered = up_to;
        }
        // The store's copies were current when read; a change that waited
        // may be older or newer, and clients keep the higher `change_seq`.
        while let Some(entry) = cursor.changes.first_entry().filter(|e| *e.key() <= cursor.delivered) {
            out.extend(entry.remove());
        }
        Self::release(cursor, out);
    }

    /// Sends message `id` (the next in order) and the changes that waited for it.
    fn deliver(cursor: &mut Cursor, id: MessageId, delivery: Arc<Delivery>, out: &mut Vec<Arc<Delivery>>) {
        cursor.delivered = id;
        out.push(delivery);
        out.extend(cursor.changes.remove(&id).unwrap_or_default());
    }

    fn release(cursor: &mut Cursor, out: &mut Vec<Arc<Delivery>>) {
        while let Some(entry) = cursor.held.first_entry() {
            let id = *entry.key();
            if id <= cursor.delivered {
                entry.remove();
            } else if id == cursor.delivered.next() {
                let delivery = entry.remove();
                Self::deliver(cursor, id, delivery, out);
            } else {
                break;
            }
        }
        if cursor.head.is_some_and(|head| head <= cursor.delivered) {
            cursor.head = None;
        }
        if cursor.held.is_empty() && cursor.head.is_none() {
            cursor.gap_since = None;
        }
    }

    /// When the oldest open gap becomes due for filling.
    pub fn next_gap_due(&self, delay: Duration) -> Option<Instant> {
        let since = |c: &Cursor| [c.gap_since, c.change_head.map(|(_, since)| since)].into_iter().flatten().min();
        self.channels.values().filter_map(since).min().map(|since| since + delay)
    }

    /// Gaps that waited `delay` (or hold too many messages) by `now`.
    pub fn due_gaps(&self, now: Instant, delay: Duration) -> Vec<Gap> {
        self.channels
            .iter()
            .filter(|(_, c)| c.gap_since.is_some_and(|since| since + delay <= now) || c.held.len() > MAX_HELD)
            .filter_map(|(&channel, c)| {
                let before = match c.held.first_key_value() {
                    Some((&first, _)) => first,
                    None => c.head?.next(),
                };
                Some(Gap { channel, after: c.delivered, before })
            })
            .collect()
    }

    /// Whether some channel holds so many messages that waiting is pointless.
    pub fn overfull(&self) -> bool {
        self.channels.values().any(|c| c.held.len() > MAX_HELD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chinwag_bus::Event;
    use chinwag_proto::UserId;

    fn d(id: i64) -> Arc<Delivery> {
        Arc::new(Delivery::new(Event::Typing { channel_id: ChannelId(id), user_id: UserId(0) }))
    }

    fn ids(out: &[Arc<Delivery>]) -> Vec<i64> {
        out.iter()
            .map(|d| match d.event {
                Event::Typing { channel_id, .. } => channel_id.0,
                _ => unreachable!(),
            })
            .collect()
    }

    const C: ChannelId = ChannelId(1);

    #[test]
    fn releases_in_order_and_drops_repeats() {
        let mut cursors = Cursors::default();
        cursors.join(C, MessageId(2), 0);
        let now = Instant::now();
        let mut out = Vec::new();
        for id in [2, 4, 5, 3, 3, 6, 1] {
            cursors.admit(C, MessageId(id), d(id), now, &mut out);
        }
        assert_eq!(ids(&out), vec![3, 4, 5, 6]);
        assert_eq!(cursors.next_gap_due(Duration::ZERO), None);
    }

    #[test]
    fn reports_due_gaps_and_advances_past_them() {
        let mut cursors = Cursors::default();
        cursors.join(C, MessageId(0), 0);
        let start = Instant::now();
        let mut out = Vec::new();
        cursors.admit(C, MessageId(3), d(3), start, &mut out);
        cursors.admit(C, MessageId(4), d(4), start, &mut out);
        assert!(out.is_empty());
        let delay = Duration::from_millis(100);
        assert_eq!(cursors.next_gap_due(delay), Some(start + delay));
        assert!(cursors.due_gaps(start, delay).is_empty());
        let gaps = cursors.due_gaps(start + delay, delay);
        assert_eq!(gaps, vec![Gap { channel: C, after: MessageId(0), before: MessageId(3) }]);
        cursors.advance(C, MessageId(2), &mut out);
        assert_eq!(ids(&out), vec![3, 4]);
        assert!(cursors.due_gaps(start + delay, delay).is_empty());
    }

    #[test]
    fn a_lost_tail_is_a_gap_once_a_beacon_names_it() {
        let mut cursors = Cursors::default();
        cursors.join(C, MessageId(1), 0);
        let start = Instant::now();
        let mut out = Vec::new();
        cursors.head(C, MessageId(1), start);
        assert_eq!(cursors.next_gap_due(Duration::ZERO), None, "nothing missing");
        cursors.head(C, MessageId(4), start);
        let delay = Duration::from_millis(100);
        let gaps = cursors.due_gaps(start + delay, delay);
        assert_eq!(gaps, vec![Gap { channel: C, after: MessageId(1), before: MessageId(5) }]);
        cursors.advance(C, MessageId(4), &mut out);
        assert_eq!(cursors.next_gap_due(delay), None, "filled");
    }

    #[test]
    fn a_change_never_overtakes_its_message() {
        let mut cursors = Cursors::default();
        cursors.join(C, MessageId(1), 0);
        let now = Instant::now();
        let mut out = Vec::new();
        cursors.change(C, (MessageId(1), 1), d(101), &mut out);
        assert_eq!(ids(&out), vec![101], "its message was sent: at once");
        out.clear();
        cursors.admit(C, MessageId(3), d(3), now, &mut out);
        cursors.change(C, (MessageId(3), 2), d(103), &mut out);
        cursors.change(C, (MessageId(2), 3), d(102), &mut out);
        assert!(out.is_empty(), "both wait for their messages");
        cursors.admit(C, MessageId(2), d(2), now, &mut out);
        assert_eq!(ids(&out), vec![2, 102, 3, 103]);
        out.clear();
        cursors.change(C, (MessageId(9), 4), d(109), &mut out);
        cursors.advance(C, MessageId(9), &mut out);
        assert_eq!(ids(&out), vec![109], "a store fill sends what waited");
    }

    #[test]
    fn a_lost_change_is_a_gap_once_a_beacon_names_it() {
        let mut cursors = Cursors::default();
        cursors.join(C, MessageId(3), 2);
        let start = Instant::now();
        let delay = Duration::from_millis(100);
        let mut out = Vec::new();
        cursors.change_head(C, 2, start);
        assert_eq!(cursors.next_gap_due(delay), None, "nothing missing");
        cursors.change_head(C, 5, start);
        assert_eq!(cursors.next_gap_due(delay), Some(start + delay));
        assert!(cursors.due_change_gaps(start, delay).is_empty(), "not yet");
        assert_eq!(cursors.due_change_gaps(start + delay, delay), vec![(C, 2)]);
        cursors.change(C, (MessageId(1), 5), d(1), &mut out);
        assert_eq!(cursors.next_gap_due(delay), None, "filled");
    }

    #[test]
    fn ignores_channels_not_followed() {
        let mut cursors = Cursors::default();
        let mut out = Vec::new();
        cursors.admit(C, MessageId(1), d(1), Instant::now(), &mut out);
        assert!(out.is_empty());
        cursors.join(C, MessageId(5), 0);
        cursors.join(C, MessageId(0), 0);
        cursors.admit(C, MessageId(6), d(6), Instant::now(), &mut out);
        assert_eq!(ids(&out), vec![6]);
        cursors.leave(C);
        cursors.admit(C, MessageId(7), d(7), Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
    }
}
