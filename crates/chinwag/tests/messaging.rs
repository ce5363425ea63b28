//! Sending, delivery, order, idempotency, history and bad input, over real
//! sockets against the real binary.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message as Ws;

#[tokio::test]
async fn messages_reach_every_device_of_every_member() {
    let server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let alice_laptop = server.login("alice").await;
    let (mut a1, ready) = server.connect(&alice.token).await;
    assert_eq!(ready["user"]["id"], alice.id);
    assert!(ready["device_id"].as_i64().is_some());
    assert_eq!(ready["heartbeat_interval_ms"], 5000);
    assert_eq!(ready["channels"][0]["id"], channel);
    let (mut a2, _) = server.connect(&alice_laptop).await;
    let (mut b1, _) = server.connect(&bob.token).await;

    let ack = a1.send_text(channel, "c-1", "hi bob").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!((ack["channel_id"].as_i64(), ack["message_id"].as_i64()), (Some(channel), Some(1)));
    assert!(ack["created_at"].as_i64().unwrap() > 0);
    for ws in [&mut a1, &mut a2, &mut b1] {
        let m = ws.next_of("message").await;
        assert_eq!(m["text"], "hi bob");
        assert_eq!(m["message_id"], 1);
        assert_eq!(m["sender_id"], alice.id);
        assert_eq!(m["client_msg_id"], "c-1");
        assert_eq!(m["channel_id"], channel);
        assert_eq!(m["created_at"], ack["created_at"]);
    }
    // Over HTTP too, with the same delivery.
    let (s, b) = server
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &bob.token,
            json!({"client_msg_id": "h-1", "text": "hi alice"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["message"]["message_id"], 2);
    for ws in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(ws.next_of("message").await["message_id"], 2);
    }
}

#[tokio::test]
async fn send_to_user_opens_the_direct_channel() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, _) = server.connect(&bob.token).await;
    a.send(json!({"type": "send", "client_msg_id": "u1", "to_user_id": bob.id, "text": "new chat"})).await;
    let channel_event = b.next().await;
    assert_eq!(channel_event["type"], "channel", "{channel_event}");
    assert_eq!(channel_event["channel"]["kind"], "direct");
    let m = b.next_of("message").await;
    assert_eq!((m["text"].as_str(), m["message_id"].as_i64()), (Some("new chat"), Some(1)));
    let ack = a.next_of("ack").await;
    assert_eq!(ack["channel_id"], channel_event["channel"]["id"]);
    // The same pair reuses the channel.
    a.send(json!({"type": "send", "client_msg_id": "u2", "to_user_id": bob.id, "text": "again"})).await;
    let ack2 = a.next_of("ack").await;
    assert_eq!((ack2["channel_id"].clone(), ack2["message_id"].as_i64()), (ack["channel_id"].clone(), Some(2)));
    a.send(json!({"type": "send", "client_msg_id": "u3", "to_user_id": 99999, "text": "nobody"})).await;
    let err = a.next_of("error").await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("not_found"), Some("u3")));
}

#[tokio::test]
async fn resends_are_acked_with_the_original_and_never_delivered_twice() {
    let server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, _) = server.connect(&bob.token).await;
    let first = a.send_text(channel, "same", "once").await;
    let second = a.send_text(channel, "same", "once").await;
    assert_eq!(first, second);
    let (s, http) = server
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &alice.token,
            json!({"client_msg_id": "same", "text": "once"}),
        )
        .await;
    assert_eq!((s, &http["message"]["message_id"]), (201, &first["message_id"]));
    // A fresh socket (as after a reconnect) resending gets the same ack.
    let (mut a2, _) = server.connect(&alice.token).await;
    assert_eq!(a2.send_text(channel, "same", "once").await, first);
    assert_eq!(b.next_of("message").await["client_msg_id"], "same");
    b.quiet("message", Duration::from_millis(500)).await;
    let (_, page) = server.get(&format!("/v1/channels/{channel}/messages"), &bob.token).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    // The same client_msg_id from another sender is another message.
    assert_eq!(b.send_text(channel, "same", "mine").await["message_id"], 2);
}

#[tokio::test]
async fn many_concurrent_senders_in_a_group_are_seen_in_order_everywhere() {
    let server = TestServer::start_with(&["--send-rate-per-s", "1000", "--send-burst", "1000"]);
    let mut accounts = Vec::new();
    for i in 0..8 {
        accounts.push(server.user(&format!("member{i}")).await);
    }
    let others: Vec<&Account> = accounts[1..].iter().collect();
    let group = server.group(&accounts[0], &others).await;
    let mut readers = Vec::new();
    for account in &accounts {
        readers.push(server.connect(&account.token).await.0);
    }
    const EACH: usize = 40;
    let mut senders = Vec::new();
    for account in &accounts {
        let (mut ws, _) = server.connect(&account.token).await;
        let name = account.name.clone();
        senders.push(tokio::spawn(async move {
            // Pipelined: all sends first, then all acks.
            for n in 0..EACH {
                ws.send(json!({"type": "send", "client_msg_id": format!("{name}-{n}"), "channel_id": group, "text": format!("{n}")})).await;
            }
            let mut acked = HashMap::new();
            while acked.len() < EACH {
                let f = ws.next().await;
                assert_ne!(f["type"], "error", "{f}");
                if f["type"] == "ack" {
                    acked.insert(f["client_msg_id"].as_str().unwrap().to_string(), f["message_id"].as_i64().unwrap());
                }
            }
            // One sender's messages are numbered in the order it sent them.
            let ids: Vec<i64> = (0..EACH).map(|n| acked[&format!("{name}-{n}")]).collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{name}: {ids:?}");
            acked
        }));
    }
    let mut all_acks = HashMap::new();
    for s in senders {
        all_acks.extend(s.await.unwrap());
    }
    let total = EACH * accounts.len();
    let mut ids: Vec<i64> = all_acks.values().copied().collect();
    ids.sort();
    assert_eq!(ids, (1..=total as i64).collect::<Vec<_>>());
    for reader in &mut readers {
        let mut seen = Vec::new();
        while seen.len() < total {
            let m = reader.next_of("message").await;
            assert_eq!(all_acks[m["client_msg_id"].as_str().unwrap()], m["message_id"].as_i64().unwrap());
            seen.push(m["message_id"].as_i64().unwrap());
        }
        assert_eq!(seen, (1..=total as i64).collect::<Vec<_>>());
        reader.quiet("message", Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sync_and_history_pages() {
    let server = TestServer::start_with(&["--send-rate-per-s", "1000", "--send-burst", "1000"]);
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    for n in 1..=30 {
        a.send_text(channel, &format!("m{n}"), &format!("text {n}")).await;
    }
    let (mut b, ready) = server.connect(&bob.token).await;
    assert_eq!(ready["channels"][0]["last_message_id"], 30);
    b.send(json!({"type": "sync", "channel_id": channel, "after": 5, "limit": 20})).await;
    for expect in 6..=25 {
        let m = b.next().await;
        assert_eq!((m["type"].as_str(), m["message_id"].as_i64()), (Some("message"), Some(expect)));
    }
    let synced = b.next().await;
    assert_eq!(synced, json!({"type": "synced", "channel_id": channel, "up_to": 25, "has_more": true}));
    b.send(json!({"type": "sync", "channel_id": channel, "after": 25, "ref": "r1"})).await;
    for _ in 26..=30 {
        b.next_of("message").await;
    }
    assert_eq!(b.next().await, json!({"type": "synced", "channel_id": channel, "up_to": 30, "has_more": false}));
    b.send(json!({"type": "sync", "channel_id": channel, "after": 0, "limit": 500, "ref": "big"})).await;
    let err = b.next().await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("bad_request"), Some("big")));

    let page = |q: &'static str| {
        let server = &server;
        let token = bob.token.clone();
        async move {
            let (s, b) = server.get(&format!("/v1/channels/{channel}/messages{q}"), &token).await;
            assert_eq!(s, 200, "{q}: {b}");
            let ids: Vec<i64> =
                b["messages"].as_array().unwrap().iter().map(|m| m["message_id"].as_i64().unwrap()).collect();
            (ids, b["has_more"].as_bool().unwrap())
        }
    };
    let (ids, more) = page("").await;
    assert_eq!((ids.len(), ids[0], ids[29], more), (30, 1, 30, false));
    assert_eq!(page("?limit=3").await, (vec![28, 29, 30], true));
    assert_eq!(page("?after=10&limit=3").await, (vec![11, 12, 13], true));
    assert_eq!(page("?after=28").await, (vec![29, 30], false));
    assert_eq!(page("?before=4&limit=2").await, (vec![2, 3], true));
    assert_eq!(page("?before=3").await, (vec![1, 2], false));
    assert_eq!(page("?after=3&before=6").await, (vec![4, 5], false));
    assert_eq!(page("?around=15&limit=4").await, (vec![13, 14, 15, 16], true));
    assert_eq!(page("?around=1&limit=3").await, (vec![1, 2], true));
    for bad in ["?limit=0", "?limit=201", "?after=x", "?around=3&after=1"] {
        let (s, b) = server.get(&format!("/v1/channels/{channel}/messages{bad}"), &bob.token).await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")), "{bad}");
    }
}

#[tokio::test]
async fn text_limits_count_characters_and_keep_bytes() {
    let server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    // 100,000 two-byte characters: 200,000 bytes, still within the limit.
    let longest = "é".repeat(100_000);
    assert_eq!(a.send_text(channel, "long", &longest).await["type"], "ack");
    let err = a.send_text(channel, "too-long", &format!("{longest}x")).await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("text_too_long"), Some("too-long")));
    let err = a.send_text(channel, "empty", "").await;
    assert_eq!(err["code"], "text_empty");
    let odd = "  spaced \u{0000} nul, e\u{0301} combining, 👩‍👩‍👧 family, \r\n crlf  ";
    assert_eq!(a.send_text(channel, "odd", odd).await["type"], "ack");
    let err = a.send_text(channel, &"c".repeat(65), "x").await;
    assert_eq!(err["code"], "bad_request");
    let (s, b) = server
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &alice.token,
            json!({"client_msg_id": "h", "text": format!("{longest}x")}),
        )
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("text_too_long")));
    let (_, page) = server.get(&format!("/v1/channels/{channel}/messages"), &bob.token).await;
    let texts: Vec<&str> = page["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec![longest.as_str(), odd]);
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_socket_stays_usable() {
    let server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, _) = server.connect(&bob.token).await;
    let cases: Vec<(&str, Option<Value>)> = vec![
        ("not json", None),
        ("{\"type\":", None),
        ("[1,2,3]", None),
        ("{\"type\":\"teleport\",\"ref\":\"t1\"}", Some(json!("t1"))),
        ("{\"no_type\":1}", None),
        ("{\"type\":\"send\",\"client_msg_id\":\"x1\",\"text\":\"no channel\"}", Some(json!("x1"))),
        ("{\"type\":\"send\",\"client_msg_id\":\"x2\",\"channel_id\":\"one\",\"text\":\"hi\"}", Some(json!("x2"))),
        ("{\"type\":\"read\",\"channel_id\":1,\"ref\":7}", Some(json!(7))),
        ("{\"type\":\"auth\",\"token\":\"again\"}", None),
    ];
    for (raw, reference) in cases {
        a.send_raw(Ws::text(raw)).await;
        let err = a.next_of("error").await;
        assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("bad_request")), "{raw}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        if let Some(reference) = reference {
            assert_eq!(err["ref"], reference, "{raw}");
        }
    }
    // A binary frame carrying JSON is read like text.
    a.send_raw(Ws::binary(b"{\"type\":\"ping\"}".to_vec())).await;
    a.next_of("pong").await;
    assert_eq!(a.send_text(channel, "ok", "still fine").await["type"], "ack");
    assert_eq!(b.next_of("message").await["text"], "still fine");

    // Invalid UTF-8 in a text frame closes with 1007, touching no one else.
    let bad_utf8 = Frame::message(vec![0xff, 0xfe, 0x7b], OpCode::Data(Data::Text), true);
    a.ws.send(Ws::Frame(bad_utf8)).await.unwrap();
    assert_eq!(a.closed().await, Some(1007));
    // A frame above 512 KiB closes with 1009.
    let (mut big, _) = server.connect(&alice.token).await;
    let huge = format!(
        "{{\"type\":\"send\",\"client_msg_id\":\"big\",\"channel_id\":{channel},\"text\":\"{}\"}}",
        "a".repeat(600 * 1024)
    );
    let _ = big.ws.send(Ws::text(huge)).await;
    assert_eq!(big.closed().await, Some(1009));
    b.send(json!({"type": "ping"})).await;
    b.next_of("pong").await;
    let (_, page) = server.get(&format!("/v1/channels/{channel}/messages"), &bob.token).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn authentication_on_the_socket() {
    let server = TestServer::start_with(&["--auth-timeout-ms", "800"]);
    let alice = server.user("alice").await;
    // Frames before auth get `unauthorized`; auth still works after.
    let mut ws = Client::open(&server.ws_url()).await;
    ws.send(json!({"type": "sync", "channel_id": 1, "after": 0, "ref": "early"})).await;
    let err = ws.next().await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("unauthorized"), Some("early")));
    ws.send(json!({"type": "auth", "token": alice.token})).await;
    assert_eq!(ws.next().await["type"], "ready");
    // Silence after connecting: closed when the auth deadline passes.
    let mut silent = Client::open(&server.ws_url()).await;
    assert_eq!(silent.closed().await, Some(1008));
    // A bad token: an error, then the close.
    let mut bad = Client::open(&server.ws_url()).await;
    bad.send(json!({"type": "auth", "token": "nope"})).await;
    assert_eq!(bad.next().await["code"], "unauthorized");
    assert_eq!(bad.closed().await, Some(1008));
    // The Authorization header is accepted instead of the auth frame.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.ws_url().into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {}", alice.token).parse().unwrap());
    let (stream, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut header_ws = Client::from_stream(stream);
    assert_eq!(header_ws.next().await["type"], "ready");
    let mut request = server.ws_url().into_client_request().unwrap();
    request.headers_mut().insert("authorization", "Bearer wrong".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_heartbeat_timeout() {
    let server = TestServer::start_with(&["--heartbeat-interval-ms", "200", "--heartbeat-timeout-ms", "1000"]);
    let alice = server.user("alice").await;
    let (mut pinging, ready) = server.connect(&alice.token).await;
    assert_eq!(ready["heartbeat_interval_ms"], 200);
    let (mut silent, _) = server.connect(&alice.token).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        pinging.send(json!({"type": "ping"})).await;
        assert_eq!(pinging.next().await["type"], "pong");
    }
    assert_eq!(silent.closed().await, Some(4000));
}

#[tokio::test]
async fn sends_are_rate_limited_per_user() {
    let server = TestServer::start_with(&["--send-rate-per-s", "1", "--send-burst", "3"]);
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    for n in 0..3 {
        assert_eq!(a.send_text(channel, &format!("ok{n}"), "hi").await["type"], "ack");
    }
    let err = a.send_text(channel, "flood", "hi").await;
    assert_eq!(err["code"], "rate_limited");
    assert!(err["retry_after_ms"].as_u64().unwrap() > 0);
    let (s, b) = server
        .post(&format!("/v1/channels/{channel}/messages"), &alice.token, json!({"client_msg_id": "h", "text": "x"}))
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (429, Some("rate_limited")));
    assert!(b["error"]["retry_after_ms"].as_u64().is_some());
    // Bob is not affected by Alice's flood.
    let (mut b_ws, _) = server.connect(&bob.token).await;
    assert_eq!(b_ws.send_text(channel, "bob1", "hello").await["type"], "ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_cut_off_without_slowing_others() {
    let server = TestServer::start_with(&[
        "--send-rate-per-s",
        "10000",
        "--send-burst",
        "10000",
        "--outbound-queue-frames",
        "16",
        "--write-timeout-ms",
        "1000",
    ]);
    // A full group: the sender, 98 members who read, and one who stops.
    let alice = server.user("alice").await;
    let carol = server.user("carol").await;
    let mut readers = Vec::new();
    for i in 0..98 {
        readers.push(server.user(&format!("reader{i}")).await);
    }
    let mut members: Vec<&Account> = readers.iter().collect();
    members.push(&carol);
    let group = server.group(&alice, &members).await;
    let (mut slow, _) = server.connect(&carol.token).await;
    let (mut sender, _) = server.connect(&alice.token).await;
    // 7 MB to each member: more than the kernel's socket buffers (4 MB at
    // most here) and the socket's queue hold for one who does not read.
    const COUNT: i64 = 120;
    let mut fast_readers = Vec::new();
    for reader in &readers {
        let (mut fast, _) = server.connect(&reader.token).await;
        fast_readers.push(tokio::spawn(async move {
            for expect in 1..=COUNT {
                let m = fast.next_of("message").await;
                assert_eq!(m["message_id"], expect);
            }
        }));
    }
    // Paced in bursts smaller than the queue, so a member who keeps reading
    // never has more than a burst queued.
    let text = "z".repeat(60_000);
    for burst in 0..COUNT / 5 {
        for n in 0..5 {
            sender.send(json!({"type": "send", "client_msg_id": format!("m{burst}-{n}"), "channel_id": group, "text": text})).await;
        }
        for _ in 0..5 {
            sender.next_of("ack").await;
        }
    }
    for reader in fast_readers {
        reader.await.expect("every reading member got every message in order");
    }
    // The slow reader finds its socket closed with "try again later", after
    // an unbroken prefix of the messages.
    let mut last = 0;
    let code = loop {
        match slow.next_within(WAIT).await {
            Some(Ok(frame)) if frame["type"] == "message" => {
                assert_eq!(frame["message_id"], last + 1);
                last += 1;
            }
            Some(Ok(_)) => {}
            Some(Err((code, _))) => break code,
            None => panic!("slow reader was never cut off"),
        }
    };
    assert!(last < COUNT, "the slow reader got everything");
    assert!(matches!(code, Some(1013) | None), "close code {code:?}");
    // Reconnecting, it catches up from history.
    let (mut again, ready) = server.connect(&carol.token).await;
    assert_eq!(ready["channels"][0]["last_message_id"], COUNT);
    again.send(json!({"type": "sync", "channel_id": group, "after": last, "limit": 200})).await;
    assert_eq!(again.next_of("message").await["message_id"], last + 1);
}
