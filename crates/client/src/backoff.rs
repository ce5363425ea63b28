//! Reconnect delays: exponential with full jitter, so that thousands of
//! clients cut off at once do not come back in lockstep.

use rand::Rng;
use std::time::Duration;

/// `delay(n)` is uniform in `[0, min(max, initial * 2^n)]`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `attempt` (0 = first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self.initial.saturating_mul(1u32 << attempt.min(20)).min(self.max);
        let millis = cap.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_millis(1000) };
        for attempt in 0..30 {
            let cap = (100u64 << attempt.min(20)).min(1000);
            for _ in 0..50 {
                assert!(b.delay(attempt).as_millis() as u64 <= cap);
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| b.delay(10)).collect();
        assert!(spread.len() > 10, "full jitter spreads delays");
    }
}
