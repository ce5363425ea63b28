//! Reconnect storm: thousands of SDK clients are connected when the server
//! is killed; messages are sent while it is down; it comes back on the same
//! port and every client reconnects with jittered backoff. The test reports
//! how long until all were back and the server's peak memory during the
//! storm, and checks that every client saw every message of its channels
//! exactly once, in order, and that nothing was stored twice.

mod common;

use chinwag_client::{Client, ClientConfig, Event, Target};
use chinwag_proto::ChannelId;
use common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USERS: usize = 100;
const DEVICES_PER_USER: usize = 40;
const CLIENTS: usize = USERS * DEVICES_PER_USER;
const SENT_BEFORE: usize = 3;
const SENT_WHILE_DOWN: usize = 2;
const PER_CHANNEL: usize = SENT_BEFORE + SENT_WHILE_DOWN;

/// What one client heard.
#[derive(Default)]
struct Heard {
    /// Message ids per channel, in the order they were handed out.
    messages: HashMap<ChannelId, Vec<i64>>,
    back_after_crash: bool,
    back_at: Option<Instant>,
}

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_reconnect_after_a_crash_and_lose_nothing() {
    raise_fd_limit();
    let mut server =
        TestServer::start_with(&["--max-connections-per-ip", "100000", "--presence-offline-grace-ms", "1000"]);
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(server.user(&format!("storm{i}")).await);
    }
    // Each user talks to the next one: every user is in two channels.
    let mut outgoing = Vec::new();
    for i in 0..USERS {
        outgoing.push(ChannelId(server.direct(&users[i], &users[(i + 1) % USERS]).await));
    }

    let heard: Vec<Arc<Mutex<Heard>>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let back = Arc::new(AtomicUsize::new(0));
    let crashed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let base = server.base.clone();
    let clients: Vec<Client> = futures_util::future::join_all((0..CLIENTS).map(|n| {
        let config = ClientConfig::new(&base, &users[n / DEVICES_PER_USER].token);
        async move { Client::connect(config).await.expect("connect") }
    }))
    .await;
    let mut senders = Vec::new();
    for (n, mut client) in clients.into_iter().enumerate() {
        if n % DEVICES_PER_USER == 0 {
            senders.push(client.handle());
        }
        let (heard, back, crashed) = (heard[n].clone(), back.clone(), crashed.clone());
        tokio::spawn(async move {
            let mut lost = false;
            while let Some(event) = client.next_event().await {
                match event {
                    Event::Message(m) => {
                        heard.lock().unwrap().messages.entry(m.channel_id).or_default().push(m.message_id.0)
                    }
                    Event::Disconnected { .. } => lost = true,
                    Event::Ready { .. } if lost && crashed.load(Relaxed) => {
                        let mut h = heard.lock().unwrap();
                        if !h.back_after_crash {
                            h.back_after_crash = true;
                            h.back_at = Some(Instant::now());
                            back.fetch_add(1, Relaxed);
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    println!("{CLIENTS} clients connected");

    let send_all = |round: std::ops::Range<usize>| {
        let senders = senders.clone();
        let outgoing = outgoing.clone();
        tokio::spawn(async move {
            let sends = senders.iter().enumerate().flat_map(|(u, sender)| {
                let channel = outgoing[u];
                round.clone().map(move |k| {
                    let sender = sender.clone();
                    async move { sender.send(Target::Channel(channel), &format!("from {u}, number {k}")).await }
                })
            });
            for ack in futures_util::future::join_all(sends).await {
                ack.expect("every send is acked in the end");
            }
        })
    };
    send_all(0..SENT_BEFORE).await.unwrap();

    crashed.store(true, Relaxed);
    server.kill();
    // Sent while the server is down: queued by the SDK, resent later.
    let while_down = send_all(SENT_BEFORE..PER_CHANNEL);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = Instant::now();
    server.restart_same_port();
    let pid = server.pid();
    let deadline = restarted + Duration::from_secs(120);
    while back.load(Relaxed) < CLIENTS {
        assert!(Instant::now() < deadline, "only {} of {CLIENTS} clients back", back.load(Relaxed));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_back = restarted.elapsed();
    let mut times: Vec<f64> =
        heard.iter().map(|h| h.lock().unwrap().back_at.unwrap().duration_since(restarted).as_secs_f64()).collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "back after the restart (s): p50 {:.2}, p90 {:.2}, last {:.2}",
        times[CLIENTS / 2],
        times[CLIENTS * 9 / 10],
        times[CLIENTS - 1]
    );
    tokio::time::timeout(Duration::from_secs(60), while_down).await.expect("sends while down acked").unwrap();

    // Everyone hears all messages of both their channels.
    let expected: Vec<i64> = (1..=PER_CHANNEL as i64).collect();
    let complete = |h: &Heard| h.messages.values().map(Vec::len).sum::<usize>() >= 2 * PER_CHANNEL;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !heard.iter().all(|h| complete(&h.lock().unwrap())) {
        assert!(Instant::now() < deadline, "messages still missing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "all {CLIENTS} clients back {:.2} s after the restart; server peak RSS during the storm {} MiB",
        all_back.as_secs_f64(),
        peak_rss_mib(pid)
    );
    // Late repeats would show up now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (n, h) in heard.iter().enumerate() {
        let user = n / DEVICES_PER_USER;
        let h = h.lock().unwrap();
        let mine = [outgoing[user], outgoing[(user + USERS - 1) % USERS]];
        assert_eq!(h.messages.len(), 2, "client {n} heard channels {:?}", h.messages.keys());
        for channel in mine {
            assert_eq!(h.messages.get(&channel), Some(&expected), "client {n}, channel {channel:?}");
        }
    }
    // Stored once each: resends were recognised.
    for (u, channel) in outgoing.iter().enumerate() {
        let (status, page) = server.get(&format!("/v1/channels/{}/messages?after=0", channel.0), &users[u].token).await;
        assert_eq!(status, 200);
        let texts: Vec<&str> =
            page["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
        let wanted: Vec<String> = (0..PER_CHANNEL).map(|k| format!("from {u}, number {k}")).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, wanted, "channel of {u}");
    }
}
