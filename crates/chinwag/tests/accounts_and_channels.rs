//! Accounts, sessions and channels over real HTTP and WebSocket connections.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn signup_validates_and_usernames_are_case_insensitive() {
    let server = TestServer::start();
    let signup = |body| server.call("POST", "/v1/users", None, Some(body));
    let (s, b) = signup(json!({"username": "Alice.W_1", "password": PASSWORD, "display_name": "Alice W"})).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["user"]["username"], "alice.w_1");
    assert_eq!(b["user"]["display_name"], "Alice W");
    assert!(b["user"]["created_at"].as_i64().unwrap() > 1_700_000_000_000);
    let (s, b) = signup(json!({"username": "ALICE.w_1", "password": PASSWORD})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("username_taken")));
    for bad in ["ab", "has space", "x".repeat(33).as_str(), "émile", "semi;colon"] {
        let (s, b) = signup(json!({"username": bad, "password": PASSWORD})).await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_username")), "{bad}");
    }
    let (s, b) = signup(json!({"username": "shortpw", "password": "1234567"})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("weak_password")));
    let (s, b) = signup(json!({"username": "longname", "password": PASSWORD, "display_name": "x".repeat(65)})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")));
    let (s, b) = signup(json!({"username": 5, "password": PASSWORD})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")));
    let (s, b) = signup(json!({"password": PASSWORD})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")));
    // Login is case-insensitive too, and each login is a new device.
    let (s, b) = server
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"username": "Alice.W_1", "password": PASSWORD, "device_name": "phone"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let first_device = b["device_id"].as_i64().unwrap();
    assert_eq!(b["user"]["username"], "alice.w_1");
    let (_, b2) =
        server.call("POST", "/v1/sessions", None, Some(json!({"username": "alice.w_1", "password": PASSWORD}))).await;
    assert_ne!(b2["device_id"].as_i64().unwrap(), first_device);
    assert_ne!(b2["token"], b["token"]);
    for (user, pw) in [("alice.w_1", "wrong password"), ("nobody", PASSWORD)] {
        let (s, b) = server.call("POST", "/v1/sessions", None, Some(json!({"username": user, "password": pw}))).await;
        assert_eq!((s, b["error"]["code"].as_str()), (401, Some("unauthorized")));
    }
}

#[tokio::test]
async fn profiles_and_lookups() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (s, b) = server.get("/v1/users/me", &alice.token).await;
    assert_eq!((s, b["user"]["id"].as_i64()), (200, Some(alice.id)));
    let (s, b) =
        server.call("PATCH", "/v1/users/me", Some(&alice.token), Some(json!({"display_name": "Alice 🌸"}))).await;
    assert_eq!((s, b["user"]["display_name"].as_str()), (200, Some("Alice 🌸")));
    let (s, b) = server.get(&format!("/v1/users/{}", bob.id), &alice.token).await;
    assert_eq!((s, b["user"]["username"].as_str()), (200, Some("bob")));
    assert!(b["user"].get("password_hash").is_none());
    let (s, b) = server.get("/v1/users?username=BOB", &alice.token).await;
    assert_eq!((s, b["user"]["id"].as_i64()), (200, Some(bob.id)));
    let (s, b) = server.get("/v1/users?username=nobody", &alice.token).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, _) = server.get("/v1/users/999999", &alice.token).await;
    assert_eq!(s, 404);
    let (s, b) = server.get("/v1/users/abc", &alice.token).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")));
    for token in [None, Some("not-a-token")] {
        let (s, b) = server.call("GET", "/v1/users/me", token, None).await;
        assert_eq!((s, b["error"]["code"].as_str()), (401, Some("unauthorized")));
    }
    let (s, b) = server.call("GET", "/v1/no/such/endpoint", None, None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn logout_revokes_at_once_and_closes_that_devices_socket() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let other_device = server.login("alice").await;
    let (mut doomed, _) = server.connect(&alice.token).await;
    let (mut survivor, _) = server.connect(&other_device).await;
    let (s, _) = server.call("DELETE", "/v1/sessions/current", Some(&alice.token), None).await;
    assert_eq!(s, 204);
    assert_eq!(doomed.closed().await, Some(1008));
    let (s, _) = server.get("/v1/users/me", &alice.token).await;
    assert_eq!(s, 401);
    // The revoked token cannot open a socket; the other device is untouched.
    let mut again = Client::open(&server.ws_url()).await;
    again.send(json!({"type": "auth", "token": alice.token})).await;
    let err = again.next().await;
    assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("unauthorized")));
    assert_eq!(again.closed().await, Some(1008));
    survivor.send(json!({"type": "ping"})).await;
    assert_eq!(survivor.next().await["type"], "pong");
    let (s, _) = server.get("/v1/users/me", &other_device).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn direct_channels_are_idempotent_and_groups_are_bounded() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (s, first) = server.post("/v1/channels/direct", &alice.token, json!({"user_id": bob.id})).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["channel"]["kind"], "direct");
    assert_eq!(first["channel"]["member_ids"], json!([alice.id, bob.id]));
    assert_eq!(first["channel"]["last_message_id"], 0);
    assert_eq!(first["channel"]["read_up_to"], 0);
    let (s, again) = server.post("/v1/channels/direct", &bob.token, json!({"user_id": alice.id})).await;
    assert_eq!((s, &again["channel"]["id"]), (200, &first["channel"]["id"]));
    let (s, b) = server.post("/v1/channels/direct", &alice.token, json!({"user_id": 424242})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));

    // 99 others + the creator = 100 is the limit.
    let mut ids = Vec::new();
    for i in 0..100 {
        let (s, b) = server
            .call("POST", "/v1/users", None, Some(json!({"username": format!("member{i}"), "password": PASSWORD})))
            .await;
        assert_eq!(s, 201);
        ids.push(b["user"]["id"].as_i64().unwrap());
    }
    let (s, b) = server.post("/v1/channels", &alice.token, json!({"name": "too big", "member_ids": ids})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("group_too_large")));
    let (s, b) = server.post("/v1/channels", &alice.token, json!({"name": "full", "member_ids": &ids[..99]})).await;
    assert_eq!(s, 201, "{b}");
    let full = b["channel"]["id"].as_i64().unwrap();
    assert_eq!(b["channel"]["member_ids"].as_array().unwrap().len(), 100);
    assert_eq!(b["channel"]["kind"], "group");
    assert_eq!(b["channel"]["name"], "full");
    let (s, b) = server.post(&format!("/v1/channels/{full}/members"), &alice.token, json!({"user_id": bob.id})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("group_too_large")));
    let (s, b) = server.post("/v1/channels", &alice.token, json!({"name": "", "member_ids": []})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")));
    let (s, b) = server.post("/v1/channels", &alice.token, json!({"name": "ghosts", "member_ids": [424242]})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, b) = server.get("/v1/channels", &alice.token).await;
    assert_eq!((s, b["channels"].as_array().unwrap().len()), (200, 2));
}

#[tokio::test]
async fn members_join_and_leave_with_live_events() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let group = server.group(&alice, &[&bob]).await;
    let (mut carol_ws, ready) = server.connect(&carol.token).await;
    assert_eq!(ready["channels"], json!([]));
    let (mut bob_ws, _) = server.connect(&bob.token).await;

    // Any member may add; the newcomer's sockets hear of it at once.
    let (s, b) = server.post(&format!("/v1/channels/{group}/members"), &bob.token, json!({"user_id": carol.id})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["channel"]["member_ids"], json!([alice.id, bob.id, carol.id]));
    let event = carol_ws.next_of("channel").await;
    assert_eq!(event["channel"]["id"], group);
    let update = bob_ws.next_of("channel").await;
    assert_eq!(update["channel"]["member_ids"].as_array().unwrap().len(), 3);

    // Carol now gets the group's messages live.
    let mut alice_ws = server.connect(&alice.token).await.0;
    let ack = alice_ws.send_text(group, "m1", "hello all").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(carol_ws.next_of("message").await["text"], "hello all");

    // Only the creator removes others; members may leave.
    let (s, b) =
        server.call("DELETE", &format!("/v1/channels/{group}/members/{}", carol.id), Some(&bob.token), None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")));
    let (s, _) =
        server.call("DELETE", &format!("/v1/channels/{group}/members/{}", carol.id), Some(&alice.token), None).await;
    assert_eq!(s, 204);
    let removed = carol_ws.next_of("channel_removed").await;
    assert_eq!(removed["channel_id"], group);
    // From now on carol's socket gets nothing of the group, and she can't see it.
    alice_ws.send_text(group, "m2", "carol is gone").await;
    carol_ws.quiet("message", Duration::from_millis(500)).await;
    let (s, _) = server.get(&format!("/v1/channels/{group}"), &carol.token).await;
    assert_eq!(s, 404);
    let (s, _) =
        server.call("DELETE", &format!("/v1/channels/{group}/members/{}", bob.id), Some(&bob.token), None).await;
    assert_eq!(s, 204);
    assert_eq!(bob_ws.next_of("channel_removed").await["channel_id"], group);
    let (s, b) = server.get(&format!("/v1/channels/{group}"), &alice.token).await;
    assert_eq!((s, b["channel"]["member_ids"].clone()), (200, json!([alice.id])));

    // Direct channels have fixed members.
    let direct = server.direct(&alice, &bob).await;
    let (s, b) =
        server.post(&format!("/v1/channels/{direct}/members"), &alice.token, json!({"user_id": carol.id})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")));
}

#[tokio::test]
async fn non_members_learn_nothing_about_a_channel() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let direct = server.direct(&alice, &bob).await;
    let (mut alice_ws, _) = server.connect(&alice.token).await;
    alice_ws.send_text(direct, "secret", "for bob only").await;

    let missing = 999_999;
    for channel in [direct, missing] {
        let paths = [
            ("GET", format!("/v1/channels/{channel}"), None),
            ("GET", format!("/v1/channels/{channel}/messages"), None),
            ("POST", format!("/v1/channels/{channel}/messages"), Some(json!({"client_msg_id": "x", "text": "hi"}))),
            ("POST", format!("/v1/channels/{channel}/members"), Some(json!({"user_id": eve.id}))),
            ("DELETE", format!("/v1/channels/{channel}/members/{}", bob.id), None),
            ("PUT", format!("/v1/channels/{channel}/read"), Some(json!({"message_id": 1}))),
        ];
        for (method, path, body) in paths {
            let (s, b) = server.call(method, &path, Some(&eve.token), body).await;
            assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")), "{method} {path}: {b}");
        }
    }
    let (mut eve_ws, _) = server.connect(&eve.token).await;
    for frame in [
        json!({"type": "send", "client_msg_id": "e1", "channel_id": direct, "text": "let me in"}),
        json!({"type": "sync", "channel_id": direct, "after": 0}),
        json!({"type": "read", "channel_id": direct, "message_id": 1}),
        json!({"type": "typing", "channel_id": direct}),
    ] {
        eve_ws.send(frame.clone()).await;
        let err = eve_ws.next_of("error").await;
        assert_eq!(err["code"], "not_found", "{frame} -> {err}");
        assert!(!err.to_string().contains("for bob only"));
    }
    let (_, b) = server.get(&format!("/v1/channels/{direct}/messages"), &bob.token).await;
    assert_eq!(b["messages"].as_array().unwrap().len(), 1);
}
