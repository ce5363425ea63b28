//! Overload and abuse limits over real sockets.

mod common;

use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite;

/// Opens a WebSocket from a chosen loopback source address; the HTTP
/// status when the upgrade is refused.
async fn open_from(server: &TestServer, source: [u8; 4]) -> Result<Client, u16> {
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((std::net::Ipv4Addr::from(source), 0).into()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    match tokio_tungstenite::client_async(server.ws_url(), tokio_tungstenite::MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => Ok(Client::from_stream(ws)),
        Err(tungstenite::Error::Http(response)) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
            if response.status() == 503 {
                assert!(response.headers().contains_key("retry-after"), "503 carries Retry-After");
                assert!(body.contains("\"unavailable\"") && body.contains("retry_after_ms"), "{body}");
            }
            Err(response.status().as_u16())
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn connections_are_capped_per_server_per_address_and_per_user() {
    let server = TestServer::start_with(&[
        "--max-connections",
        "4",
        "--max-connections-per-ip",
        "3",
        "--max-connections-per-user",
        "2",
    ]);
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    // Per user: a third authenticated socket is refused with a reason.
    let (_a1, _) = server.connect(&alice.token).await;
    let (_a2, _) = server.connect(&alice.token).await;
    let mut a3 = open_from(&server, [127, 0, 0, 1]).await.unwrap();
    a3.send(json!({"type": "auth", "token": alice.token})).await;
    let err = a3.next_of("error").await;
    assert_eq!(err["code"], "rate_limited");
    assert_eq!(a3.closed().await, Some(1008));
    // Per address: 127.0.0.1 holds 2 once a3's slot is released (just
    // after its close frame went out); one more fits, then 429.
    let mut b1 = {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match open_from(&server, [127, 0, 0, 1]).await {
                Ok(ws) => break ws,
                Err(429) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                Err(status) => panic!("a freed slot was not given back: {status}"),
            }
        }
    };
    b1.send(json!({"type": "auth", "token": bob.token})).await;
    assert_eq!(b1.next_of("ready").await["type"], "ready");
    assert_eq!(open_from(&server, [127, 0, 0, 1]).await.err(), Some(429));
    // Another address still gets in, up to the server's cap (4 open)...
    let _b2 = open_from(&server, [127, 0, 0, 2]).await.unwrap();
    // ...beyond which everyone gets 503 with a retry hint.
    assert_eq!(open_from(&server, [127, 0, 0, 3]).await.err(), Some(503));
    // Existing sockets are unaffected.
    b1.send(json!({"type": "ping"})).await;
    assert_eq!(b1.next_of("pong").await["type"], "pong");
}

#[tokio::test]
async fn logins_and_signups_are_rate_limited() {
    let server = TestServer::start_with(&[
        "--login-rate-per-account-per-min",
        "3",
        "--login-rate-per-account-per-ip-per-min",
        "3",
        "--signup-rate-per-ip-per-min",
        "2",
        "--login-rate-per-ip-per-min",
        "5",
    ]);
    let signup = |name: &'static str| {
        server.call("POST", "/v1/users", None, Some(json!({"username": name, "password": PASSWORD})))
    };
    assert_eq!(signup("alice").await.0, 201);
    assert_eq!(signup("bob").await.0, 201);
    let (s, b) = signup("mallory").await;
    assert_eq!((s, b["error"]["code"].as_str()), (429, Some("rate_limited")));
    assert!(b["error"]["retry_after_ms"].as_u64().unwrap() > 0);
    // Guessing Alice's password: 3 tries per minute, right or wrong.
    let login = |name: &'static str, pw: &'static str| {
        server.call("POST", "/v1/sessions", None, Some(json!({"username": name, "password": pw})))
    };
    for _ in 0..2 {
        assert_eq!(login("alice", "wrong guess").await.0, 401);
    }
    assert_eq!(login("ALICE", PASSWORD).await.0, 201, "the third try still counts");
    let (s, b) = login("alice", PASSWORD).await;
    assert_eq!((s, b["error"]["code"].as_str()), (429, Some("rate_limited")));
    // Bob's account has its own budget, but the address runs out at 5.
    assert_eq!(login("bob", PASSWORD).await.0, 201);
    assert_eq!(login("bob", PASSWORD).await.0, 429, "5 tries from one address");
}

#[tokio::test]
async fn cross_site_pages_cannot_open_websockets() {
    use tungstenite::client::IntoClientRequest;
    let server = TestServer::start_with(&["--allowed-origins", "https://app.example.com"]);
    let host = server.base.trim_start_matches("http://").to_string();
    let try_origin = |origin: Option<String>| {
        let url = server.ws_url();
        async move {
            let mut request = url.into_client_request().unwrap();
            if let Some(origin) = origin {
                request.headers_mut().insert("origin", origin.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok(_) => 101,
                Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(try_origin(Some("http://evil.example".into())).await, 403);
    assert_eq!(try_origin(Some(format!("http://{host}.evil.example"))).await, 403);
    assert_eq!(try_origin(Some(format!("http://{host}"))).await, 101, "the server's own pages");
    assert_eq!(try_origin(Some("https://app.example.com".into())).await, 101, "a listed origin");
    assert_eq!(try_origin(None).await, 101, "non-browser clients send no Origin");
}

/// Whether the server closed `tcp` (read sees end of stream or a reset)
/// within `wait`.
async fn closed_by_server(tcp: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(wait, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_http_clients_cannot_hold_the_server() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start_with(&["--max-http-connections", "20", "--http-header-timeout-ms", "500"]);
    let (alice, bob, channel) = server.alice_and_bob().await;
    // Established WebSockets are past the HTTP stage and keep working.
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, _) = server.connect(&bob.token).await;

    // Slowloris: twenty connections that trickle half a request.
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut trickling = Vec::new();
    for _ in 0..20 {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        trickling.push(tcp);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // The HTTP stage is full: a twenty-first connection is closed at once.
    let mut over = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(closed_by_server(&mut over, std::time::Duration::from_secs(2)).await, "over the cap but served");
    // Meanwhile the chat goes on.
    assert_eq!(a.send_text(channel, "during", "still flowing").await["type"], "ack");
    assert_eq!(b.next_of("message").await["text"], "still flowing");

    // The header deadline frees every slot they held.
    for tcp in &mut trickling {
        let _ = tcp.write_all(b"X-Slow: 1\r\n").await;
        assert!(closed_by_server(tcp, std::time::Duration::from_secs(5)).await, "a trickling client was kept");
    }
    let (status, _) = server.call("GET", "/v1/users/me", Some(&alice.token), None).await;
    assert_eq!(status, 200);
    // An idle keep-alive connection is closed after the same deadline.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(closed_by_server(&mut idle, std::time::Duration::from_secs(5)).await, "idle keep-alive kept open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_limits_see_through_trusted_proxies_only() {
    let signup = |server: &TestServer, name: String, forwarded: Option<&'static str>| {
        let mut request = server
            .http
            .post(format!("{}/v1/users", server.base))
            .json(&json!({"username": name, "password": PASSWORD}));
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Behind a proxy on loopback: each forwarded client has its own budget,
    // and a client cannot forge one by adding entries to the left.
    let proxied =
        TestServer::start_with(&["--signup-rate-per-ip-per-min", "2", "--trusted-proxies", "127.0.0.0/8,::1"]);
    assert_eq!(signup(&proxied, "a1".repeat(2), Some("203.0.113.1")).await, 201);
    assert_eq!(signup(&proxied, "a2".repeat(2), Some("198.51.100.9, 203.0.113.1")).await, 201);
    assert_eq!(signup(&proxied, "a3".repeat(2), Some("192.0.2.77, 203.0.113.1")).await, 429);
    assert_eq!(signup(&proxied, "b1".repeat(2), Some("203.0.113.2")).await, 201);
    // Without trusted proxies the header is ignored: one address, one budget.
    let direct = TestServer::start_with(&["--signup-rate-per-ip-per-min", "2"]);
    assert_eq!(signup(&direct, "c1".repeat(2), Some("203.0.113.1")).await, 201);
    assert_eq!(signup(&direct, "c2".repeat(2), Some("203.0.113.2")).await, 201);
    assert_eq!(signup(&direct, "c3".repeat(2), Some("203.0.113.3")).await, 429);
    // Garbage in the setting stops the server with a reason.
    assert!(serve_refuses(&["--trusted-proxies", "not-a-network"]).contains("trusted_proxies"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_work_is_rate_limited_per_user() {
    let server = TestServer::start_with(&["--request-rate-per-s", "1", "--request-burst", "5"]);
    let (alice, bob, channel) = server.alice_and_bob().await; // alice's first request
    let (mut ws, _) = server.connect(&alice.token).await;
    // Syncs succeed until the burst is spent (a token a second comes back,
    // so allow a slow machine one or two more).
    let mut served = 1;
    let refused = loop {
        ws.send(json!({"type": "sync", "ref": "s", "channel_id": channel, "after": 0})).await;
        let answer = loop {
            let frame = ws.next().await;
            if frame["type"] == "synced" || frame["type"] == "error" {
                break frame;
            }
        };
        if answer["type"] == "error" {
            break answer;
        }
        served += 1;
        assert!(served <= 7, "never limited");
    };
    assert!(served >= 5, "limited before the burst was spent");
    assert_eq!((refused["code"].as_str(), refused["ref"].as_str()), (Some("rate_limited"), Some("s")), "{refused}");
    assert!(refused["retry_after_ms"].as_u64().unwrap() > 0);
    ws.send(json!({"type": "read", "ref": "r1", "channel_id": channel, "message_id": 1})).await;
    assert_eq!(ws.next_of("error").await["code"], "rate_limited");
    let (status, body) = server.get("/v1/channels", &alice.token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    // Sends have their own budget, and other users are untouched.
    assert_eq!(ws.send_text(channel, "m1", "still sending").await["type"], "ack");
    assert_eq!(server.get("/v1/channels", &bob.token).await.0, 200);
}
