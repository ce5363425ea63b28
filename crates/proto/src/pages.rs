//! The byte budget of a page of messages (`validate::PAGE_MAX_BYTES`):
//! how many messages, taken in reading order, fit. Every store backend
//! applies it, so no answer grows with the length of the texts it holds.

use crate::Message;

/// Bytes `value` takes as JSON, counted without building the text.
pub fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail, and our types always serialize.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// How many of `messages`, in the order given (the order the page is
/// read in), fit in `budget` bytes (possibly none).
pub fn fitting_in(messages: &[Message], budget: usize) -> usize {
    let mut used = 0;
    for (i, message) in messages.iter().enumerate() {
        used += encoded_len(message) + 1;
        if used > budget {
            return i;
        }
    }
    messages.len()
}

/// Keeps the messages that fit in `budget`, in reading order, and at
/// least one so paging always moves; `true` when some were left out (the
/// page then says `has_more`).
pub fn truncate_to_page(messages: &mut Vec<Message>, budget: usize) -> bool {
    let fit = fitting_in(messages, budget).max(1);
    let cut = fit < messages.len();
    messages.truncate(fit);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::PAGE_MAX_BYTES;
    use crate::{ChannelId, MessageId, UserId};

    fn message(id: i64, text: &str) -> Message {
        Message {
            channel_id: ChannelId(1),
            message_id: MessageId(id),
            sender_id: UserId(1),
            client_msg_id: format!("c{id}"),
            text: text.into(),
            created_at: 0,
            mentioned: false,
            attachments: Vec::new(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_escaped_bytes_and_always_keeps_one() {
        let m = message(1, "\u{1}");
        assert_eq!(encoded_len(&m), serde_json::to_string(&m).unwrap().len());
        let big = "\u{1}".repeat(100_000); // 6 bytes each once escaped
        let mut page: Vec<Message> = (1..=5).map(|i| message(i, &big)).collect();
        assert!(truncate_to_page(&mut page, PAGE_MAX_BYTES));
        assert_eq!(page.len(), 1);
        let mut small: Vec<Message> = (1..=5).map(|i| message(i, "hi")).collect();
        assert!(!truncate_to_page(&mut small, PAGE_MAX_BYTES));
        assert_eq!(small.len(), 5);
    }
}
