//! Push notifications to real local HTTP receivers: a webhook receiver that
//! checks the HMAC, and a Web Push receiver that checks the VAPID signature
//! and decrypts the payload the way a browser does (RFC 8291).

mod common;

use aes_gcm::aead::{Aead, KeyInit};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::*;
use hmac::Mac;
use p256::ecdsa::signature::Verifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The receivers are on loopback, which a default server refuses to push
/// to (see `private_push_targets_are_refused_by_default`).
const FAST: &[&str] = &[
    "--push-coalesce-ms",
    "400",
    "--push-retry-base-ms",
    "100",
    "--presence-offline-grace-ms",
    "100",
    "--push-private-targets",
    "true",
];

#[derive(Clone, Debug)]
struct Hit {
    headers: HeaderMap,
    body: Bytes,
}

/// A local HTTP endpoint that records requests and answers from a plan.
#[derive(Clone)]
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Statuses to answer with, in order; 201 once empty.
    plan: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Default::default();
        let plan: Arc<Mutex<VecDeque<u16>>> = Default::default();
        let (h, p) = (hits.clone(), plan.clone());
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let (h, p) = (h.clone(), p.clone());
            async move {
                h.lock().unwrap().push(Hit { headers, body });
                let status = p.lock().unwrap().pop_front().unwrap_or(201);
                StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, hits, plan }
    }

    fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    /// Waits until `n` requests arrived, then checks no more come for `quiet`.
    async fn expect(&self, n: usize, quiet: Duration) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.count() < n {
            assert!(tokio::time::Instant::now() < deadline, "expected {n} pushes, got {}", self.count());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(quiet).await;
        let hits = self.hits.lock().unwrap().clone();
        assert_eq!(hits.len(), n, "more pushes than expected: {hits:?}");
        hits
    }
}

async fn register(server: &TestServer, token: &str, target: Value) {
    let (s, b) = server.call("PUT", "/v1/devices/current/push", Some(token), Some(target)).await;
    assert_eq!(s, 204, "{b}");
}

/// Verifies a webhook as a receiver should: the MAC over
/// "<timestamp>.<body>" under the target's key, and a recent timestamp.
fn webhook_body(hit: &Hit, secret: &str) -> Value {
    let timestamp = hit.headers["x-chinwag-timestamp"].to_str().unwrap();
    let sent_at: i64 = timestamp.parse().unwrap();
    assert!((chinwag_proto::now_ms() - sent_at).abs() < 5 * 60 * 1000, "timestamp out of the replay window");
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&hit.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hit.headers["x-chinwag-signature"].to_str().unwrap(), expected, "HMAC must verify");
    serde_json::from_slice(&hit.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_members_get_one_signed_webhook_per_burst_and_online_ones_none() {
    let server = TestServer::start_with(FAST);
    let receiver = Receiver::start().await;
    let (alice, bob, channel) = server.alice_and_bob().await;
    register(
        &server,
        &bob.token,
        json!({"kind": "webhook", "url": format!("{}/bob", receiver.url), "secret": "s3cret"}),
    )
    .await;
    // Alice has a target too: she must never be notified of her own messages.
    register(
        &server,
        &alice.token,
        json!({"kind": "webhook", "url": format!("{}/alice", receiver.url), "secret": "x"}),
    )
    .await;
    let (mut a, _) = server.connect(&alice.token).await;
    for (n, text) in ["first", "second", "third"].iter().enumerate() {
        a.send_text(channel, &format!("b{n}"), text).await;
    }
    let hits = receiver.expect(1, Duration::from_millis(1200)).await;
    let note = webhook_body(&hits[0], "s3cret");
    assert_eq!(note["recipient_id"], bob.id);
    assert_eq!(note["sender_id"], alice.id);
    assert_eq!(note["sender_name"], "alice");
    assert_eq!(note["channel_id"], channel);
    assert_eq!(note["message_id"], 3);
    assert_eq!(note["preview"], "third");
    assert_eq!(note["count"], 3);

    // Online: no push.
    let (mut b, _) = server.connect(&bob.token).await;
    a.send_text(channel, "on1", "you are online").await;
    b.next_of("message").await;
    receiver.expect(1, Duration::from_millis(1200)).await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Muted: no push; unmuted: pushes again, with the preview cut short.
    let (s, _) = server
        .call("PUT", &format!("/v1/channels/{channel}/mute"), Some(&bob.token), Some(json!({"muted": true})))
        .await;
    assert_eq!(s, 204);
    a.send_text(channel, "m1", "muted").await;
    receiver.expect(1, Duration::from_millis(1200)).await;
    server.call("PUT", &format!("/v1/channels/{channel}/mute"), Some(&bob.token), Some(json!({"muted": false}))).await;
    a.send_text(channel, "m2", &"long ".repeat(100)).await;
    let hits = receiver.expect(2, Duration::from_millis(300)).await;
    let note = webhook_body(&hits[1], "s3cret");
    assert_eq!(note["preview"].as_str().unwrap().chars().count(), 100);
    assert_eq!(note["count"], 1);
    let (s, _) = server
        .call("PUT", &format!("/v1/channels/{channel}/mute"), Some(&alice.token), Some(json!({"muted": "yes"})))
        .await;
    assert_eq!(s, 400);

    // What a message carries is named in the preview.
    let mut ids = Vec::new();
    for (name, content_type, bytes) in [
        ("cat.png", "image/png", chinwag_media::testdata::png(8, 8)),
        ("report.pdf", "application/pdf", b"%PDF-1.7".to_vec()),
    ] {
        let answer = server
            .http
            .post(format!("{}/v1/uploads?filename={name}", server.base))
            .bearer_auth(&alice.token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        ids.push(answer.json::<Value>().await.unwrap()["upload"]["id"].clone());
    }
    a.send(
        json!({"type": "send", "client_msg_id": "files", "channel_id": channel, "text": "look", "attachments": ids}),
    )
    .await;
    let hits = receiver.expect(3, Duration::from_millis(300)).await;
    assert_eq!(webhook_body(&hits[2], "s3cret")["preview"], "📷 Photo 📎 report.pdf look");

    // Logging out unregisters the device.
    server.call("DELETE", "/v1/sessions/current", Some(&bob.token), None).await;
    a.send_text(channel, "after", "after logout").await;
    receiver.expect(3, Duration::from_millis(1200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_and_gone_targets_are_unregistered() {
    let server = TestServer::start_with(FAST);
    let receiver = Receiver::start().await;
    let (alice, bob, channel) = server.alice_and_bob().await;
    register(&server, &bob.token, json!({"kind": "webhook", "url": receiver.url, "secret": "k"})).await;
    let (mut a, _) = server.connect(&alice.token).await;
    receiver.plan.lock().unwrap().extend([500, 503]);
    a.send_text(channel, "r1", "keep trying").await;
    let hits = receiver.expect(3, Duration::from_millis(800)).await;
    for hit in &hits {
        assert_eq!(webhook_body(hit, "k")["preview"], "keep trying");
    }
    // 410: the target is dropped, so the next message pushes nothing.
    receiver.plan.lock().unwrap().push_back(410);
    a.send_text(channel, "g1", "gone").await;
    receiver.expect(4, Duration::from_millis(300)).await;
    a.send_text(channel, "g2", "nobody listens").await;
    receiver.expect(4, Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_notifications_survive_a_restart() {
    let mut server = TestServer::start_with(&[
        "--push-coalesce-ms",
        "100",
        "--push-retry-base-ms",
        "300",
        "--push-private-targets",
        "true",
    ]);
    let receiver = Receiver::start().await;
    let (alice, bob, channel) = server.alice_and_bob().await;
    register(&server, &bob.token, json!({"kind": "webhook", "url": receiver.url, "secret": "k"})).await;
    receiver.plan.lock().unwrap().extend([503; 100]);
    let (mut a, _) = server.connect(&alice.token).await;
    a.send_text(channel, "p1", "deliver me later").await;
    receiver.expect(1, Duration::ZERO).await;
    server.kill();
    receiver.plan.lock().unwrap().clear();
    let before = receiver.count();
    server.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let hits = receiver.hits.lock().unwrap().clone();
        if hits.len() > before {
            assert_eq!(webhook_body(hits.last().unwrap(), "k")["preview"], "deliver me later");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The browser side of RFC 8291: decrypts an `aes128gcm` push body.
fn decrypt(body: &[u8], ua_secret: &p256::SecretKey, auth: &[u8; 16]) -> Vec<u8> {
    let salt = &body[..16];
    let idlen = body[20] as usize;
    let as_public = p256::PublicKey::from_sec1_bytes(&body[21..21 + idlen]).unwrap();
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_secret.public_key().to_encoded_point(false).as_bytes());
    info.extend_from_slice(&body[21..21 + idlen]);
    let mut ikm = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(auth), shared.raw_secret_bytes()).expand(&info, &mut ikm).unwrap();
    let prk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).unwrap();
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).unwrap();
    let mut plain = aes_gcm::Aes128Gcm::new(&cek.into())
        .decrypt(aes_gcm::Nonce::from_slice(&nonce), &body[21 + idlen..])
        .expect("the payload decrypts with the subscription's keys");
    // Strip the padding: everything from the last 0x02 delimiter on.
    let end = plain.iter().rposition(|&b| b == 2).expect("record delimiter");
    plain.truncate(end);
    plain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_push_is_vapid_signed_and_decrypts_with_the_subscription_keys() {
    let server = TestServer::start_with(FAST);
    let receiver = Receiver::start().await;
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (s, key) = server.call("GET", "/v1/push/vapid-public-key", None, None).await;
    assert_eq!(s, 200);
    let vapid_key = key["public_key"].as_str().unwrap().to_string();

    // A browser's subscription: its own key pair and auth secret.
    let ua_secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let auth: [u8; 16] = rand::random();
    let p256dh = B64.encode(ua_secret.public_key().to_encoded_point(false).as_bytes());
    for bad in [
        json!({"kind": "webpush", "endpoint": format!("{}/wp", receiver.url), "keys": {"p256dh": "AAAA", "auth": B64.encode(auth)}}),
        json!({"kind": "webpush", "endpoint": "ftp://example.com/x", "keys": {"p256dh": p256dh, "auth": B64.encode(auth)}}),
        json!({"kind": "carrier-pigeon"}),
        json!({"url": "http://example.com"}),
    ] {
        let (s, b) = server.call("PUT", "/v1/devices/current/push", Some(&bob.token), Some(bad.clone())).await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")), "{bad}");
    }
    register(
        &server,
        &bob.token,
        json!({
            "kind": "webpush",
            "endpoint": format!("{}/wp/subscription-1", receiver.url),
            "keys": {"p256dh": p256dh, "auth": B64.encode(auth)},
        }),
    )
    .await;
    let (mut a, _) = server.connect(&alice.token).await;
    a.send_text(channel, "w1", "secret lunch plans 🍉").await;
    let hits = receiver.expect(1, Duration::from_millis(300)).await;
    let hit = &hits[0];
    assert_eq!(hit.headers["content-encoding"], "aes128gcm");
    assert!(hit.headers["ttl"].to_str().unwrap().parse::<u64>().unwrap() > 0);

    // VAPID: the JWT is signed by the advertised key for this push service.
    let authorization = hit.headers["authorization"].to_str().unwrap();
    let rest = authorization.strip_prefix("vapid t=").expect("vapid scheme");
    let (jwt, k) = rest.split_once(", k=").unwrap();
    assert_eq!(k, vapid_key);
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&B64.decode(k).unwrap()).unwrap();
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&B64.decode(signature).unwrap()).unwrap();
    verifying.verify(signed.as_bytes(), &signature).expect("VAPID signature verifies");
    let (header, claims) = signed.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&B64.decode(header).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&B64.decode(claims).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["aud"], receiver.url);
    assert!(claims["exp"].as_i64().unwrap() > chinwag_proto_now_s());
    assert!(claims["sub"].as_str().unwrap().starts_with("mailto:"));

    // The body decrypts to the notification, and the text is there.
    let note: Value = serde_json::from_slice(&decrypt(&hit.body, &ua_secret, &auth)).unwrap();
    assert_eq!(note["preview"], "secret lunch plans 🍉");
    assert_eq!(note["sender_name"], "alice");
    assert!(!String::from_utf8_lossy(&hit.body).contains("lunch"), "the body is encrypted");
    // DELETE unregisters.
    let (s, _) = server.call("DELETE", "/v1/devices/current/push", Some(&bob.token), None).await;
    assert_eq!(s, 204);
    a.send_text(channel, "w2", "no one hears").await;
    receiver.expect(1, Duration::from_millis(1200)).await;
}

fn chinwag_proto_now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_push_targets_are_refused_by_default() {
    let mut server = TestServer::start_with(&["--push-coalesce-ms", "100", "--presence-offline-grace-ms", "100"]);
    let receiver = Receiver::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let port = receiver.url.rsplit(':').next().unwrap().to_string();
    for url in [
        receiver.url.clone(),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://10.0.0.1/hook".to_string(),
        // IPv6 forms that embed an IPv4 address.
        format!("http://[::127.0.0.1]:{port}/hook"),
        format!("http://[::ffff:0:7f00:1]:{port}/hook"),
        format!("http://[2002:7f00:1::1]:{port}/hook"),
        format!("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]:{port}/hook"),
        format!("http://[64:ff9b::7f00:1]:{port}/hook"),
    ] {
        let (s, b) = server
            .call("PUT", "/v1/devices/current/push", Some(&bob.token), Some(json!({"kind": "webhook", "url": url})))
            .await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")), "{url}: {b}");
        // One answer for every refusal: nothing about what a name resolved to.
        assert_eq!(b["error"]["message"], "push target not allowed", "{url}: {b}");
    }

    // A target registered while the operator allowed private ones is not
    // pushed to once they stop allowing them.
    server.set_args(&[
        "--push-coalesce-ms",
        "100",
        "--presence-offline-grace-ms",
        "100",
        "--push-private-targets",
        "true",
    ]);
    server.restart();
    register(&server, &bob.token, json!({"kind": "webhook", "url": receiver.url})).await;
    server.set_args(&["--push-coalesce-ms", "100", "--presence-offline-grace-ms", "100"]);
    server.restart();
    let channel = server.direct(&alice, &bob).await;
    let (mut a, _) = server.connect(&alice.token).await;
    assert_eq!(a.send_text(channel, "p1", "anyone home?").await["type"], "ack");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 0, "pushed to a private address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_without_a_key_get_one_of_their_own() {
    let server = TestServer::start_with(FAST);
    let receiver = Receiver::start().await;
    let (alice, bob, channel) = server.alice_and_bob().await;
    let carol = server.user("carol").await;
    let carol_channel = server.direct(&alice, &carol).await;
    for who in [&bob, &carol] {
        register(&server, &who.token, json!({"kind": "webhook", "url": format!("{}/{}", receiver.url, who.name)}))
            .await;
    }
    let mut keys = Vec::new();
    for who in [&bob, &carol] {
        let (status, body) = server.get("/v1/devices/current/push", &who.token).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["target"]["kind"], "webhook");
        keys.push(body["target"]["secret"].as_str().expect("a key was made").to_string());
    }
    let (bob_key, carol_key) = (keys[0].clone(), keys[1].clone());
    assert!(bob_key.len() >= 32 && bob_key != carol_key, "each target has its own key");
    let (mut a, _) = server.connect(&alice.token).await;
    a.send_text(channel, "k1", "for bob").await;
    a.send_text(carol_channel, "k2", "for carol").await;
    let hits = receiver.expect(2, Duration::from_millis(300)).await;
    for hit in &hits {
        let note: Value = serde_json::from_slice(&hit.body).unwrap();
        let key = if note["recipient_id"] == bob.id { &bob_key } else { &carol_key };
        webhook_body(hit, key);
    }
    // Nobody else reads a device's key, and a device without a target has none.
    let (status, _) = server.get("/v1/devices/current/push", &alice.token).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_delays_nobody_else() {
    let mut args = FAST.to_vec();
    args.extend(["--push-timeout-ms", "1500"]);
    let server = TestServer::start_with(&args);
    // A host that accepts connections and never answers.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_url = format!("http://{}", hanging.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            held.push(socket);
        }
    });
    let receiver = Receiver::start().await;
    let alice = server.user("alice").await;
    let mut victims = Vec::new();
    for n in 0..4 {
        let user = server.user(&format!("stuck{n}")).await;
        register(&server, &user.token, json!({"kind": "webhook", "url": format!("{hanging_url}/{n}"), "secret": "k"}))
            .await;
        victims.push(server.direct(&alice, &user).await);
    }
    let bob = server.user("bob").await;
    register(&server, &bob.token, json!({"kind": "webhook", "url": format!("{}/bob", receiver.url), "secret": "k"}))
        .await;
    let bob_channel = server.direct(&alice, &bob).await;
    let (mut a, _) = server.connect(&alice.token).await;
    for round in 0..3 {
        for (n, channel) in victims.iter().enumerate() {
            a.send_text(*channel, &format!("s{round}-{n}"), "into the void").await;
        }
        a.send_text(bob_channel, &format!("b{round}"), "hello bob").await;
        let sent = std::time::Instant::now();
        receiver.expect(round + 1, Duration::ZERO).await;
        // Bob's notification goes out after the coalescing delay (400 ms),
        // not after the hanging host's timeout.
        assert!(sent.elapsed() < Duration::from_millis(1400), "round {round}: bob waited {:?}", sent.elapsed());
        tokio::time::sleep(Duration::from_millis(1800)).await;
    }
    // The hanging host kept failing: its breaker opened and its
    // notifications now wait without tying up requests.
    let metrics = server.call("GET", "/metrics", None, None).await.1;
    let skips: f64 = metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("chinwag_push_breaker_skips_total "))
        .expect("the breaker metric")
        .parse()
        .unwrap();
    assert!(skips > 0.0, "the breaker never opened");
}
