//! Budgets shared by every api node: one GCRA state (the "theoretical
//! arrival time" in ms) per limit and key in the `chinwag_limits` bucket,
//! changed with compare-and-set so concurrent nodes never both spend the
//! last unit. While NATS cannot answer, this node's own budgets stand in
//! (a limit that holds per node beats no limit, and beats refusing every
//! login).

use crate::{Limit, RateLimiter};
use async_nats::jetstream::kv;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Compare-and-set attempts before a busy key falls back to the local budget.
const ATTEMPTS: usize = 8;

/// The shared limiter; see the module documentation.
pub struct NatsRateLimiter {
    bucket: kv::Store,
    fallback: Arc<dyn RateLimiter>,
}

impl NatsRateLimiter {
    pub(crate) fn new(bucket: kv::Store, fallback: Arc<dyn RateLimiter>) -> Self {
        NatsRateLimiter { bucket, fallback }
    }

    /// One attempt: `Ok(verdict)`, or why there is none (another node
    /// changed the key meanwhile, or NATS failed).
    async fn try_spend(&self, key: &str, limit: Limit, now: i64) -> Result<Result<(), Duration>, Attempt> {
        let entry = self.bucket.entry(key).await.map_err(|e| Attempt::Failed(e.to_string()))?;
        let (tat, revision) = match &entry {
            Some(e) if e.operation == kv::Operation::Put => {
                (std::str::from_utf8(&e.value).ok().and_then(|v| v.parse::<i64>().ok()).unwrap_or(now), e.revision)
            }
            Some(e) => (now, e.revision),
            None => (now, 0),
        };
        let new_tat = match gcra(limit, tat, now) {
            Ok(new_tat) => new_tat,
            Err(wait) => return Ok(Err(wait)),
        };
        // Revision 0: only if the key does not exist yet.
        match self.bucket.update(key, Bytes::from(new_tat.to_string()), revision).await {
            Ok(_) => Ok(Ok(())),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision || lost_race(&e) => Err(Attempt::Conflict),
            Err(e) => Err(Attempt::Failed(e.to_string())),
        }
    }
}

/// Whether a write failed because another node wrote the key first. NATS
/// answers a write expecting "no value yet" with a code of its own
/// (10164), which async-nats files under `Other`.
fn lost_race(error: &(dyn std::error::Error + 'static)) -> bool {
    use async_nats::jetstream::{Error, ErrorCode};
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<Error>() {
            let code = e.error_code();
            return code == ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                || code == ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT;
        }
        source = e.source();
    }
    false
}

enum Attempt {
    Conflict,
    Failed(String),
}

/// GCRA: each unit moves the arrival time on by `60 s / per_minute`; a
/// unit is allowed while that time is at most `burst` units ahead of now.
/// `Ok(new arrival time)` or `Err(wait)`.
fn gcra(limit: Limit, tat: i64, now: i64) -> Result<i64, Duration> {
    let interval = 60_000 / i64::from(limit.per_minute.max(1));
    let burst = i64::from(limit.burst.max(1));
    let new_tat = tat.max(now) + interval;
    let ahead = new_tat - now - burst * interval;
    if ahead > 0 {
        Err(Duration::from_millis(ahead as u64))
    } else {
        Ok(new_tat)
    }
}

/// A bucket key for any text (keys allow few characters): hex.
fn bucket_key(limit: Limit, key: &str) -> String {
    let mut out = String::with_capacity(limit.name.len() + 1 + key.len() * 2);
    out.push_str(limit.name);
    out.push('.');
    for byte in key.bytes() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[async_trait::async_trait]
impl RateLimiter for NatsRateLimiter {
    async fn check(&self, limit: Limit, key: &str) -> Result<(), Duration> {
        let bucket_key = bucket_key(limit, key);
        for _ in 0..ATTEMPTS {
            match self.try_spend(&bucket_key, limit, chinwag_proto::now_ms()).await {
                Ok(verdict) => return verdict,
                Err(Attempt::Conflict) => continue,
                Err(Attempt::Failed(e)) => {
                    tracing::warn!(error = %e, "shared rate limit unavailable; this node's budget applies");
                    break;
                }
            }
        }
        self.fallback.check(limit, key).await
    }

    fn forget_idle(&self) {
        // The bucket forgets by itself (max_age); the fallback does not.
        self.fallback.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let limit = Limit { name: "t", per_minute: 60, burst: 3 };
        let mut tat = 0;
        for _ in 0..3 {
            tat = gcra(limit, tat, 0).unwrap();
        }
        assert_eq!(gcra(limit, tat, 0), Err(Duration::from_millis(1_000)));
        assert!(gcra(limit, tat, 1_000).is_ok(), "one unit back after a second");
        assert_eq!(bucket_key(limit, "a:b"), "t.613a62");
    }
}
