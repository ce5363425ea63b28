//! Message load over real connections, shared by the `direct` and `group`
//! scenarios: senders pace themselves open-loop at a target rate (latency is
//! measured from the *scheduled* send time, so a stall cannot hide its own
//! delay) or closed-loop with a window of unacknowledged sends (for the
//! highest throughput); every connection checks what it receives.

use crate::stats::{epoch_nanos, sent_at, ChannelTrack, Correctness, Hist};
use chinwag_client::{Client, ClientHandle, Event, Target};
use chinwag_proto::ChannelId;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How senders pace themselves.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Messages per second across all senders.
    Open { rate_per_s: f64 },
    /// Unacknowledged sends each sender keeps in flight.
    Closed { window: usize },
}

/// A connected user: receives on its channels, and sends into `sends_to`.
pub struct Participant {
    pub client: Client,
    pub sends_to: Option<ChannelId>,
}

#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub ack: Hist,
    pub deliver: Hist,
    pub deliveries: u64,
    pub correctness: Correctness,
}

impl std::fmt::Debug for Hist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hist({} samples)", self.0.len())
    }
}

#[derive(Default)]
struct Shared {
    ack: Hist,
    acked: u64,
    failed: u64,
    /// Highest acknowledged id per channel: what every member must get.
    max_acked: HashMap<ChannelId, i64>,
}

struct Received {
    deliver: Hist,
    deliveries: u64,
    correctness: Correctness,
    tracks: HashMap<ChannelId, ChannelTrack>,
}

/// Runs the load for `duration`, then lets deliveries drain (at most
/// `drain`) and counts what never arrived.
pub async fn run(
    participants: Vec<Participant>,
    pace: Pace,
    payload_bytes: usize,
    duration: Duration,
    drain: Duration,
    progress: &ProgressBar,
) -> LoadOutcome {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (expect_tx, expect_rx) = watch::channel::<Option<HashMap<ChannelId, i64>>>(None);
    let senders: Vec<(ClientHandle, ChannelId)> =
        participants.iter().filter_map(|p| p.sends_to.map(|c| (p.client.handle(), c))).collect();
    let receivers: Vec<_> =
        participants.into_iter().map(|p| tokio::spawn(receive(p.client, expect_rx.clone(), drain))).collect();

    let padding = "x".repeat(payload_bytes.saturating_sub(21));
    let start = Instant::now();
    let deadline = start + duration;
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    let per_sender_rate = match pace {
        Pace::Open { rate_per_s } => rate_per_s / senders.len().max(1) as f64,
        Pace::Closed { .. } => 0.0,
    };
    for (i, (handle, channel)) in senders.into_iter().enumerate() {
        let lanes = match pace {
            Pace::Open { .. } => 1,
            Pace::Closed { window } => window.max(1),
        };
        for lane in 0..lanes {
            let (handle, shared, padding, sent) = (handle.clone(), shared.clone(), padding.clone(), sent.clone());
            tasks.push(tokio::spawn(async move {
                match pace {
                    Pace::Open { .. } => {
                        // Spread senders' schedules so they do not fire together.
                        let interval = Duration::from_secs_f64(1.0 / per_sender_rate.max(1e-9));
                        let offset = interval.mul_f64((i % 97) as f64 / 97.0);
                        let mut inflight = Vec::new();
                        let mut k = 0u32;
                        loop {
                            let scheduled = start + offset + interval * k;
                            if scheduled >= deadline {
                                break;
                            }
                            tokio::time::sleep_until(scheduled.into()).await;
                            let epoch = epoch_nanos() - scheduled.elapsed().as_nanos();
                            let text = format!("{epoch:020}|{padding}");
                            sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let (handle, shared) = (handle.clone(), shared.clone());
                            inflight.push(tokio::spawn(async move {
                                send_one(&handle, channel, &text, scheduled, &shared).await;
                            }));
                            k += 1;
                        }
                        for t in inflight {
                            let _ = t.await;
                        }
                    }
                    Pace::Closed { .. } => {
                        let _ = lane;
                        while Instant::now() < deadline {
                            let scheduled = Instant::now();
                            let text = format!("{:020}|{padding}", epoch_nanos());
                            sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            send_one(&handle, channel, &text, scheduled, &shared).await;
                        }
                    }
                }
            }));
        }
    }
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                progress.set_position(start.elapsed().as_millis().min(duration.as_millis()) as u64);
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    ticker.abort();

    let (max_acked, ack, acked, failed) = {
        let s = shared.lock().unwrap_or_else(|p| p.into_inner());
        (s.max_acked.clone(), s.ack.clone(), s.acked, s.failed)
    };
    let _ = expect_tx.send(Some(max_acked.clone()));
    let mut outcome = LoadOutcome {
        sent: sent.load(std::sync::atomic::Ordering::Relaxed),
        acked,
        failed,
        elapsed,
        ack,
        ..LoadOutcome::default()
    };
    for r in receivers {
        let Ok(received) = r.await else { continue };
        outcome.deliver.merge(&received.deliver);
        outcome.deliveries += received.deliveries;
        outcome.correctness.add(&received.correctness);
        for (channel, track) in &received.tracks {
            let expected = max_acked.get(channel).copied().unwrap_or(0);
            outcome.correctness.lost += (expected - track.last).max(0) as u64;
        }
    }
    outcome
}

async fn send_one(handle: &ClientHandle, channel: ChannelId, text: &str, scheduled: Instant, shared: &Mutex<Shared>) {
    let result = handle.send(Target::Channel(channel), text).await;
    let took = scheduled.elapsed();
    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(ack) => {
            s.ack.record(took);
            s.acked += 1;
            let max = s.max_acked.entry(ack.channel_id).or_default();
            *max = (*max).max(ack.message_id.0);
        }
        Err(e) => {
            s.failed += 1;
            tracing::warn!(error = %e, "send failed");
        }
    }
}

/// Reads one connection's events until told what to expect and it has all
/// of it (or `drain` passed).
async fn receive(
    mut client: Client,
    mut expect: watch::Receiver<Option<HashMap<ChannelId, i64>>>,
    drain: Duration,
) -> Received {
    let mut r = Received {
        deliver: Hist::default(),
        deliveries: 0,
        correctness: Correctness::default(),
        tracks: HashMap::new(),
    };
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if let Some(expected) = expect.borrow().as_ref() {
            let done = r.tracks.iter().all(|(c, t)| t.last >= expected.get(c).copied().unwrap_or(0));
            if done {
                break;
            }
            drain_until.get_or_insert_with(|| tokio::time::Instant::now() + drain);
        }
        let until = drain_until.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            event = client.next_event() => match event {
                Some(Event::Ready { channels, .. }) => {
                    for c in channels {
                        r.tracks.entry(c.id).or_insert(ChannelTrack { last: c.last_message_id.0 });
                    }
                }
                Some(Event::Message(m)) => {
                    if let Some(at) = sent_at(&m.text) {
                        r.deliver.record(Duration::from_nanos(epoch_nanos().saturating_sub(at) as u64));
                    }
                    r.deliveries += 1;
                    let track = r.tracks.entry(m.channel_id).or_default();
                    track.observe(m.message_id.0, &mut r.correctness);
                }
                Some(_) => {}
                None => break,
            },
            _ = expect.changed() => {}
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    let stats = client.handle();
    let wire = stats.stats();
    use std::sync::atomic::Ordering::Relaxed;
    r.correctness.duplicated += wire.repeats_dropped.load(Relaxed);
    client.close().await;
    r
}
