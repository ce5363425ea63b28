//! Crash safety and clean shutdown: acknowledged means durable.

mod common;

use common::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// cmid → (channel, message_id) for everything acknowledged.
type Acks = Arc<Mutex<HashMap<String, (i64, i64)>>>;

/// Sends as fast as a window of 16 unacked messages allows, until the
/// socket dies; records every cmid it sent and every ack it got.
async fn pump(mut ws: Client, channel: i64, prefix: String, acks: Acks, sent: Arc<Mutex<Vec<(String, i64)>>>) {
    let mut n = 0u64;
    let mut in_flight = 0;
    loop {
        while in_flight < 16 {
            let cmid = format!("{prefix}-{n}");
            n += 1;
            sent.lock().unwrap().push((cmid.clone(), channel));
            let frame = json!({"type": "send", "client_msg_id": cmid, "channel_id": channel, "text": format!("payload {cmid}")});
            if futures_util::SinkExt::send(&mut ws.ws, tokio_tungstenite::tungstenite::Message::text(frame.to_string()))
                .await
                .is_err()
            {
                return;
            }
            in_flight += 1;
        }
        match ws.next_within(Duration::from_secs(5)).await {
            Some(Ok(f)) if f["type"] == "ack" => {
                in_flight -= 1;
                let id = (f["channel_id"].as_i64().unwrap(), f["message_id"].as_i64().unwrap());
                acks.lock().unwrap().insert(f["client_msg_id"].as_str().unwrap().to_string(), id);
            }
            Some(Ok(f)) if f["type"] == "error" => panic!("send failed: {f}"),
            Some(Ok(_)) => {}
            _ => return,
        }
    }
}

/// Every message of a channel, checking ids run 1..=n without gaps.
async fn history(server: &TestServer, token: &str, channel: i64) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (s, page) = server.get(&format!("/v1/channels/{channel}/messages?after={after}&limit=200"), token).await;
        assert_eq!(s, 200, "{page}");
        let messages = page["messages"].as_array().unwrap().clone();
        for m in &messages {
            after += 1;
            assert_eq!(m["message_id"].as_i64(), Some(after), "gap or repeat in channel {channel}");
        }
        all.extend(messages);
        if !page["has_more"].as_bool().unwrap() {
            return all;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acked_message_and_resends_duplicate_nothing() {
    let mut server = TestServer::start_with(&["--send-rate-per-s", "100000", "--send-burst", "100000"]);
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let direct = server.direct(&alice, &bob).await;
    let group = server.group(&alice, &[&bob, &carol]).await;
    let plan = [(&alice, direct), (&bob, direct), (&alice, group), (&carol, group)];
    let acks: Acks = Default::default();
    let sent: Arc<Mutex<Vec<(String, i64)>>> = Default::default();

    // 20 crash cycles, each killing the server at a random moment.
    for cycle in 0..20u64 {
        let mut pumps = Vec::new();
        for (i, (account, channel)) in plan.iter().enumerate() {
            let (ws, _) = server.connect(&account.token).await;
            let prefix = format!("c{cycle}-s{i}");
            pumps.push(tokio::spawn(pump(ws, *channel, prefix, acks.clone(), sent.clone())));
        }
        tokio::time::sleep(Duration::from_millis(100 + rand::random::<u64>() % 300)).await;
        let acked_before_kill = acks.lock().unwrap().len();
        server.kill();
        for p in pumps {
            p.await.unwrap();
        }
        assert!(acked_before_kill > 0, "nothing was acknowledged before the kill");
        server.restart();

        // Every acknowledged message is stored exactly once, under its id.
        let mut stored: HashMap<String, (i64, i64)> = HashMap::new();
        for channel in [direct, group] {
            for m in history(&server, &alice.token, channel).await {
                let key = m["client_msg_id"].as_str().unwrap().to_string();
                let at = (channel, m["message_id"].as_i64().unwrap());
                assert!(stored.insert(key.clone(), at).is_none(), "{key} stored twice");
            }
        }
        for (cmid, at) in acks.lock().unwrap().iter() {
            assert_eq!(stored.get(cmid), Some(at), "acked {cmid} lost or moved");
        }
    }

    // Clients resend everything they ever sent: nothing new for what was
    // stored, and acks match the originals.
    let stored_before: usize = {
        let mut n = 0;
        for channel in [direct, group] {
            n += history(&server, &alice.token, channel).await.len();
        }
        n
    };
    let sent = sent.lock().unwrap().clone();
    let acks = acks.lock().unwrap().clone();
    let mut sockets = HashMap::new();
    for (i, (account, _)) in plan.iter().enumerate() {
        sockets.insert(i, server.connect(&account.token).await.0);
    }
    // Each socket pipelines all of its resends, then collects the acks.
    let mut resent_new = 0;
    for (i, (_, _)) in plan.iter().enumerate() {
        let ws = sockets.get_mut(&i).unwrap();
        let mine: Vec<&(String, i64)> =
            sent.iter().filter(|(cmid, _)| cmid.split('-').nth(1) == Some(&format!("s{i}"))).collect();
        for (cmid, channel) in &mine {
            let frame = json!({"type": "send", "client_msg_id": cmid, "channel_id": channel, "text": format!("payload {cmid}")});
            ws.send(frame).await;
        }
        let mut acked = 0;
        while acked < mine.len() {
            let f = ws.next().await;
            assert_ne!(f["type"], "error", "{f}");
            if f["type"] != "ack" {
                continue;
            }
            acked += 1;
            let cmid = f["client_msg_id"].as_str().unwrap();
            let at = (f["channel_id"].as_i64().unwrap(), f["message_id"].as_i64().unwrap());
            match acks.get(cmid) {
                Some(original) => assert_eq!(&at, original, "{cmid} re-acked differently"),
                None => resent_new += 1,
            }
        }
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for channel in [direct, group] {
        for m in history(&server, &alice.token, channel).await {
            assert!(seen.insert(m["client_msg_id"].as_str().unwrap().to_string()), "duplicate after resend");
            total += 1;
        }
    }
    assert_eq!(total, sent.len(), "every sent message stored exactly once");
    assert!(total <= stored_before + resent_new);
}

#[tokio::test]
async fn sigterm_closes_sockets_going_away_and_keeps_everything() {
    let mut server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    for n in 0..10 {
        assert_eq!(a.send_text(channel, &format!("t{n}"), "before shutdown").await["type"], "ack");
    }
    let (mut b, _) = server.connect(&bob.token).await;
    let data_dir = server.data_dir().to_path_buf();
    let exited_cleanly = tokio::task::spawn_blocking(move || {
        let ok = server.terminate();
        (ok, server)
    });
    assert_eq!(b.closed().await, Some(1001));
    let (ok, mut server) = exited_cleanly.await.unwrap();
    assert!(ok, "chinwag did not exit 0 on SIGTERM");
    // A clean stop checkpoints the write-ahead log into the database file.
    let wal = data_dir.join("chinwag.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    server.restart();
    assert_eq!(history(&server, &bob.token, channel).await.len(), 10);
}

/// A server whose log pipe died (the reader of its stderr went away, as
/// `2>&1 | head -1` or a dead journal stream does) still stops on SIGTERM:
/// failing to log must never keep it running.
#[test]
#[allow(clippy::disallowed_methods, reason = "a plain test thread waiting for a child process")]
fn sigterm_stops_the_server_even_when_its_log_pipe_is_gone() {
    // About the process, not the store: the embedded one is enough.
    if on_postgres() {
        return;
    }
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chinwag");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("chinwag listening on "), "{line:?}");
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    log.read_line(&mut first).unwrap();
    drop(log);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exited with {status}");
            return;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("SIGTERM did not stop a server whose stderr is gone");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
