//! Churn soak: tens of thousands of connect / authenticate / drop cycles,
//! ended every way a client can end them. Afterwards the server's open
//! file descriptors, live tasks and memory are back at their baseline, and
//! it still serves.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

const WARMUP_CYCLES: usize = 2_000;
const SOAK_CYCLES: usize = 30_000;
const CONCURRENCY: usize = 48;

/// One connection's life, ended in the `i`-th of several ways.
async fn cycle(ws_url: &str, tokens: &[String], i: usize) {
    let token = &tokens[i % tokens.len()];
    match i % 6 {
        // Authenticate with a frame, then a clean close handshake.
        0 => {
            let mut client = Client::open(ws_url).await;
            client.send(json!({"type": "auth", "token": token})).await;
            assert_eq!(client.next().await["type"], "ready");
            let _ = client.ws.close(None).await;
            while let Some(Ok(_)) = client.ws.next().await {}
        }
        // Authenticate, then vanish without a close frame.
        1 => {
            let mut client = Client::open(ws_url).await;
            client.send(json!({"type": "auth", "token": token})).await;
            assert_eq!(client.next().await["type"], "ready");
            drop(client);
        }
        // Authenticate with the upgrade's Authorization header, then vanish.
        2 => {
            let mut request = ws_url.into_client_request().unwrap();
            request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
            let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("bearer upgrade");
            let mut client = Client::from_stream(ws);
            assert_eq!(client.next().await["type"], "ready");
        }
        // Upgrade, then leave before authenticating.
        3 => {
            let mut client = Client::open(ws_url).await;
            client.send(json!({"type": "ping"})).await;
            assert_eq!(client.next().await["type"], "pong");
        }
        // A wrong token: refused and closed by the server.
        4 => {
            let mut client = Client::open(ws_url).await;
            client.send(json!({"type": "auth", "token": "wrong"})).await;
            assert_eq!(client.closed().await, Some(1008));
        }
        // Half an HTTP upgrade request on a raw socket, then gone.
        _ => {
            let addr = ws_url.trim_start_matches("ws://").split('/').next().unwrap();
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n").await.unwrap();
        }
    }
}

async fn run_cycles(server: &TestServer, tokens: &[String], range: std::ops::Range<usize>) {
    let url = server.ws_url();
    futures_util::stream::iter(range)
        .for_each_concurrent(CONCURRENCY, |i| {
            let url = url.clone();
            async move { cycle(&url, tokens, i).await }
        })
        .await;
}

/// What the server holds, read from its own metrics and from /proc.
#[derive(Debug, Clone, Copy)]
struct Holdings {
    sockets: i64,
    tasks: i64,
    fds: usize,
    rss_kib: u64,
}

async fn holdings(server: &TestServer) -> Holdings {
    let (_, metrics) = server.call("GET", "/metrics", None, None).await;
    let text = metrics.as_str().expect("metrics text").to_string();
    let gauge = |name: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in metrics"))
    };
    let pid = server.pid();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    Holdings { sockets: gauge("chinwag_sockets"), tasks: gauge("chinwag_runtime_tasks"), fds, rss_kib }
}

/// Waits until every socket of the cycles is gone and the count of tasks
/// stops moving (presence timers finish, closes complete).
async fn settled(server: &TestServer) -> Holdings {
    let mut last = holdings(server).await;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = holdings(server).await;
        if now.sockets == 0 && now.tasks == last.tasks && now.fds == last.fds {
            return now;
        }
        last = now;
    }
    panic!("server did not settle: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_leaves_nothing_behind() {
    // Short offline grace so presence timers end soon after the sockets.
    let server = TestServer::start_with(&["--presence-offline-grace-ms", "50", "--max-connections-per-ip", "100000"]);
    let mut tokens = Vec::new();
    for i in 0..12 {
        tokens.push(server.user(&format!("churner{i}")).await.token);
    }
    run_cycles(&server, &tokens, 0..WARMUP_CYCLES).await;
    let baseline = settled(&server).await;
    println!("baseline after {WARMUP_CYCLES} cycles: {baseline:?}");

    let started = std::time::Instant::now();
    run_cycles(&server, &tokens, WARMUP_CYCLES..WARMUP_CYCLES + SOAK_CYCLES).await;
    let elapsed = started.elapsed();
    let after = settled(&server).await;
    println!(
        "after {SOAK_CYCLES} more cycles in {elapsed:?} ({:.0}/s): {after:?}",
        SOAK_CYCLES as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(after.fds, baseline.fds, "file descriptors leaked");
    assert_eq!(after.tasks, baseline.tasks, "tasks leaked");
    // Allocator pools may keep a little; a leak of even 1 KiB per cycle
    // would be 30 MiB.
    assert!(
        after.rss_kib <= baseline.rss_kib + 8 * 1024,
        "memory grew from {} KiB to {} KiB",
        baseline.rss_kib,
        after.rss_kib
    );

    // And it still works.
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, _) = server.connect(&bob.token).await;
    assert_eq!(a.send_text(channel, "after-churn", "still here").await["type"], "ack");
    assert_eq!(b.next_of("message").await["text"], "still here");
    let _ = b.ws.send(Ws::Close(None)).await;
}
