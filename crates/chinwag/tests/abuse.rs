//! Abuse paths found by the second outside security review, each closed
//! and checked over real sockets against the real binary.

mod common;

use common::*;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(server: &TestServer) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// A TCP connection to the server from a chosen loopback address.
async fn tcp_from(server: &TestServer, source: [u8; 4]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((std::net::Ipv4Addr::from(source), 0).into()).unwrap();
    socket.connect(addr(server)).await.unwrap()
}

/// Reads until the server closes; the bytes read, or `None` when the
/// connection is still open after `wait`.
async fn read_until_closed(tcp: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(all),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// An HTTP client whose connections come from `source`.
fn http_from(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from(source)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_time_out_and_one_address_cannot_take_the_http_stage() {
    let server = TestServer::start_with(&[
        "--max-http-connections",
        "40",
        "--max-http-connections-per-ip",
        "8",
        "--http-body-timeout-ms",
        "800",
        "--http-body-min-bytes-per-s",
        "1000",
    ]);
    let alice = server.user("alice").await;
    // Eight connections from one address send a body a byte at a time.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut tcp = tcp_from(&server, [127, 0, 0, 7]).await;
        let head =
            "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
        tcp.write_all(head.as_bytes()).await.unwrap();
        slow.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Its share is used up: a ninth from that address is closed at once...
    let mut ninth = tcp_from(&server, [127, 0, 0, 7]).await;
    let _ = ninth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = read_until_closed(&mut ninth, Duration::from_secs(2)).await.expect("closed at once");
    assert!(answer.is_empty(), "served beyond its share");
    // ...while everyone else is served.
    let (status, _) = server.get("/v1/users/me", &alice.token).await;
    assert_eq!(status, 200);
    let other = http_from([127, 0, 0, 8]);
    assert_eq!(other.get(format!("{}/healthz", server.base)).send().await.unwrap().status(), 200);
    // A byte every 300 ms is far below the minimum rate: each body times
    // out with 408 and its slot is freed.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for tcp in &mut slow {
            let _ = tcp.write_all(b" ").await;
        }
    }
    for tcp in &mut slow {
        let answer = read_until_closed(tcp, Duration::from_secs(5)).await.expect("a slow body was kept");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("request_timeout"), "{text}");
    }
    // A body that never starts times out the same way.
    let mut silent = tcp_from(&server, [127, 0, 0, 7]).await;
    silent
        .write_all(
            b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut silent, Duration::from_secs(5)).await.expect("a silent body was kept");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // The address has its share back.
    let again = http_from([127, 0, 0, 7]);
    assert_eq!(again.get(format!("{}/healthz", server.base)).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_bounded_and_a_client_that_does_not_read_is_dropped() {
    let server =
        TestServer::start_with(&["--write-timeout-ms", "500", "--send-rate-per-s", "1000", "--send-burst", "1000"]);
    let (alice, _bob, channel) = server.alice_and_bob().await;
    // Texts of control characters take six bytes each once escaped.
    let long = format!("@bob needle {}", "\u{1}".repeat(99_980));
    for i in 0..12 {
        let (status, body) = server
            .post(
                &format!("/v1/channels/{channel}/messages"),
                &alice.token,
                json!({"client_msg_id": format!("l{i}"), "text": long}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let page_max = chinwag_proto::validate::PAGE_MAX_BYTES + 4096;
    let raw = |path: String| {
        let http = server.http.get(format!("{}{path}", server.base)).bearer_auth(&alice.token);
        async move { http.send().await.unwrap().text().await.unwrap() }
    };
    // Every page stays within the budget and says there is more.
    let history = raw(format!("/v1/channels/{channel}/messages?limit=200")).await;
    assert!(history.len() <= page_max, "history page of {} bytes", history.len());
    let page: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(page["has_more"], true);
    let newest = page["messages"].as_array().unwrap();
    assert_eq!(newest.last().unwrap()["message_id"], 12, "the newest come first when paging back");
    let search = raw("/v1/search?q=needle&limit=100".into()).await;
    assert!(search.len() <= page_max, "search page of {} bytes", search.len());
    assert!(serde_json::from_str::<serde_json::Value>(&search).unwrap()["next_before"].is_i64());
    // `sync` over the socket stops early too and says so.
    let (mut ws, _) = server.connect(&alice.token).await;
    ws.send(json!({"type": "sync", "channel_id": channel, "after": 0, "limit": 200})).await;
    let mut got = 0;
    let synced = loop {
        let frame = ws.next().await;
        if frame["type"] == "synced" {
            break frame;
        }
        got += usize::from(frame["type"] == "message");
    };
    assert!((1..12).contains(&got) && synced["has_more"] == true, "{got} {synced}");

    // A client that pipelines requests and never reads: once the socket
    // buffers are full the server's writes stall, and after the write
    // timeout it drops the connection instead of holding the answers.
    let mut tcp = TcpStream::connect(addr(&server)).await.unwrap();
    let request = format!(
        "GET /v1/channels/{channel}/messages?limit=200 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        alice.token
    );
    for _ in 0..40 {
        tcp.write_all(request.as_bytes()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let read =
        read_until_closed(&mut tcp, Duration::from_secs(10)).await.expect("the stalled connection was kept open");
    assert!(read.len() < 39 * history.len(), "every answer was delivered: {} bytes", read.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_authenticating_while_its_token_is_revoked_never_stays_open() {
    let server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut bob_ws, _) = server.connect(&bob.token).await;
    for round in 0..120 {
        let token = server.login("alice").await;
        let mut ws = Client::open(&server.ws_url()).await;
        let auth = ws.send(json!({"type": "auth", "token": token}));
        let logout = server.call("DELETE", "/v1/sessions/current", Some(&token), None);
        let ((), (status, _)) = tokio::join!(auth, logout);
        assert_eq!(status, 204);
        // Whatever the order, the socket ends closed with 1008: refused at
        // auth, refused at ready, or closed by the revocation.
        let code = ws.closed().await;
        assert_eq!(code, Some(1008), "round {round}: a revoked token kept its socket");
    }
    // The conversation of others went on.
    let (mut alice_ws, _) = server.connect(&alice.token).await;
    assert_eq!(alice_ws.send_text(channel, "after", "still here").await["type"], "ack");
    assert_eq!(bob_ws.next_of("message").await["text"], "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" serve --listen 127.0.0.1:0 --data-dir \"$1\"")
        .arg(env!("CARGO_BIN_EXE_chinwag"))
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let base = line.trim().trim_start_matches("chinwag listening on ").to_string();
    let http = reqwest::Client::new();
    let signup = http.post(format!("{base}/v1/users")).json(&json!({"username": "alice", "password": PASSWORD}));
    assert_eq!(signup.send().await.unwrap().status(), 201);
    let backup = dir.path().join("backup.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["admin", "--data-dir"])
        .arg(&data)
        .arg("backup")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data directory");
    for name in ["chinwag.db", "chinwag.db-wal", "chinwag.db-shm", "vapid.key", "webhook.secret", "admin.sock"] {
        let path = data.join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
    assert!(data.join("chinwag.db-wal").exists(), "the WAL exists while serving");
    assert_eq!(mode(&backup), 0o600, "backup");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_failed_logins_never_lock_the_owner_out() {
    let server = TestServer::start_with(&[
        "--login-rate-per-account-per-ip-per-min",
        "10",
        "--login-rate-per-account-per-min",
        "25",
    ]);
    server.user("alice").await; // logs in once from 127.0.0.1
    let login = |source: [u8; 4], password: &'static str| {
        let request = http_from(source)
            .post(format!("{}/v1/sessions", server.base))
            .json(&json!({"username": "alice", "password": password}));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // One guesser: ten tries, then refused.
    for _ in 0..10 {
        assert_eq!(login([127, 0, 0, 20], "wrong guess!").await, 401);
    }
    assert_eq!(login([127, 0, 0, 20], "wrong guess!").await, 429);
    // The owner, from another address, is not affected.
    assert_eq!(login([127, 0, 0, 21], PASSWORD).await, 201);
    // Many guessers together reach the account's ceiling...
    for source in 22..24 {
        for _ in 0..10 {
            login([127, 0, 0, source], "wrong guess!").await;
        }
    }
    assert_eq!(login([127, 0, 0, 30], PASSWORD).await, 429, "a new address is held to the ceiling");
    // ...but addresses the owner logged in from before are not.
    assert_eq!(login([127, 0, 0, 1], PASSWORD).await, 201);
    assert_eq!(login([127, 0, 0, 21], PASSWORD).await, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sockets_may_send_only_a_little_and_are_few_per_address() {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let server = TestServer::start_with(&["--max-unauthenticated-connections-per-ip", "4"]);
    let alice = server.user("alice").await;
    // A large frame before `auth` closes the socket with 1009.
    let mut big = Client::open(&server.ws_url()).await;
    big.send_raw(Ws::text("x".repeat(64 * 1024))).await;
    assert_eq!(big.closed().await, Some(1009));
    // Four anonymous sockets from one address, then 429...
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(Client::open(&server.ws_url()).await);
    }
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("a fifth anonymous socket was accepted: {:?}", other.map(|_| ())),
    }
    // ...until one authenticates and gives its place back.
    waiting[0].send(json!({"type": "auth", "token": alice.token})).await;
    assert_eq!(waiting[0].next_of("ready").await["type"], "ready");
    let mut fifth = Client::open(&server.ws_url()).await;
    // Authenticated, a socket sends frames up to the full limit.
    fifth.send(json!({"type": "auth", "token": alice.token})).await;
    fifth.next_of("ready").await;
    let channel = server.group(&alice, &[]).await;
    let long = "y".repeat(100_000);
    assert_eq!(fifth.send_text(channel, "long", &long).await["type"], "ack");
}

#[tokio::test]
async fn weak_passwords_and_deceptive_names_are_refused() {
    let server = TestServer::start();
    let signup = |username: &str, password: &str, display_name: Option<&str>| {
        let mut body = json!({"username": username, "password": password});
        if let Some(name) = display_name {
            body["display_name"] = json!(name);
        }
        server.call("POST", "/v1/users", None, Some(body))
    };
    for weak in ["12345678", "password", "Password1!", "qwertyuiop", "zzzzzzzzzz", "mallory99", "MALLORY-rules"] {
        let (status, body) = signup("mallory", weak, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("weak_password")), "{weak}");
    }
    for fake in ["bob\u{202E}evil", "nul\u{0}here", "zero\u{200B}width", "\u{2067}admin", "line\nbreak"] {
        let (status, body) = signup("mallory", PASSWORD, Some(fake)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{fake:?}");
    }
    // Names are stored in NFC and trimmed.
    let (status, body) = signup("zoe", PASSWORD, Some(" Zoe\u{0308} ")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["display_name"], "Zo\u{00EB}");
    let token = server.login("zoe").await;
    let (status, _) =
        server.call("PATCH", "/v1/users/me", Some(&token), Some(json!({"display_name": "a\u{202D}b"}))).await;
    assert_eq!(status, 400);
    let (status, body) = server.post("/v1/channels", &token, json!({"name": "team\u{200F}", "member_ids": []})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn search_with_a_nul_and_keys_reused_across_channels_get_clear_answers() {
    let server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (status, body) = server.get("/v1/search?q=a%00b", &alice.token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    // Mallory reuses Alice's message key against a channel she is not in.
    let (status, _) = server
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &alice.token,
            json!({"client_msg_id": "k1", "text": "private"}),
        )
        .await;
    assert_eq!(status, 201);
    let mallory = server.user("mallory").await;
    let (status, _) = server
        .post(&format!("/v1/channels/{channel}/messages"), &mallory.token, json!({"client_msg_id": "k1", "text": "x"}))
        .await;
    assert_eq!(status, 404, "a foreign channel stays foreign");
    // Bob may use the same key in the same channel: keys are per sender.
    let (status, body) = server
        .post(&format!("/v1/channels/{channel}/messages"), &bob.token, json!({"client_msg_id": "k1", "text": "mine"}))
        .await;
    assert_eq!((status, body["message"]["message_id"].as_i64()), (201, Some(2)));
    // Alice's own key in another channel is a new message there.
    let carol = server.user("carol").await;
    let other = server.direct(&alice, &carol).await;
    let (status, body) = server
        .post(
            &format!("/v1/channels/{other}/messages"),
            &alice.token,
            json!({"client_msg_id": "k1", "text": "hi carol"}),
        )
        .await;
    assert_eq!(
        (status, body["message"]["channel_id"].as_i64(), body["message"]["text"].as_str()),
        (201, Some(other), Some("hi carol"))
    );
}

#[tokio::test]
async fn every_answer_carries_protective_headers_and_the_page_a_policy() {
    let server = TestServer::start();
    let page = server.http.get(format!("{}/", server.base)).send().await.unwrap();
    let header = |r: &reqwest::Response, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let policy = header(&page, "content-security-policy").expect("a CSP on the page");
    for directive in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert_eq!(header(&page, "x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(header(&page, "referrer-policy").as_deref(), Some("no-referrer"));
    for path in ["/", "/app.js", "/healthz", "/v1/users/me", "/no/such/thing"] {
        let answer = server.http.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(header(&answer, "x-content-type-options").as_deref(), Some("nosniff"), "{path}");
    }
}

#[tokio::test]
async fn metrics_can_live_on_a_listener_of_their_own() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_at = format!("127.0.0.1:{port}");
    let server = TestServer::start_with(&["--metrics-listen", &metrics_at]);
    let (status, _) = server.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 404, "not on the public listener");
    let text = reqwest::get(format!("http://{metrics_at}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.contains("chinwag_connections"), "{text}");
    let public = TestServer::start();
    let (status, _) = public.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 200, "public by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_left_a_group_is_invited_back_not_added() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let group = server.group(&alice, &[&bob]).await;
    let (mut b, _) = server.connect(&bob.token).await;
    let (status, _) =
        server.call("DELETE", &format!("/v1/channels/{group}/members/{}", bob.id), Some(&bob.token), None).await;
    assert_eq!(status, 204);
    b.next_of("channel_removed").await;
    // Alice cannot put him back; she invites him.
    let (status, body) =
        server.post(&format!("/v1/channels/{group}/members"), &alice.token, json!({"user_id": bob.id})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["invitation"]["channel_id"], group);
    let invited = b.next_of("invitation").await;
    assert_eq!(
        (invited["invitation"]["channel_id"].as_i64(), invited["invitation"]["invited_by"].as_i64()),
        (Some(group), Some(alice.id))
    );
    assert_eq!(server.get(&format!("/v1/channels/{group}"), &bob.token).await.0, 404, "not a member until he accepts");
    let (_, list) = server.get("/v1/invitations", &bob.token).await;
    assert_eq!(list["invitations"].as_array().unwrap().len(), 1);
    // He accepts and is in again; declining works the same way.
    let (status, body) = server.call("POST", &format!("/v1/invitations/{group}"), Some(&bob.token), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["channel"]["member_ids"].as_array().unwrap().contains(&json!(bob.id)));
    assert_eq!(b.next_of("channel").await["channel"]["id"], group);
    server.call("DELETE", &format!("/v1/channels/{group}/members/{}", bob.id), Some(&bob.token), None).await;
    server.post(&format!("/v1/channels/{group}/members"), &alice.token, json!({"user_id": bob.id})).await;
    assert_eq!(server.call("DELETE", &format!("/v1/invitations/{group}"), Some(&bob.token), None).await.0, 204);
    assert_eq!(server.call("POST", &format!("/v1/invitations/{group}"), Some(&bob.token), None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_user_cannot_message_add_or_watch_the_blocker() {
    let server = TestServer::start_with(&["--presence-offline-grace-ms", "100"]);
    let (alice, bob, channel) = server.alice_and_bob().await;
    let mallory = server.user("mallory").await;
    let (status, _) = server.call("PUT", &format!("/v1/blocks/{}", mallory.id), Some(&alice.token), None).await;
    assert_eq!(status, 204);
    let (_, list) = server.get("/v1/blocks", &alice.token).await;
    assert_eq!(list["blocks"][0]["id"], mallory.id);
    let forbidden = |(status, body): (u16, serde_json::Value)| {
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    };
    forbidden(server.post("/v1/channels/direct", &mallory.token, json!({"user_id": alice.id})).await);
    forbidden(server.post("/v1/channels", &mallory.token, json!({"name": "trap", "member_ids": [alice.id]})).await);
    let trap = server.group(&mallory, &[&bob]).await;
    forbidden(server.post(&format!("/v1/channels/{trap}/members"), &mallory.token, json!({"user_id": alice.id})).await);
    let (mut m, _) = server.connect(&mallory.token).await;
    m.send(json!({"type": "send", "client_msg_id": "x", "to_user_id": alice.id, "text": "hi"})).await;
    assert_eq!(m.next_of("error").await["code"], "forbidden");
    // Presence: Mallory shares a group with Bob, but sees nothing of Alice.
    let (mut a, _) = server.connect(&alice.token).await;
    let (_, presence) = server.get(&format!("/v1/presence?user_ids={}", alice.id), &mallory.token).await;
    assert_eq!(
        (presence["presence"][0]["status"].as_str(), presence["presence"][0]["last_active_at"].is_null()),
        (Some("offline"), true)
    );
    // A block between people who talk already stops their direct channel.
    server.call("PUT", &format!("/v1/blocks/{}", alice.id), Some(&bob.token), None).await;
    assert_eq!(a.send_text(channel, "blocked", "hello?").await["code"], "forbidden");
    server.call("DELETE", &format!("/v1/blocks/{}", alice.id), Some(&bob.token), None).await;
    assert_eq!(a.send_text(channel, "unblocked", "hello!").await["type"], "ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_shown_only_to_fellow_members_and_accepted_contacts() {
    let server = TestServer::start_with(&["--presence-offline-grace-ms", "100"]);
    let (alice, bob, _) = server.alice_and_bob().await;
    let stranger = server.user("stranger").await;
    let friend = server.user("friend").await;
    // The stranger follows Alice without her consent; the friend too, and
    // Alice adds the friend back.
    for who in [&stranger, &friend] {
        server.call("PUT", &format!("/v1/contacts/{}", alice.id), Some(&who.token), None).await;
    }
    server.call("PUT", &format!("/v1/contacts/{}", friend.id), Some(&alice.token), None).await;
    let (mut s, _) = server.connect(&stranger.token).await;
    let (mut f, _) = server.connect(&friend.token).await;
    let (mut b, _) = server.connect(&bob.token).await;
    let (_a, _) = server.connect(&alice.token).await;
    let online = |frame: serde_json::Value| frame["user_id"] == alice.id && frame["status"] == "online";
    assert!(online(b.next_of("presence").await), "a fellow member sees her");
    assert!(online(f.next_of("presence").await), "an accepted contact sees her");
    s.quiet("presence", Duration::from_millis(500)).await;
    let ask = |token: String| {
        let server = &server;
        async move {
            let (_, body) = server.get(&format!("/v1/presence?user_ids={}", alice.id), &token).await;
            (
                body["presence"][0]["status"].as_str().unwrap().to_string(),
                body["presence"][0]["last_active_at"].is_null(),
            )
        }
    };
    assert_eq!(ask(stranger.token.clone()).await, ("offline".to_string(), true), "a stranger learns nothing");
    assert_eq!(ask(bob.token.clone()).await, ("online".to_string(), false));
    assert_eq!(ask(friend.token.clone()).await, ("online".to_string(), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_can_be_buried_in_channels() {
    let server = TestServer::start_with(&["--max-channels-per-user", "3"]);
    let victim = server.user("victim").await;
    for n in 0..3 {
        let attacker = server.user(&format!("attacker{n}")).await;
        server.group(&attacker, &[&victim]).await;
    }
    let mallory = server.user("mallory").await;
    let (status, body) =
        server.post("/v1/channels", &mallory.token, json!({"name": "more", "member_ids": [victim.id]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, _) = server.post("/v1/channels/direct", &mallory.token, json!({"user_id": victim.id})).await;
    assert_eq!(status, 403);
    // The victim leaves one, and is free again (only to be invited back there).
    let (_, list) = server.get("/v1/channels", &victim.token).await;
    let first = list["channels"][0]["id"].as_i64().unwrap();
    server.call("DELETE", &format!("/v1/channels/{first}/members/{}", victim.id), Some(&victim.token), None).await;
    let (status, _) = server.post("/v1/channels/direct", &victim.token, json!({"user_id": mallory.id})).await;
    assert_eq!(status, 201);
    // An existing channel can always be opened, even at the cap.
    let (status, _) = server.post("/v1/channels/direct", &mallory.token, json!({"user_id": victim.id})).await;
    assert_eq!(status, 200);
}
