//! Presence, contacts, read markers, typing, search, mentions, discovery and
//! metrics over real sockets against the real binary.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Presence frames about `user` within `wait`.
async fn presence_frames(ws: &mut Client, user: i64, wait: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    while let Some(Ok(frame)) = ws.next_within(deadline - tokio::time::Instant::now()).await {
        if frame["type"] == "presence" && frame["user_id"] == user {
            seen.push(frame);
        }
    }
    seen
}

async fn presence_of(server: &TestServer, token: &str, user: i64) -> Value {
    let (s, b) = server.get(&format!("/v1/presence?user_ids={user}"), token).await;
    assert_eq!(s, 200, "{b}");
    b["presence"][0].clone()
}

#[tokio::test]
async fn presence_is_announced_once_per_change_to_contacts_and_fellow_members() {
    let mut server = TestServer::start_with(&["--presence-offline-grace-ms", "300"]);
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    // Alice follows Bob and Bob accepted her as a contact; Carol shares a
    // group with him; Dave has no tie.
    let (s, _) = server.call("PUT", &format!("/v1/contacts/{}", bob.id), Some(&alice.token), None).await;
    assert_eq!(s, 204);
    let (s, _) = server.call("PUT", &format!("/v1/contacts/{}", alice.id), Some(&bob.token), None).await;
    assert_eq!(s, 204);
    server.group(&carol, &[&bob]).await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut c, _) = server.connect(&carol.token).await;
    let (mut d, _) = server.connect(&dave.token).await;
    let before = presence_of(&server, &alice.token, bob.id).await;
    assert_eq!((before["status"].as_str(), before["last_active_at"].clone()), (Some("offline"), Value::Null));

    // Five devices come online: one `online`.
    let mut devices = Vec::new();
    for _ in 0..5 {
        let token = server.login("bob").await;
        devices.push(server.connect(&token).await.0);
    }
    for ws in [&mut a, &mut c] {
        let seen = presence_frames(ws, bob.id, Duration::from_millis(600)).await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0]["status"], "online");
    }
    assert!(presence_frames(&mut d, bob.id, Duration::from_millis(100)).await.is_empty());
    // Presence is private: Dave, with no tie to Bob, learns nothing.
    let hidden = presence_of(&server, &dave.token, bob.id).await;
    assert_eq!((hidden["status"].as_str(), hidden["last_active_at"].clone()), (Some("offline"), Value::Null));

    // A flapping device (drop and reconnect quickly) announces nothing.
    for _ in 0..5 {
        devices.pop();
        let token = server.login("bob").await;
        devices.push(server.connect(&token).await.0);
    }
    devices.truncate(1);
    assert!(presence_frames(&mut a, bob.id, Duration::from_millis(600)).await.is_empty());

    // The last device leaves: one `offline` after the grace period.
    drop(devices);
    for ws in [&mut a, &mut c] {
        let seen = presence_frames(ws, bob.id, Duration::from_millis(1500)).await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0]["status"], "offline");
        assert!(seen[0]["last_active_at"].as_i64().unwrap() > 0);
    }
    let after = presence_of(&server, &alice.token, bob.id).await;
    assert_eq!(after["status"], "offline");
    let last = after["last_active_at"].as_i64().unwrap();
    // `last_active_at` is stored durably.
    server.restart();
    assert_eq!(presence_of(&server, &alice.token, bob.id).await["last_active_at"], last);
    let (s, b) = server.get("/v1/presence?user_ids=1,x", &alice.token).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")));
    let (_, b) = server.get("/v1/presence?user_ids=424242", &alice.token).await;
    assert_eq!(b["presence"], json!([]));
}

#[tokio::test]
async fn a_silent_client_is_reported_offline_after_the_timeout() {
    let server = TestServer::start_with(&[
        "--heartbeat-interval-ms",
        "200",
        "--heartbeat-timeout-ms",
        "800",
        "--presence-offline-grace-ms",
        "200",
    ]);
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.direct(&alice, &bob).await;
    let (mut a, _) = server.connect(&alice.token).await;
    // Bob's socket stays open but sends nothing, not even pings.
    let (_silent_bob, _) = server.connect(&bob.token).await;
    let mut statuses = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while statuses.last().map(String::as_str) != Some("offline") && tokio::time::Instant::now() < deadline {
        // Alice keeps her own socket alive meanwhile.
        a.send(json!({"type": "ping"})).await;
        for f in presence_frames(&mut a, bob.id, Duration::from_millis(200)).await {
            statuses.push(f["status"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(statuses, vec!["online", "offline"]);
}

#[tokio::test]
async fn contacts_are_listed_added_and_removed() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let (mut a, _) = server.connect(&alice.token).await;
    for user in [&carol, &bob, &bob] {
        let (s, _) = server.call("PUT", &format!("/v1/contacts/{}", user.id), Some(&alice.token), None).await;
        assert_eq!(s, 204);
    }
    // Adding a contact tells the caller's sockets their current status.
    let status = a.next_of("presence").await;
    assert_eq!((status["user_id"].as_i64(), status["status"].as_str()), (Some(carol.id), Some("offline")));
    let (s, b) = server.get("/v1/contacts", &alice.token).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = b["contacts"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["bob", "carol"]);
    let (s, b) = server.call("PUT", "/v1/contacts/424242", Some(&alice.token), None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, _) = server.call("PUT", &format!("/v1/contacts/{}", alice.id), Some(&alice.token), None).await;
    assert_eq!(s, 400);
    let (s, _) = server.call("DELETE", &format!("/v1/contacts/{}", bob.id), Some(&alice.token), None).await;
    assert_eq!(s, 204);
    let (_, b) = server.get("/v1/contacts", &alice.token).await;
    assert_eq!(b["contacts"].as_array().unwrap().len(), 1);
    let (_, b) = server.get("/v1/contacts", &bob.token).await;
    assert_eq!(b["contacts"], json!([]));
}

#[tokio::test]
async fn read_markers_reach_members_and_other_devices_and_never_move_back() {
    let server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    for n in 1..=5 {
        a.send_text(channel, &format!("m{n}"), "hello").await;
    }
    let bob_phone = server.login("bob").await;
    let (mut b1, _) = server.connect(&bob.token).await;
    let (mut b2, _) = server.connect(&bob_phone).await;
    b1.send(json!({"type": "read", "channel_id": channel, "message_id": 3})).await;
    let expected = json!({"type": "read", "channel_id": channel, "user_id": bob.id, "message_id": 3});
    assert_eq!(a.next_of("read").await, expected);
    assert_eq!(b2.next_of("read").await, expected);
    // Backwards: nothing moves, nobody hears anything.
    b2.send(json!({"type": "read", "channel_id": channel, "message_id": 2})).await;
    let (s, _) = server
        .call("PUT", &format!("/v1/channels/{channel}/read"), Some(&bob.token), Some(json!({"message_id": 1})))
        .await;
    assert_eq!(s, 204);
    a.quiet("read", Duration::from_millis(400)).await;
    let (_, ch) = server.get(&format!("/v1/channels/{channel}"), &bob.token).await;
    assert_eq!(ch["channel"]["read_up_to"], 3);
    // Forward over HTTP, past the end: clamped to the last message.
    let (s, _) = server
        .call("PUT", &format!("/v1/channels/{channel}/read"), Some(&bob.token), Some(json!({"message_id": 99})))
        .await;
    assert_eq!(s, 204);
    assert_eq!(a.next_of("read").await["message_id"], 5);
    let (_, ready) = server.connect(&bob.token).await;
    assert_eq!(ready["channels"][0]["read_up_to"], 5);
    assert_eq!(ready["channels"][0]["last_message_id"], 5);
    let (_, ch) = server.get(&format!("/v1/channels/{channel}"), &alice.token).await;
    assert_eq!(ch["channel"]["read_up_to"], 0, "alice's own marker is separate");
    let (s, b) = server
        .call("PUT", &format!("/v1/channels/{channel}/read"), Some(&bob.token), Some(json!({"message_id": "x"})))
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")));
}

#[tokio::test]
async fn typing_is_relayed_to_others_and_rate_limited() {
    let server = TestServer::start_with(&["--typing-rate-per-s", "2"]);
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let group = server.group(&alice, &[&bob, &carol]).await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, _) = server.connect(&bob.token).await;
    let (mut c, _) = server.connect(&carol.token).await;
    a.send(json!({"type": "typing", "channel_id": group})).await;
    let expected = json!({"type": "typing", "channel_id": group, "user_id": alice.id});
    assert_eq!(b.next_of("typing").await, expected);
    assert_eq!(c.next_of("typing").await, expected);
    a.quiet("typing", Duration::from_millis(300)).await;
    a.send(json!({"type": "typing", "channel_id": group})).await;
    a.send(json!({"type": "typing", "channel_id": group, "ref": "t3"})).await;
    let err = a.next_of("error").await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("rate_limited"), Some("t3")));
    // Typing is never stored.
    let (_, page) = server.get(&format!("/v1/channels/{group}/messages"), &bob.token).await;
    assert_eq!(page["messages"], json!([]));
}

#[tokio::test]
async fn search_covers_only_your_channels_newest_first() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let ab = server.direct(&alice, &bob).await;
    let be = server.direct(&bob, &eve).await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, _) = server.connect(&bob.token).await;
    a.send_text(ab, "1", "Lunch at the Café tomorrow?").await;
    b.send_text(be, "2", "eve: lunch is secret").await;
    b.send_text(ab, "3", "yes, lunch sounds good").await;
    for n in 4..9 {
        a.send_text(ab, &format!("{n}"), &format!("lunch option {n}")).await;
    }
    let search = |token: String, q: String| {
        let server = &server;
        async move {
            let (s, body) = server.get(&format!("/v1/search?{q}"), &token).await;
            assert_eq!(s, 200, "{q}: {body}");
            let ids: Vec<String> = body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["client_msg_id"].as_str().unwrap().to_string())
                .collect();
            (ids, body["next_before"].clone())
        }
    };
    let (ids, next) = search(alice.token.clone(), "q=lunch&limit=3".to_string()).await;
    assert_eq!(ids, vec!["8", "7", "6"]);
    let (ids, next) = search(alice.token.clone(), format!("q=lunch&limit=10&before={next}")).await;
    assert_eq!((ids, next), (vec!["5".to_string(), "4".into(), "3".into(), "1".into()], Value::Null));
    // Eve's channel never leaks to Alice; Bob sees both.
    assert_eq!(search(alice.token.clone(), "q=secret".to_string()).await.0, Vec::<String>::new());
    assert_eq!(search(bob.token.clone(), "q=secret".to_string()).await.0, vec!["2"]);
    assert_eq!(search(alice.token.clone(), "q=cafe".to_string()).await.0, vec!["1"], "accents fold");
    let (s, b) = server.get(&format!("/v1/search?q=secret&channel_id={be}"), &alice.token).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
    // A new message is searchable as soon as it is acknowledged.
    a.send_text(ab, "9", "zebra crossing").await;
    assert_eq!(search(bob.token.clone(), "q=zebra".to_string()).await.0, vec!["9"]);
    for bad in ["q=", "q=%20%20", "q=x&limit=0", "q=x&limit=101"] {
        let (s, _) = server.get(&format!("/v1/search?{bad}"), &alice.token).await;
        assert_eq!(s, 400, "{bad}");
    }
    let (s, _) = server.get("/v1/search?q=%22unbalanced%20OR%20(", &alice.token).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn mentions_are_flagged_for_the_mentioned_member_and_listed() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let outsider = server.user("dave").await;
    let group = server.group(&alice, &[&bob, &carol]).await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, _) = server.connect(&bob.token).await;
    let (mut c, _) = server.connect(&carol.token).await;
    a.send_text(group, "m1", "@Bob can you review? (not @dave)").await;
    let for_bob = b.next_of("message").await;
    assert_eq!(for_bob["mentioned"], true);
    let for_carol = c.next_of("message").await;
    assert!(for_carol.get("mentioned").is_none_or(|m| m == false), "{for_carol}");
    let for_alice = a.next_of("message").await;
    assert!(for_alice.get("mentioned").is_none_or(|m| m == false));
    a.send_text(group, "m2", "thanks @bob.").await;
    let (s, list) = server.get("/v1/mentions", &bob.token).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> =
        list["messages"].as_array().unwrap().iter().map(|m| m["client_msg_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["m2", "m1"]);
    assert!(list["messages"].as_array().unwrap().iter().all(|m| m["mentioned"] == true));
    let (_, list) = server.get("/v1/mentions", &outsider.token).await;
    assert_eq!(list["messages"], json!([]));
    // History marks them too, for Bob only.
    let (_, page) = server.get(&format!("/v1/channels/{group}/messages"), &bob.token).await;
    assert_eq!(page["messages"][0]["mentioned"], true);
    let (_, page) = server.get(&format!("/v1/channels/{group}/messages"), &carol.token).await;
    assert!(page["messages"][0].get("mentioned").is_none());
}

#[tokio::test]
async fn discovery_points_at_this_gateway_with_its_load() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let (s, b) = server.get("/v1/discovery", &alice.token).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["servers"].as_array().unwrap().len(), 1);
    assert_eq!(b["servers"][0]["ws_url"], server.ws_url());
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(server.connect(&alice.token).await.0);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, b) = server.get("/v1/discovery", &alice.token).await;
        if b["servers"][0]["load"] == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "load never reached 3: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The advertised URL connects.
    let mut ws = Client::open(&server.ws_url()).await;
    ws.send(json!({"type": "auth", "token": alice.token})).await;
    assert_eq!(ws.next().await["type"], "ready");
}

#[tokio::test]
async fn health_and_metrics() {
    let server = TestServer::start();
    let resp = server.http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (_b, _) = server.connect(&bob.token).await;
    a.send_text(channel, "m", "counted").await;
    a.next_of("message").await;
    let resp = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for line in [
        "chinwag_connections 2",
        "chinwag_users_online 2",
        "chinwag_messages_stored_total 1",
        "chinwag_send_ack_seconds_count 1",
        "chinwag_store_batch_jobs_count",
        "chinwag_store_commit_seconds_bucket",
        "chinwag_slow_consumers_closed_total 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(text.contains("chinwag_messages_delivered_total"));
    assert!(!text.contains("counted"), "metrics never carry message text");
}
