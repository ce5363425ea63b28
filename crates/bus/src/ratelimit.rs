//! The `RateLimiter` seam, for the limits that protect accounts (logins,
//! signups). Behind a load balancer each node would otherwise give a
//! password guesser a budget of its own; a cluster implementation keeps
//! one budget per key for all nodes. (Limits that only protect one node's
//! resources, like sends per socket, stay local.)

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

/// One named limit: `per_minute` on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    /// Keeps the budgets of different limits apart (`login_per_account`).
    pub name: &'static str,
    pub per_minute: u32,
    pub burst: u32,
}

/// Spends one unit of a key's budget under a limit.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// `Err(wait)` when `key` has spent its budget under `limit`: try again
    /// after `wait`.
    async fn check(&self, limit: Limit, key: &str) -> Result<(), Duration>;
    /// Forgets keys that are back at their full budget (bounded memory).
    fn forget_idle(&self) {}
}

/// Budgets in this process (governor's keyed GCRA).
#[derive(Default)]
pub struct LocalRateLimiter {
    limiters: Mutex<HashMap<Limit, DefaultKeyedRateLimiter<String>>>,
}

#[async_trait::async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, limit: Limit, key: &str) -> Result<(), Duration> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        let limiter = limiters.entry(limit).or_insert_with(|| {
            let per_minute = NonZeroU32::new(limit.per_minute).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(limit.burst).unwrap_or(per_minute);
            DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
        });
        limiter.check_key(&key.to_owned()).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn forget_idle(&self) {
        for limiter in self.limiters.lock().unwrap_or_else(|p| p.into_inner()).values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budgets_are_per_limit_and_key() {
        let limiter = LocalRateLimiter::default();
        let login = Limit { name: "login", per_minute: 2, burst: 2 };
        let signup = Limit { name: "signup", per_minute: 1, burst: 1 };
        assert!(limiter.check(login, "alice").await.is_ok());
        assert!(limiter.check(login, "alice").await.is_ok());
        let wait = limiter.check(login, "alice").await.unwrap_err();
        assert!(wait > Duration::ZERO);
        assert!(limiter.check(login, "bob").await.is_ok(), "another key");
        assert!(limiter.check(signup, "alice").await.is_ok(), "another limit");
    }
}
