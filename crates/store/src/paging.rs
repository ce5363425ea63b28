//! How a backend cuts pages, the same for every backend: history runs by
//! count and encoded size (`chinwag_proto::pages`), feeds newest first with
//! a cursor.

use crate::FeedPage;
use chinwag_proto::validate::PAGE_MAX_BYTES;
use chinwag_proto::Message;

/// A run of one channel's messages to read: ids strictly between `lower`
/// and `upper`, in one direction, at most `limit` of them within `budget`.
pub(crate) struct Run {
    pub lower: i64,
    pub upper: i64,
    pub descending: bool,
    pub limit: u32,
    pub budget: Budget,
}

/// Encoded bytes a run may hold.
#[derive(Clone, Copy)]
pub(crate) enum Budget {
    /// A whole page: at least one message, so paging always moves.
    Page(usize),
    /// What another run of the same page left: possibly nothing.
    Rest(usize),
}

impl Run {
    /// Turns up to `limit + 1` rows read in the run's direction into the
    /// run's messages (ascending) and whether more lie beyond it.
    pub fn finish(&self, mut messages: Vec<Message>) -> (Vec<Message>, bool) {
        let mut more = messages.len() > self.limit as usize;
        messages.truncate(self.limit as usize);
        more |= match self.budget {
            Budget::Page(bytes) => chinwag_proto::pages::truncate_to_page(&mut messages, bytes),
            Budget::Rest(bytes) => {
                let fit = chinwag_proto::pages::fitting_in(&messages, bytes);
                let cut = fit < messages.len();
                messages.truncate(fit);
                cut
            }
        };
        if self.descending {
            messages.reverse();
        }
        (messages, more)
    }
}

/// The budget left for the older half of an `Around` page after `newer`.
pub(crate) fn rest_after(newer: &[Message]) -> Budget {
    let used: usize = newer.iter().map(|m| chinwag_proto::pages::encoded_len(m) + 1).sum();
    Budget::Rest(PAGE_MAX_BYTES.saturating_sub(used))
}

/// The first `limit` rows (newest first) that fit in a page, with the
/// cursor to continue from when more may follow.
pub(crate) fn feed_page(mut rows: Vec<(Message, i64)>, limit: u32) -> FeedPage {
    let mut more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let (mut messages, cursors): (Vec<Message>, Vec<i64>) = rows.into_iter().unzip();
    more |= chinwag_proto::pages::truncate_to_page(&mut messages, PAGE_MAX_BYTES);
    let next_before = if more { cursors.get(messages.len().wrapping_sub(1)).copied() } else { None };
    FeedPage { messages, next_before }
}
