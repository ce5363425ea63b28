//! Rate limits of this node per user (sends, typing, store work):
//! governor's keyed GCRA limiters. They protect this node's resources, so
//! they stay local; the limits that protect accounts go through the
//! `RateLimiter` seam. Also: the addresses each account logged in from.

use chinwag_proto::{UserId, WireError};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hash::Hash;
use std::num::NonZeroU32;

/// A rate with a burst, checked per key.
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

/// The per-user limiter of sends and typing.
pub type UserLimiter = KeyedLimiter<UserId>;

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        Self::with_quota(Quota::per_second(per_second).allow_burst(burst))
    }

    fn with_quota(quota: Quota) -> Self {
        KeyedLimiter { limiter: RateLimiter::keyed(quota), clock: DefaultClock::default() }
    }

    /// `rate_limited` with the wait when `key` is over the limit.
    pub fn check(&self, key: &K) -> Result<(), WireError> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            WireError::rate_limited(wait.as_millis().max(1) as u64)
        })
    }

    /// Drops the state of users who have been quiet long enough to be back
    /// at full burst; call now and then so memory stays bounded.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Addresses each account logged in from, so a login from one of them is
/// not held to the account-wide ceiling: whoever floods an account from
/// elsewhere cannot lock its owner out. Bounded: a few addresses per
/// account, a capped number of accounts (forgotten all at once when full,
/// which only brings back the ceiling for a while).
#[derive(Default)]
pub struct KnownAddresses {
    accounts: std::sync::Mutex<std::collections::HashMap<String, Vec<std::net::IpAddr>>>,
}

/// Addresses remembered per account (the oldest is forgotten first).
const KNOWN_PER_ACCOUNT: usize = 8;
/// Accounts remembered at most.
const KNOWN_ACCOUNTS: usize = 100_000;

impl KnownAddresses {
    pub fn contains(&self, account: &str, ip: std::net::IpAddr) -> bool {
        let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.get(account).is_some_and(|known| known.contains(&ip))
    }

    pub fn remember(&self, account: &str, ip: std::net::IpAddr) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if accounts.len() >= KNOWN_ACCOUNTS && !accounts.contains_key(account) {
            accounts.clear();
        }
        let known = accounts.entry(account.to_owned()).or_default();
        known.retain(|&k| k != ip);
        if known.len() >= KNOWN_PER_ACCOUNT {
            known.remove(0);
        }
        known.push(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chinwag_proto::ErrorCode;

    #[test]
    fn burst_then_limited_per_user() {
        let limiter = UserLimiter::new(1, 3);
        for _ in 0..3 {
            limiter.check(&UserId(1)).unwrap();
        }
        let err = limiter.check(&UserId(1)).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(err.retry_after_ms.unwrap() > 0);
        limiter.check(&UserId(2)).unwrap();
    }

    #[test]
    fn known_addresses_are_few_per_account() {
        let known = KnownAddresses::default();
        let ip = |n: u8| std::net::IpAddr::from([10, 0, 0, n]);
        for n in 0..10 {
            known.remember("alice", ip(n));
        }
        assert!(!known.contains("alice", ip(0)) && !known.contains("alice", ip(1)));
        assert!(known.contains("alice", ip(9)) && !known.contains("bob", ip(9)));
    }
}
