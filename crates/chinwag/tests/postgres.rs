//! PostgreSQL behind the server goes away under load and comes back:
//! sends meanwhile get `unavailable` with a retry hint (never `internal`),
//! clients resend with the same `client_msg_id`, and afterwards every
//! acknowledged message is stored exactly once, ids without gaps.

mod common;

use chinwag_store::postgres::LocalPostgres;
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// Sends `count` messages one after another, resending each until it is
/// acknowledged; returns cmid → message id, and the error codes seen.
async fn send_until_acked(
    mut ws: Client,
    channel: i64,
    prefix: &str,
    count: usize,
) -> (HashMap<String, i64>, Vec<String>) {
    let mut acked = HashMap::new();
    let mut errors = Vec::new();
    for i in 0..count {
        let cmid = format!("{prefix}-{i}");
        loop {
            ws.send(
                json!({"type": "send", "client_msg_id": cmid, "channel_id": channel, "text": format!("text {cmid}")}),
            )
            .await;
            let answer = loop {
                let f = ws.next().await;
                if f["type"] == "ack" || f["type"] == "error" {
                    break f;
                }
            };
            if answer["type"] == "ack" {
                acked.insert(cmid.clone(), answer["message_id"].as_i64().unwrap());
                break;
            }
            errors.push(answer["code"].as_str().unwrap_or("?").to_owned());
            let wait = answer["retry_after_ms"].as_u64().unwrap_or(100).min(500);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
    (acked, errors)
}

/// A private PostgreSQL with one empty database, and its URL.
async fn private_database(name: &'static str) -> (LocalPostgres, String) {
    tokio::task::spawn_blocking(move || {
        let pg = LocalPostgres::start(false).expect("start PostgreSQL");
        let url = pg.create_database(name).expect("create database");
        (pg, url)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_and_duplicates_nothing() {
    let (mut pg, url) = private_database("chat").await;
    let server = TestServer::start_with(&["--store", &url, "--send-rate-per-s", "100000", "--send-burst", "100000"]);
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (a, _) = server.connect(&alice.token).await;
    let (b, _) = server.connect(&bob.token).await;
    let senders = [
        tokio::spawn(async move { send_until_acked(a, channel, "a", 400).await }),
        tokio::spawn(async move { send_until_acked(b, channel, "b", 400).await }),
    ];
    // Let traffic flow, then take PostgreSQL away for a second.
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg = tokio::task::spawn_blocking(move || {
        pg.stop_now();
        #[allow(clippy::disallowed_methods, reason = "a blocking thread of its own")]
        std::thread::sleep(Duration::from_secs(1));
        pg.start_again().expect("restart PostgreSQL");
        pg
    })
    .await
    .unwrap();

    let mut acked = HashMap::new();
    let mut errors = Vec::new();
    for sender in senders {
        let (mine, seen) = sender.await.unwrap();
        acked.extend(mine);
        errors.extend(seen);
    }
    assert_eq!(acked.len(), 800);
    assert!(!errors.is_empty(), "the outage was never noticed");
    assert!(errors.iter().all(|code| code == "unavailable"), "errors other than unavailable: {errors:?}");

    // Everything acknowledged is stored once, under the id it was acked with.
    let mut stored = HashMap::new();
    let mut after = 0;
    loop {
        let (s, page) =
            server.get(&format!("/v1/channels/{channel}/messages?after={after}&limit=200"), &alice.token).await;
        assert_eq!(s, 200, "{page}");
        for m in page["messages"].as_array().unwrap() {
            after += 1;
            assert_eq!(m["message_id"].as_i64(), Some(after), "a gap or a repeat");
            let cmid = m["client_msg_id"].as_str().unwrap().to_owned();
            assert!(stored.insert(cmid.clone(), after).is_none(), "{cmid} stored twice");
        }
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(stored, acked);
    drop(server);
    drop(pg);
}

/// A node that starts before its database waits for it instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_before_postgres_waits_for_it() {
    let (mut pg, url) = private_database("late").await;
    pg.stop_now();
    let comes_back = std::thread::spawn(move || {
        #[allow(clippy::disallowed_methods, reason = "a plain thread, not the runtime")]
        std::thread::sleep(Duration::from_secs(2));
        pg.start_again().expect("start PostgreSQL again");
        pg
    });
    let server = tokio::task::spawn_blocking(move || TestServer::start_with(&["--store", &url])).await.unwrap();
    let pg = comes_back.join().unwrap();
    let (alice, _bob, channel) = server.alice_and_bob().await;
    let (mut ws, _) = server.connect(&alice.token).await;
    assert_eq!(ws.send_text(channel, "late-1", "hello").await["type"], "ack");
    drop(server);
    drop(pg);
}

/// Two nodes on one database sign pushes with one VAPID key, whichever
/// node's files were made first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_one_database_share_their_push_keys() {
    let (pg, url) = private_database("shared").await;
    let one = TestServer::start_with(&["--store", &url]);
    let two = TestServer::start_with(&["--store", &url]);
    let key = |server: &TestServer| {
        let server_base = server.base.clone();
        let http = server.http.clone();
        async move {
            let answer: serde_json::Value =
                http.get(format!("{server_base}/v1/push/vapid-public-key")).send().await.unwrap().json().await.unwrap();
            answer["public_key"].as_str().unwrap().to_owned()
        }
    };
    let (first, second) = (key(&one).await, key(&two).await);
    assert!(!first.is_empty());
    assert_eq!(first, second, "both nodes hand out the same VAPID key");
    // Each node made its own file, but the store's copy (the first) rules.
    let files: Vec<String> =
        [&one, &two].iter().map(|s| std::fs::read_to_string(s.data_dir().join("vapid.key")).unwrap()).collect();
    assert_ne!(files[0], files[1], "the nodes' own files differ");
    drop((one, two));
    drop(pg);
}
