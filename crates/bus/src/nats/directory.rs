//! This node's copy of the cluster's soft state: which gateways are alive
//! (their discovery announcements) and how many sockets each holds per user
//! (their presence entries). Watches of two JetStream KV buckets keep it
//! current; this node's own entries are kept here first and written out by
//! [`Directory::take_writes`]'s consumer. The bus routes by it, presence
//! answers from it, discovery lists from it.
//!
//! Liveness is a lease: a gateway's entries count only while it keeps
//! announcing itself (every second, `ttl` to live). A gateway killed with
//! SIGKILL stops announcing, and its users go offline `ttl + grace` later
//! unless they reconnected elsewhere.

use crate::{GatewayInfo, PresenceChange};
use chinwag_proto::UserId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// Another gateway as this node last heard of it.
struct Remote {
    /// `None` until its first announcement arrives (its presence entries
    /// may come first).
    info: Option<GatewayInfo>,
    seen: Instant,
}

#[derive(Default)]
struct State {
    /// This node's own announcement, and when it was made.
    own: Option<(GatewayInfo, Instant)>,
    gateways: HashMap<Arc<str>, Remote>,
    /// Sockets per user on other gateways.
    remote: HashMap<UserId, Vec<(Arc<str>, u32)>>,
    /// Sockets per user on this node.
    local: HashMap<UserId, u32>,
    /// Users with no socket left, online until the deadline (the grace),
    /// with when their last socket closed.
    leaving: HashMap<UserId, (Instant, i64)>,
    /// When the gateways watch last brought back this node's echo: leases
    /// expire only while it works (a stuck watch is not a dead gateway).
    gateways_heard: Option<Instant>,
}

/// How late this node's echo may come back before the gateways watch
/// counts as stuck (echoes are written every second).
const ECHO_LATE: Duration = Duration::from_secs(3);

/// The presence bucket's key of `user`'s sockets on `gateway`.
pub(crate) fn presence_key(gateway: &str, user: UserId) -> String {
    format!("{gateway}.{}", user.0)
}

/// What this node must write to the buckets, coalesced: only the latest
/// count per user and the latest announcement matter.
#[derive(Default)]
pub(crate) struct Writes {
    pub counts: HashMap<UserId, u32>,
    pub announce: Option<GatewayInfo>,
    /// Presence keys to delete (a dead gateway's, or stale ones of ours).
    pub deletes: Vec<String>,
}

impl Writes {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.announce.is_none() && self.deletes.is_empty()
    }
}

/// The directory; see the module documentation.
pub(crate) struct Directory {
    /// This node's id: its gateway name and its presence key prefix.
    pub me: Arc<str>,
    ttl: Duration,
    grace: Duration,
    state: Mutex<State>,
    /// Presence changes, told only while this node leads presence and has
    /// loaded the buckets (see [`Directory::telling`]).
    changes: mpsc::Sender<PresenceChange>,
    /// The presence bucket's first replay is done (before it, changes are
    /// history, not news).
    pub loaded: AtomicBool,
    /// This node holds the presence leader's lease.
    pub leader: AtomicBool,
    /// Tests tell changes without a leader.
    #[cfg(test)]
    pub always_tell: AtomicBool,
    writes: Mutex<Writes>,
    pub writes_ready: Notify,
}

/// Changes waiting for the presence role before new ones are dropped.
const CHANGES_QUEUE: usize = 65_536;

impl Directory {
    pub fn new(me: &str, ttl: Duration, grace: Duration) -> (Directory, mpsc::Receiver<PresenceChange>) {
        let (changes, receiver) = mpsc::channel(CHANGES_QUEUE);
        let directory = Directory {
            me: Arc::from(me),
            ttl,
            grace,
            state: Mutex::default(),
            changes,
            loaded: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            #[cfg(test)]
            always_tell: AtomicBool::new(false),
            writes: Mutex::default(),
            writes_ready: Notify::new(),
        };
        (directory, receiver)
    }

    /// How long leases live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a few map writes: poison is harmless.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&self, write: impl FnOnce(&mut Writes)) {
        write(&mut self.writes.lock().unwrap_or_else(|p| p.into_inner()));
        self.writes_ready.notify_one();
    }

    /// What is waiting to be written (and forgets it).
    pub fn take_writes(&self) -> Writes {
        std::mem::take(&mut *self.writes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Queues the deletion of presence keys (a dead gateway's).
    pub fn delete_later(&self, keys: Vec<String>) {
        self.queue(|w| w.deletes.extend(keys));
    }

    /// Puts back writes that failed, unless newer ones replaced them.
    pub fn requeue(&self, failed: Writes) {
        self.queue(|w| {
            for (user, count) in failed.counts {
                w.counts.entry(user).or_insert(count);
            }
            if w.announce.is_none() {
                w.announce = failed.announce;
            }
            w.deletes.extend(failed.deletes);
        });
    }

    /// Whether changes are told here: the leader, once loaded.
    pub fn telling(&self) -> bool {
        #[cfg(test)]
        if self.always_tell.load(Ordering::Relaxed) {
            return true;
        }
        self.leader.load(Ordering::Relaxed) && self.loaded.load(Ordering::Relaxed)
    }

    fn tell(&self, changes: Vec<PresenceChange>) {
        if changes.is_empty() || !self.telling() {
            return;
        }
        for change in changes {
            if self.changes.try_send(change).is_err() {
                tracing::warn!(?change, "presence change dropped: the presence role is not keeping up");
            }
        }
    }

    /// A socket of `user` opened (`+1`) or closed (`-1`) on this node.
    pub fn local_change(&self, user: UserId, opened: bool) {
        let mut changes = Vec::new();
        let count = {
            let mut state = self.lock();
            let was = state.total(user) > 0;
            let entry = state.local.entry(user).or_default();
            *entry = if opened { *entry + 1 } else { entry.saturating_sub(1) };
            let count = *entry;
            if count == 0 {
                state.local.remove(&user);
            }
            state.transition(user, was, self.grace, &mut changes);
            count
        };
        self.queue(|w| {
            w.counts.insert(user, count);
        });
        self.tell(changes);
    }

    /// This node's announcement (discovery sees it here at once).
    pub fn announce(&self, info: GatewayInfo) {
        self.lock().own = Some((info.clone(), Instant::now()));
        self.queue(|w| w.announce = Some(info));
    }

    /// The gateways watch brought back this node's echo: it works.
    pub fn gateways_heard(&self) {
        self.lock().gateways_heard = Some(Instant::now());
    }

    /// Another gateway's announcement (or its removal) from the watch.
    pub fn gateway_seen(&self, id: &str, info: Option<GatewayInfo>) {
        if *id == *self.me {
            return;
        }
        let mut state = self.lock();
        match info {
            Some(info) => {
                state.gateways.insert(Arc::from(id), Remote { info: Some(info), seen: Instant::now() });
            }
            // Deleted at a clean stop: its presence entries follow.
            None => {
                if let Some(remote) = state.gateways.get_mut(id) {
                    remote.info = None;
                }
            }
        }
    }

    /// A presence entry `<gateway>.<user>` from the watch: its count, or
    /// `None` when deleted.
    pub fn presence_seen(&self, gateway: &str, user: UserId, count: Option<u32>) {
        if *gateway == *self.me {
            // Ours are kept here; a different value in the bucket is left
            // over from an earlier life of this node: correct it.
            let local = self.lock().local.get(&user).copied().unwrap_or(0);
            if count.unwrap_or(0) != local {
                self.queue(|w| {
                    w.counts.entry(user).or_insert(local);
                });
            }
            return;
        }
        let mut changes = Vec::new();
        {
            let mut state = self.lock();
            let was = state.total(user) > 0;
            let gateway: Arc<str> = match state.gateways.get_key_value(gateway) {
                Some((name, _)) => name.clone(),
                None => {
                    // Entries may arrive before the first announcement:
                    // the gateway gets one lease period to make it.
                    let name: Arc<str> = Arc::from(gateway);
                    state.gateways.insert(name.clone(), Remote { info: None, seen: Instant::now() });
                    name
                }
            };
            let entries = state.remote.entry(user).or_default();
            entries.retain(|(g, _)| *g != gateway);
            if let Some(count) = count.filter(|&c| c > 0) {
                entries.push((gateway, count));
            }
            if entries.is_empty() {
                state.remote.remove(&user);
            }
            state.transition(user, was, self.grace, &mut changes);
        }
        self.tell(changes);
    }

    /// Expires gateways whose lease ran out and users whose grace ran out.
    /// Returns the presence keys of expired gateways (for the leader to
    /// delete).
    pub fn tick(&self) -> Vec<String> {
        let now = Instant::now();
        let mut changes = Vec::new();
        let mut dead_keys = Vec::new();
        {
            let mut state = self.lock();
            let ttl = self.ttl;
            // While the watch is stuck, no news is no proof of death.
            let watching = state.gateways_heard.is_some_and(|heard| now.duration_since(heard) < ECHO_LATE);
            let dead: Vec<Arc<str>> = state
                .gateways
                .iter()
                .filter(|(_, r)| watching && now.duration_since(r.seen) >= ttl)
                .map(|(g, _)| g.clone())
                .collect();
            if !dead.is_empty() {
                let holders: Vec<UserId> = state
                    .remote
                    .iter()
                    .filter(|(_, entries)| entries.iter().any(|(g, _)| dead.contains(g)))
                    .map(|(&u, _)| u)
                    .collect();
                let before: Vec<(UserId, bool)> = holders.iter().map(|&u| (u, state.total(u) > 0)).collect();
                for gateway in &dead {
                    tracing::info!(gateway = &**gateway, "gateway lease expired; its users' sockets no longer count");
                    state.gateways.remove(gateway);
                }
                for (user, was) in before {
                    if let Some(entries) = state.remote.get_mut(&user) {
                        entries.retain(|(g, _)| {
                            let gone = dead.contains(g);
                            if gone {
                                dead_keys.push(presence_key(g, user));
                            }
                            !gone
                        });
                        if entries.is_empty() {
                            state.remote.remove(&user);
                        }
                    }
                    state.transition(user, was, self.grace, &mut changes);
                }
            }
            let due: Vec<UserId> =
                state.leaving.iter().filter(|(_, (deadline, _))| *deadline <= now).map(|(&u, _)| u).collect();
            for user in due {
                if let Some((_, closed_at)) = state.leaving.remove(&user) {
                    changes.push(PresenceChange::Offline { user_id: user, last_active_at: closed_at });
                }
            }
        }
        self.tell(changes);
        dead_keys
    }

    /// Other live gateways holding sockets of any of `users`, each with
    /// those of `users` it holds.
    pub fn route(&self, users: &[UserId]) -> Vec<(Arc<str>, Vec<UserId>)> {
        let state = self.lock();
        let mut routes: Vec<(Arc<str>, Vec<UserId>)> = Vec::new();
        for &user in users {
            let Some(entries) = state.remote.get(&user) else { continue };
            for (gateway, _) in entries {
                if !state.alive(gateway) {
                    continue;
                }
                match routes.iter_mut().find(|(g, _)| g == gateway) {
                    Some((_, list)) => list.push(user),
                    None => routes.push((gateway.clone(), vec![user])),
                }
            }
        }
        routes
    }

    /// Connected anywhere, or within the grace after the last socket.
    pub fn is_online(&self, user: UserId) -> bool {
        let state = self.lock();
        state.total(user) > 0 || state.leaving.contains_key(&user)
    }

    /// Sockets of `user` on every live gateway.
    pub fn connections_of(&self, user: UserId) -> usize {
        self.lock().total(user) as usize
    }

    pub fn online_users(&self) -> Vec<UserId> {
        let state = self.lock();
        let mut users: Vec<UserId> = state.local.keys().chain(state.remote.keys()).copied().collect();
        users.extend(state.leaving.keys().copied());
        users.sort_unstable();
        users.dedup();
        users.retain(|&u| state.total(u) > 0 || state.leaving.contains_key(&u));
        users
    }

    /// Live gateways, least loaded first.
    pub fn live_gateways(&self) -> Vec<GatewayInfo> {
        let state = self.lock();
        let now = Instant::now();
        let own = state.own.as_ref().filter(|(_, at)| now.duration_since(*at) < self.ttl).map(|(info, _)| info.clone());
        let mut live: Vec<GatewayInfo> = state
            .gateways
            .values()
            .filter(|r| now.duration_since(r.seen) < self.ttl)
            .filter_map(|r| r.info.clone())
            .chain(own)
            .collect();
        live.sort_by(|a, b| a.load.cmp(&b.load).then_with(|| a.id.cmp(&b.id)));
        live
    }

    /// This node's users, for deleting their entries at a clean stop.
    pub fn local_users(&self) -> Vec<UserId> {
        self.lock().local.keys().copied().collect()
    }
}

impl State {
    /// A gateway counts until `tick` finds its lease expired (so that the
    /// change it makes is seen, and told, there).
    fn alive(&self, gateway: &str) -> bool {
        self.gateways.contains_key(gateway)
    }

    fn total(&self, user: UserId) -> u32 {
        let local = self.local.get(&user).copied().unwrap_or(0);
        let remote: u32 = self
            .remote
            .get(&user)
            .map_or(0, |entries| entries.iter().filter(|(g, _)| self.alive(g)).map(|(_, c)| *c).sum());
        local + remote
    }

    /// Records what a change to `user`'s sockets means: 0 → some is online
    /// (unless it ends a grace period), some → 0 starts the grace.
    fn transition(&mut self, user: UserId, was: bool, grace: Duration, out: &mut Vec<PresenceChange>) {
        let now = self.total(user) > 0;
        match (was, now) {
            // Back within the grace: nothing to tell.
            (false, true) if self.leaving.remove(&user).is_some() => {}
            (false, true) => out.push(PresenceChange::Online { user_id: user }),
            (true, false) => {
                self.leaving.insert(user, (Instant::now() + grace, chinwag_proto::now_ms()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> (Directory, mpsc::Receiver<PresenceChange>) {
        let (d, rx) = Directory::new("me", Duration::from_millis(100), Duration::from_millis(50));
        d.always_tell.store(true, Ordering::Relaxed);
        (d, rx)
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "a plain test thread, no runtime to block")]
    fn a_user_on_two_gateways_is_online_until_the_last_goes() {
        let (d, mut rx) = directory();
        let alice = UserId(1);
        d.local_change(alice, true);
        d.presence_seen("other", alice, Some(2));
        assert_eq!(d.connections_of(alice), 3);
        assert_eq!(rx.try_recv().ok(), Some(PresenceChange::Online { user_id: alice }));
        d.local_change(alice, false);
        assert!(rx.try_recv().is_err(), "still on the other gateway");
        assert_eq!(d.route(&[alice, UserId(2)]).len(), 1);
        // The other gateway stops renewing its lease (while this node's
        // watch works): alice leaves after the grace.
        std::thread::sleep(Duration::from_millis(120));
        assert!(d.tick().is_empty(), "no lease expires while the watch may be stuck");
        d.gateways_heard();
        assert_eq!(d.tick(), vec!["other.1".to_owned()]);
        assert!(d.is_online(alice), "within the grace");
        std::thread::sleep(Duration::from_millis(60));
        d.tick();
        assert!(matches!(rx.try_recv(), Ok(PresenceChange::Offline { .. })));
        assert!(!d.is_online(alice));
        assert_eq!(d.take_writes().counts.get(&alice), Some(&0));
    }
}
