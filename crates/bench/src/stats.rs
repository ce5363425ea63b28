//! Latency histograms and the correctness counts every scenario reports.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Latencies in microseconds, 1 µs to 10 min at 3 significant digits.
#[derive(Clone)]
pub struct Hist(pub Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Hist {
    pub fn record(&mut self, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, 600_000_000);
        let _ = self.0.record(micros);
    }

    pub fn merge(&mut self, other: &Hist) {
        let _ = self.0.add(&other.0);
    }

    pub fn summary(&self) -> Latency {
        let ms = |q: f64| self.0.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            count: self.0.len(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.0.max() as f64 / 1000.0,
        }
    }

    /// `(percentile, ms)` points for a distribution chart.
    pub fn curve(&self) -> Vec<(f64, f64)> {
        let mut points = Vec::new();
        for i in 0..=400 {
            // Denser towards the tail: 0 .. 99.99 %.
            let q = 1.0 - 10f64.powf(-4.0 * i as f64 / 400.0);
            points.push((q * 100.0, self.0.value_at_quantile(q) as f64 / 1000.0));
        }
        points
    }
}

/// A latency distribution as reported.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Counts that must all be zero.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Correctness {
    /// Acknowledged, but never delivered to a connected member.
    pub lost: u64,
    /// Delivered twice to the same connection.
    pub duplicated: u64,
    /// Delivered after a later message of the same channel.
    pub out_of_order: u64,
    /// Holes in a channel's ids as delivered.
    pub gaps: u64,
}

impl Correctness {
    pub fn add(&mut self, other: &Correctness) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.gaps += other.gaps;
    }

    pub fn is_clean(&self) -> bool {
        *self == Correctness::default()
    }
}

/// Tracks one connection's view of one channel.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChannelTrack {
    pub last: i64,
}

impl ChannelTrack {
    /// Classifies the next delivered id.
    pub fn observe(&mut self, id: i64, c: &mut Correctness) {
        if id == self.last {
            c.duplicated += 1;
        } else if id < self.last {
            c.out_of_order += 1;
        } else {
            if id > self.last + 1 {
                c.gaps += (id - self.last - 1) as u64;
            }
            self.last = id;
        }
    }
}

/// Nanoseconds since the Unix epoch: a clock shared by every process on
/// the machine, so a receiver can time a message sent by another process.
pub fn epoch_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// The send time embedded at the start of a benchmark message.
pub fn sent_at(text: &str) -> Option<u128> {
    text.split('|').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_deliveries() {
        let mut c = Correctness::default();
        let mut t = ChannelTrack::default();
        for id in [1, 2, 2, 5, 3, 6] {
            t.observe(id, &mut c);
        }
        assert_eq!(c, Correctness { lost: 0, duplicated: 1, out_of_order: 1, gaps: 2 });
        assert_eq!(sent_at("123|xyz"), Some(123));
    }
}
