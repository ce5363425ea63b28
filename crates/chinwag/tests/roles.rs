//! `--roles`: one process runs only the roles it is given.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

async fn upgrade_status(server: &TestServer) -> u16 {
    match tokio_tungstenite::connect_async(server.ws_url()).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_process_runs_only_its_roles() {
    let fast = ["--push-coalesce-ms", "100", "--push-private-targets", "true", "--presence-offline-grace-ms", "100"];
    let mut server = TestServer::start_with(&[&fast[..], &["--roles", "api"]].concat());
    // The api role serves HTTP but no WebSockets, and hands out no gateway.
    let (alice, bob, channel) = server.alice_and_bob().await;
    assert_eq!(upgrade_status(&server).await, 404);
    let (_, discovery) = server.call("GET", "/v1/discovery", None, None).await;
    assert_eq!(discovery["servers"], json!([]), "an api node is no gateway");
    // It stores messages and queues their pushes, but delivers none.
    let (url, hits) = counting_receiver().await;
    let (s, _) = server
        .call("PUT", "/v1/devices/current/push", Some(&bob.token), Some(json!({"kind": "webhook", "url": url})))
        .await;
    assert_eq!(s, 204);
    let (s, _) = server
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &alice.token,
            json!({"client_msg_id": "r1", "text": "queued"}),
        )
        .await;
    assert_eq!(s, 201);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0, "an api node pushed");

    // The gateway role serves WebSockets but not the API.
    server.set_args(&[&fast[..], &["--roles", "gateway,presence"]].concat());
    server.restart();
    assert_eq!(server.call("GET", "/v1/users/me", Some(&alice.token), None).await.0, 404);
    assert_eq!(server.call("GET", "/", None, None).await.0, 404, "no web client either");
    let (mut a, ready) = server.connect(&alice.token).await;
    assert_eq!(ready["channels"][0]["last_message_id"], 1);
    assert_eq!(a.send_text(channel, "r2", "over the socket").await["type"], "ack");
    assert_eq!(server.call("GET", "/healthz", None, None).await.0, 200);

    // The notifier role delivers what was queued.
    server.set_args(&[&fast[..], &["--roles", "notifier"]].concat());
    server.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hits.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the notifier never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(serve_refuses(&["--roles", "api,chef"]).contains("unknown role"));
}
