//! Operator commands (`chinwag admin`) against a running server, and the
//! optional TLS listener, over real sockets.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message as Ws;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_closes_their_sockets_and_refuses_them() {
    let server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let phone = server.login("alice").await;
    let (mut laptop_ws, _) = server.connect(&alice.token).await;
    let (mut phone_ws, _) = server.connect(&phone).await;
    let (mut bob_ws, _) = server.connect(&bob.token).await;

    let (ok, out) = server.admin(&["users"]);
    assert!(ok, "{out}");
    assert!(out.contains("alice") && out.contains("bob") && out.contains("active"), "{out}");
    let (ok, out) = server.admin(&["--json", "users"]);
    assert!(ok, "{out}");
    let listed: Value = serde_json::from_str(&out).expect("json listing");
    let row = &listed["users"][0];
    assert_eq!(
        (row["username"].as_str(), row["devices"].as_i64(), row["sockets"].as_i64()),
        (Some("alice"), Some(2), Some(2))
    );

    let (ok, out) = server.admin(&["disable", "alice"]);
    assert!(ok && out.contains("is disabled; 2 tokens revoked"), "{out}");
    assert_eq!(laptop_ws.closed().await, Some(1008));
    assert_eq!(phone_ws.closed().await, Some(1008));

    // Everyone else goes on; messages to the disabled account are kept.
    let ack = bob_ws.send_text(channel, "b1", "are you there?").await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // Old tokens are dead everywhere, and the password no longer logs in.
    assert_eq!(server.get("/v1/users/me", &alice.token).await.0, 401);
    let (status, body) =
        server.call("POST", "/v1/sessions", None, Some(json!({"username": "alice", "password": PASSWORD}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let mut again = Client::open(&server.ws_url()).await;
    again.send(json!({"type": "auth", "token": phone})).await;
    assert_eq!(again.next().await["code"], "unauthorized");
    assert_eq!(again.closed().await, Some(1008));
    // A wrong password still says only "wrong username or password".
    let (status, _) = server
        .call("POST", "/v1/sessions", None, Some(json!({"username": "alice", "password": "not the password"})))
        .await;
    assert_eq!(status, 401);

    let (ok, out) = server.admin(&["enable", "alice"]);
    assert!(ok && out.contains("enabled"), "{out}");
    let token = server.login("alice").await;
    let (mut back, _) = server.connect(&token).await;
    back.send(json!({"type": "sync", "channel_id": channel, "after": 0})).await;
    let missed = back.next_of("message").await;
    assert_eq!(missed["text"], "are you there?");

    let (ok, out) = server.admin(&["disable", "nobody"]);
    assert!(!ok && out.contains("no such user"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_taken_while_messages_flow_is_a_whole_store() {
    let server = TestServer::start_with(&["--send-rate-per-s", "100000", "--send-burst", "100000"]);
    if on_postgres() {
        // PostgreSQL has its own backup tools; the operator is told which.
        let dest = tempfile::tempdir().unwrap().path().join("backup.db");
        let (ok, out) = server.admin(&["backup", dest.to_str().unwrap()]);
        assert!(!ok && out.contains("pg_dump"), "{out}");
        return;
    }
    let (alice, _bob, channel) = server.alice_and_bob().await;
    let (mut ws, _) = server.connect(&alice.token).await;
    let mut acked = 0;
    for i in 1..=150 {
        assert_eq!(ws.send_text(channel, &format!("m{i}"), &format!("text {i}")).await["type"], "ack");
        acked += 1;
    }

    // Keep sending while the backup runs.
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backup.db");
    let data_dir = server.data_dir().to_path_buf();
    let backup = {
        let dest = dest.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_chinwag"))
                .args(["admin", "--data-dir"])
                .arg(&data_dir)
                .arg("backup")
                .arg(&dest)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
            )
        })
    };
    let acked_before_backup = acked;
    while !backup.is_finished() {
        let i = acked + 1;
        assert_eq!(ws.send_text(channel, &format!("m{i}"), &format!("text {i}")).await["type"], "ack");
        acked += 1;
    }
    let (ok, out) = backup.await.unwrap();
    assert!(ok && out.contains("backup written"), "{out}");
    let (ok, out) = server.admin(&["backup", dest.to_str().unwrap()]);
    assert!(!ok && out.contains("already exists"), "{out}");

    // The copy serves as a data directory of its own.
    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&dest, restored_dir.path().join("chinwag.db")).unwrap();
    let restored = TestServer::start_in(restored_dir, &[]);
    let token = restored.login("alice").await;
    let (status, page) = restored.get(&format!("/v1/channels/{channel}/messages?after=0&limit=200"), &token).await;
    assert_eq!(status, 200, "{page}");
    let mut texts = Vec::new();
    let mut after = 0;
    let mut body = page;
    loop {
        for m in body["messages"].as_array().unwrap() {
            assert_eq!(m["message_id"].as_i64(), Some(after + 1), "no gaps in the copy");
            after += 1;
            texts.push(m["text"].as_str().unwrap().to_string());
        }
        if body["has_more"] != true {
            break;
        }
        body = restored.get(&format!("/v1/channels/{channel}/messages?after={after}&limit=200"), &token).await.1;
    }
    assert!(texts.len() >= acked_before_backup, "{} < {acked_before_backup}", texts.len());
    assert!(texts.len() <= acked, "the copy holds only messages that were sent");
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(text, &format!("text {}", i + 1));
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM.
fn certificate(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (made.cert.pem(), cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_and_wss() {
    let certs = tempfile::tempdir().unwrap();
    let (pem, cert, key) = certificate(certs.path());
    let mut server =
        TestServer::start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    server.http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();

    // A client that connects and never says hello holds nothing up.
    let addr = server.base.trim_start_matches("https://").to_string();
    let _silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (_, discovery) = server.get("/v1/discovery", &alice.token).await;
    assert!(discovery["servers"][0]["ws_url"].as_str().unwrap().starts_with("wss://"), "{discovery}");

    // Plain HTTP on the TLS port gets no answer of ours.
    let plain = reqwest::Client::new().get(format!("http://{addr}/healthz")).send().await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{addr}/v1/ws"), tls).await.expect("wss upgrade");
    ws.send(Ws::text(json!({"type": "auth", "token": alice.token}).to_string())).await.unwrap();
    let ready = read_json(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    ws.send(Ws::text(
        json!({"type": "send", "client_msg_id": "t1", "channel_id": channel, "text": "over tls"}).to_string(),
    ))
    .await
    .unwrap();
    let mut acked = false;
    while !acked {
        let frame = read_json(&mut ws).await;
        acked = frame["type"] == "ack" && frame["client_msg_id"] == "t1";
    }
    let (_, history) = server.get(&format!("/v1/channels/{channel}/messages"), &bob.token).await;
    assert_eq!(history["messages"][0]["text"], "over tls");
}

async fn read_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("frame in time") {
            Some(Ok(Ws::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[test]
fn unusable_tls_settings_stop_the_server_with_a_reason() {
    let err = serve_refuses(&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"]);
    assert!(err.contains("TLS certificate"), "{err}");
    let err = serve_refuses(&["--tls-cert", "/nonexistent/cert.pem"]);
    assert!(err.contains("--tls-key"), "{err}");
}
