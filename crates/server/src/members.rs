//! A cache of channel member lists for read markers and typing, which
//! must not read the store for every frame. (Messages are fanned out to
//! the members their own append saw, never to this cache.) Changes made on
//! any node reach it through the bus's `MembersChanged` broadcast.
//!
//! A broadcast can be lost on a cluster bus, so entries also expire after
//! [`MAX_AGE`]: a stale list is never kept longer than that.
//!
//! Why a generation counter: a load that started before a membership change
//! must not put the old list back after the change invalidated it.

use chinwag_proto::{ChannelId, UserId};
use chinwag_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries kept before the cache starts over; bounds its memory.
const MAX_ENTRIES: usize = 100_000;
/// How long an entry is trusted without an invalidation.
const MAX_AGE: Duration = Duration::from_secs(60);

/// A channel's members and when they were read.
type Entry = (Arc<[UserId]>, Instant);

#[derive(Default)]
pub struct MemberCache {
    entries: Mutex<HashMap<ChannelId, Entry>>,
    generation: AtomicU64,
}

impl MemberCache {
    /// The members of a channel (empty when it does not exist).
    pub async fn members(&self, store: &dyn Store, channel: ChannelId) -> Result<Arc<[UserId]>, StoreError> {
        if let Some((found, loaded_at)) = self.lock().get(&channel) {
            if loaded_at.elapsed() < MAX_AGE {
                return Ok(found.clone());
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let loaded: Arc<[UserId]> = store.members(channel).await?.into();
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) == generation {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(channel, (loaded.clone(), Instant::now()));
        }
        Ok(loaded)
    }

    /// Forgets a channel's list after its membership changed.
    pub fn invalidate(&self, channel: ChannelId) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(&channel);
    }

    /// Forgets every list (after missing broadcasts).
    pub fn clear(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelId, Entry>> {
        // Every update is a single insert/remove/clear: poison is harmless.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
