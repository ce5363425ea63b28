//! Rate limits per key (user, account name, client address): governor's
//! keyed GCRA limiters.

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

    /// `per_minute` on average, `burst` at once.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_minute);
        Self::with_quota(Quota::per_minute(per_minute).allow_burst(burst))
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
}
