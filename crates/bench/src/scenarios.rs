//! The scenarios: `direct`, `group`, `idle`, `reconnect`, and the users
//! and channels they need.

use crate::load::{self, LoadOutcome, Pace, Participant};
use crate::server::rss_of;
use crate::stats::{ChannelTrack, Correctness, Hist};
use anyhow::{Context, Result};
use chinwag_client::{Api, Client, ClientConfig, Event, Target};
use chinwag_proto::{ChannelId, MessageId, UserId};
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

pub const PASSWORD: &str = "benchmark password";

/// A signed-up user with a device token.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub id: UserId,
    pub token: String,
}

/// Signs up and logs in `n` users named `<prefix>_<i>`, a few at a time
/// (each costs the server two password hashes).
pub async fn make_users(api: &Api, prefix: &str, n: usize) -> Result<Vec<BenchUser>> {
    let gate = Arc::new(Semaphore::new(8));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (api, gate, name) = (api.clone(), gate.clone(), format!("{prefix}_{i}"));
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            let user = api.signup(&name, PASSWORD).await?;
            let session = api.login(&name, PASSWORD).await?;
            Ok::<_, chinwag_client::ClientError>(BenchUser { id: user.id, token: session.token })
        }));
    }
    let mut users = Vec::with_capacity(n);
    for t in tasks {
        users.push(t.await?.context("creating a benchmark user")?);
    }
    Ok(users)
}

/// Connects one client per token, many at a time; client `i` goes to
/// `gateways[i % gateways.len()]` (base URLs), so the two sides of a pair
/// (and a group's members) are spread over the gateways of a cluster.
pub async fn connect_all(
    gateways: &[String],
    tokens: &[String],
    bind: impl Fn(usize) -> Option<IpAddr>,
) -> Result<Vec<Client>> {
    anyhow::ensure!(!gateways.is_empty(), "no gateway to connect to");
    let gate = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let mut config = ClientConfig::new(&gateways[i % gateways.len()], token);
        config.bind_ip = bind(i);
        config.event_queue = 8192;
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            Client::connect(config).await
        }));
    }
    let mut clients = Vec::with_capacity(tokens.len());
    for t in tasks {
        clients.push(t.await?.context("connecting a benchmark client")?);
    }
    Ok(clients)
}

/// Source address for connection `i`: a new 127.0.0.x every 25,000
/// connections, since one address has about 28,000 ephemeral ports.
pub fn spread_bind(i: usize) -> Option<IpAddr> {
    let x = 1 + (i / 25_000) as u8;
    (x > 1).then(|| IpAddr::from([127, 0, 0, x]))
}

/// How one load run goes: pacing, message size and length.
#[derive(Debug, Clone, Copy)]
pub struct RunShape {
    pub pace: Pace,
    pub payload_bytes: usize,
    pub duration: Duration,
}

/// `pairs` pairs of users, each pair chatting in its direct channel.
pub async fn direct(
    api: &Api,
    gateways: &[String],
    users: &[BenchUser],
    run: RunShape,
    progress: &ProgressBar,
) -> Result<LoadOutcome> {
    let mut channel_of = Vec::with_capacity(users.len());
    for pair in users.chunks_exact(2) {
        let channel = api.direct(&pair[0].token, pair[1].id).await?.id;
        channel_of.extend([channel, channel]);
    }
    run_members(gateways, users, channel_of, run, Duration::from_secs(10), progress).await
}

/// Connects `users[i]`, who sends into `channel_of[i]`, and runs the load;
/// deliveries may drain for `drain` afterwards.
async fn run_members(
    gateways: &[String],
    users: &[BenchUser],
    channel_of: Vec<ChannelId>,
    run: RunShape,
    drain: Duration,
    progress: &ProgressBar,
) -> Result<LoadOutcome> {
    let tokens: Vec<String> = users.iter().take(channel_of.len()).map(|u| u.token.clone()).collect();
    let clients = connect_all(gateways, &tokens, |_| None).await?;
    let participants = clients
        .into_iter()
        .zip(channel_of)
        .map(|(client, channel)| Participant { client, sends_to: Some(channel) })
        .collect();
    Ok(load::run(participants, run.pace, run.payload_bytes, run.duration, drain, progress).await)
}

/// The same pairs against the bare relay (no HTTP: ids made up).
pub async fn direct_relay(relay_url: &str, pairs: usize, run: RunShape, progress: &ProgressBar) -> Result<LoadOutcome> {
    let tokens: Vec<String> = (0..pairs * 2).map(|i| format!("relay:{}:{}", i + 1, i / 2 + 1)).collect();
    let clients = connect_all(&[relay_url.to_owned()], &tokens, |_| None).await?;
    let participants = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| Participant { client, sends_to: Some(ChannelId((i / 2 + 1) as i64)) })
        .collect();
    Ok(load::run(participants, run.pace, run.payload_bytes, run.duration, Duration::from_secs(10), progress).await)
}

/// Groups of `size` members, every member sending.
pub async fn group(
    api: &Api,
    gateways: &[String],
    users: &[BenchUser],
    size: usize,
    run: RunShape,
    progress: &ProgressBar,
) -> Result<LoadOutcome> {
    let mut channel_of = Vec::new();
    for members in users.chunks_exact(size) {
        let ids: Vec<UserId> = members.iter().map(|m| m.id).collect();
        let channel = api.group(&members[0].token, "bench group", &ids).await?.id;
        channel_of.extend(std::iter::repeat_n(channel, size));
    }
    run_members(gateways, users, channel_of, run, Duration::from_secs(15), progress).await
}

/// Idle connections and what they cost the server.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IdleOutcome {
    pub connections: usize,
    pub connect_seconds: f64,
    pub server_rss_before_bytes: Option<u64>,
    pub server_rss_after_bytes: Option<u64>,
    pub bytes_per_connection: Option<f64>,
}

/// Opens `tokens.len()` authenticated connections and holds them; reports
/// the server's memory growth per connection. Returns the clients so the
/// caller decides when to drop them.
pub async fn idle(
    base_url: &str,
    tokens: &[String],
    first_index: usize,
    server_pid: Option<u32>,
) -> Result<(IdleOutcome, Vec<Client>)> {
    let before = server_pid.and_then(rss_of);
    let start = Instant::now();
    let clients = connect_all(&[base_url.to_owned()], tokens, |i| spread_bind(first_index + i)).await?;
    let connect_seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server_pid.and_then(rss_of);
    let per = match (before, after) {
        (Some(b), Some(a)) if !clients.is_empty() => Some(a.saturating_sub(b) as f64 / clients.len() as f64),
        _ => None,
    };
    let outcome = IdleOutcome {
        connections: clients.len(),
        connect_seconds,
        server_rss_before_bytes: before,
        server_rss_after_bytes: after,
        bytes_per_connection: per,
    };
    Ok((outcome, clients))
}

/// Connection churn while messages keep flowing.
#[derive(Debug, Default)]
pub struct ChurnOutcome {
    pub reconnects: u64,
    pub ready: Hist,
    pub messages: u64,
    pub elapsed: Duration,
    pub correctness: Correctness,
}

/// `churners` members of a group reconnect again and again (each time from
/// their own cursor) while one member sends at `rate_per_s`; every churner
/// must end with every message exactly once and in order.
pub async fn reconnect(
    api: &Api,
    base_url: &str,
    users: &[BenchUser],
    rate_per_s: f64,
    duration: Duration,
    progress: &ProgressBar,
) -> Result<ChurnOutcome> {
    let (sender, churners) = users.split_first().context("reconnect needs users")?;
    let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
    let channel = api.group(&sender.token, "churn", &ids).await?.id;
    let start = Instant::now();
    let deadline = start + duration;
    let sending = {
        let client = Client::connect(ClientConfig::new(base_url, &sender.token)).await?;
        tokio::spawn(async move {
            let mut sent = 0u64;
            let mut last = 0;
            let interval = Duration::from_secs_f64(1.0 / rate_per_s.max(0.1));
            while Instant::now() < deadline {
                if let Ok(ack) = client.send(Target::Channel(channel), "churn").await {
                    sent += 1;
                    last = ack.message_id.0;
                }
                tokio::time::sleep(interval).await;
            }
            client.close().await;
            (sent, last)
        })
    };
    let mut tasks = Vec::new();
    for (i, churner) in churners.iter().enumerate() {
        let (base, token) = (base_url.to_owned(), churner.token.clone());
        tasks.push(tokio::spawn(async move { churn(&base, &token, channel, deadline, i as u64).await }));
    }
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                progress.set_position(start.elapsed().as_millis().min(duration.as_millis()) as u64);
            }
        })
    };
    let (messages, last_id) = sending.await?;
    let mut outcome = ChurnOutcome { messages, ..ChurnOutcome::default() };
    for t in tasks {
        let (reconnects, ready, track, correctness, cursor_base) = t.await??;
        outcome.reconnects += reconnects;
        outcome.ready.merge(&ready);
        outcome.correctness.add(&correctness);
        // Catch up to the end: what is still missing counts as lost.
        let (track, correctness) = finish(base_url, &cursor_base, channel, track, last_id).await?;
        outcome.correctness.add(&correctness);
        outcome.correctness.lost += (last_id - track.last).max(0) as u64;
    }
    ticker.abort();
    outcome.elapsed = start.elapsed();
    Ok(outcome)
}

/// Reconnects, ready latencies, final position, counts, and the token.
type ChurnResult = Result<(u64, Hist, ChannelTrack, Correctness, String)>;

async fn churn(base: &str, token: &str, channel: ChannelId, deadline: Instant, seed: u64) -> ChurnResult {
    let mut track = ChannelTrack::default();
    let mut correctness = Correctness::default();
    let mut ready = Hist::default();
    let mut reconnects = 0;
    let mut first = true;
    while Instant::now() < deadline {
        let mut config = ClientConfig::new(base, token);
        if !first {
            config.cursors = HashMap::from([(channel, MessageId(track.last))]);
        }
        let started = Instant::now();
        let mut client = Client::connect(config).await?;
        ready.record(started.elapsed());
        if first {
            if let Some(Event::Ready { channels, .. }) = client.next_event().await {
                track.last = channels.iter().find(|c| c.id == channel).map_or(0, |c| c.last_message_id.0);
            }
            first = false;
        } else {
            reconnects += 1;
        }
        let stay = Duration::from_millis(50 + (seed * 37 + reconnects * 53) % 150);
        read_channel(&mut client, channel, &mut track, &mut correctness, i64::MAX, stay).await;
        client.close().await;
    }
    Ok((reconnects, ready, track, correctness, token.to_owned()))
}

/// One last connection from the churner's cursor, reading up to `last_id`.
async fn finish(
    base: &str,
    token: &str,
    channel: ChannelId,
    mut track: ChannelTrack,
    last_id: i64,
) -> Result<(ChannelTrack, Correctness)> {
    let mut config = ClientConfig::new(base, token);
    config.cursors = HashMap::from([(channel, MessageId(track.last))]);
    let mut client = Client::connect(config).await?;
    let mut correctness = Correctness::default();
    read_channel(&mut client, channel, &mut track, &mut correctness, last_id, Duration::from_secs(10)).await;
    client.close().await;
    Ok((track, correctness))
}

/// Checks a channel's messages as they arrive, until `up_to` was seen or
/// `wait` passed.
async fn read_channel(
    client: &mut Client,
    channel: ChannelId,
    track: &mut ChannelTrack,
    correctness: &mut Correctness,
    up_to: i64,
    wait: Duration,
) {
    let until = tokio::time::Instant::now() + wait;
    while track.last < up_to {
        tokio::select! {
            event = client.next_event() => match event {
                Some(Event::Message(m)) if m.channel_id == channel => track.observe(m.message_id.0, correctness),
                Some(_) => {}
                None => break,
            },
            _ = tokio::time::sleep_until(until) => break,
        }
    }
}

/// What the `media` scenario measured.
#[derive(Debug, Default)]
pub struct MediaOutcome {
    pub uploads: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Upload request → 201.
    pub upload: Hist,
    /// Send → ack of a message with one attachment, and of one without.
    pub with_file: Hist,
    pub plain: Hist,
    pub correctness: Correctness,
}

/// Uploads `files` files of `size` bytes, `parallel` at a time, then sends
/// `messages` messages with one of them attached and as many without,
/// alternately, each after the previous one's ack; the reader must get
/// every one with its attachment.
pub async fn media(
    api: &Api,
    base_url: &str,
    users: &[BenchUser],
    files: usize,
    size: usize,
    messages: usize,
    progress: &ProgressBar,
) -> Result<MediaOutcome> {
    let (sender, reader) = (&users[0], &users[1]);
    let channel = api.direct(&sender.token, reader.id).await?.id;
    let body = bytes::Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let gate = Arc::new(Semaphore::new(4));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..files {
        let (api, gate, body, token) = (api.clone(), gate.clone(), body.clone(), sender.token.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            let at = Instant::now();
            let upload = api.upload(&token, &format!("bench-{i}.bin"), "application/octet-stream", body).await;
            (upload, at.elapsed())
        }));
    }
    let mut outcome = MediaOutcome::default();
    let mut ids = Vec::new();
    for task in tasks {
        let (upload, took) = task.await?;
        let upload = upload.context("uploading a benchmark file")?;
        outcome.upload.record(took);
        outcome.bytes += upload.size;
        ids.push(upload.id);
        progress.inc(1);
    }
    outcome.uploads = ids.len();
    outcome.elapsed = started.elapsed();

    let writer = Client::connect(ClientConfig::new(base_url, &sender.token)).await?;
    let mut reader_client = Client::connect(ClientConfig::new(base_url, &reader.token)).await?;
    let target = Target::Channel(channel);
    for i in 0..messages {
        let at = Instant::now();
        let id = &ids[i % ids.len()];
        writer.send_files(target, "", std::slice::from_ref(id)).await?;
        outcome.with_file.record(at.elapsed());
        let at = Instant::now();
        writer.send(target, "plain").await?;
        outcome.plain.record(at.elapsed());
    }
    // The reader gets every message, files included.
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen < messages * 2 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), reader_client.next_event()).await {
            Ok(Some(Event::Message(m))) => {
                if m.text.is_empty() && m.attachments.len() != 1 {
                    outcome.correctness.lost += 1;
                }
                seen += 1;
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => break,
        }
    }
    outcome.correctness.lost += (messages * 2 - seen) as u64;
    writer.close().await;
    reader_client.close().await;
    Ok(outcome)
}
