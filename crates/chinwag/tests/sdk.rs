//! The client SDK against the real server, across server crashes.

mod common;

use chinwag_client::{Backoff, Client, ClientConfig, ClientError, Event, Target};
use chinwag_proto::{ChannelId, ErrorCode, MessageId};
use common::*;
use std::time::Duration;

fn config(server: &TestServer, token: &str) -> ClientConfig {
    let mut config = ClientConfig::new(&server.base, token);
    config.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(500) };
    config
}

/// The next `count` messages of the client's event stream.
async fn messages(client: &mut Client, count: usize) -> Vec<chinwag_proto::Message> {
    sdk_events(client, count, |event| match event {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_survive_server_crashes_and_readers_see_each_message_once_in_order() {
    let mut server = TestServer::start_with(&["--send-rate-per-s", "10000", "--send-burst", "10000"]);
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let channel = ChannelId(server.direct(&alice, &bob).await);
    let sender = Client::connect(config(&server, &alice.token)).await.unwrap();
    let mut reader = Client::connect(config(&server, &bob.token)).await.unwrap();
    assert!(matches!(reader.next_event().await, Some(Event::Ready { .. })));

    let sender = std::sync::Arc::new(sender);
    let mut sends = Vec::new();
    for n in 0..200 {
        let sender = sender.clone();
        sends.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(n * 3)).await;
            sender.send(Target::Channel(channel), &format!("message {n}")).await
        }));
    }
    // Crash the server twice while the sends are under way.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        server.restart_same_port();
    }
    let mut acked = Vec::new();
    for s in sends {
        acked.push(s.await.unwrap().expect("every send is acked in the end").message_id.0);
    }
    acked.sort();
    assert_eq!(acked, (1..=200).collect::<Vec<_>>(), "each message stored once");
    let got = messages(&mut reader, 200).await;
    let ids: Vec<i64> = got.iter().map(|m| m.message_id.0).collect();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>(), "exactly once, in order");
}

#[tokio::test]
async fn a_reconnecting_client_fetches_what_it_missed() {
    let mut server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let mut reader = Client::connect(config(&server, &bob.token)).await.unwrap();
    let (mut a, _) = server.connect(&alice.token).await;
    a.send_text(channel, "before", "before the crash").await;
    assert_eq!(messages(&mut reader, 1).await[0].text, "before the crash");
    server.restart_same_port();
    // Written while the reader is still reconnecting.
    let (mut a, _) = server.connect(&alice.token).await;
    for n in 0..5 {
        a.send_text(channel, &format!("missed{n}"), &format!("missed {n}")).await;
    }
    let got = messages(&mut reader, 5).await;
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, vec!["missed 0", "missed 1", "missed 2", "missed 3", "missed 4"]);
    assert_eq!(got[4].message_id, MessageId(6));
}

#[tokio::test]
async fn refused_tokens_and_bad_sends_are_reported() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    match Client::connect(config(&server, "bogus")).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::Unauthorized),
        other => panic!("expected unauthorized, got {:?}", other.err()),
    }
    let client = Client::connect(config(&server, &alice.token)).await.unwrap();
    match client.send(Target::User(chinwag_proto::UserId(bob.id)), "").await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::TextEmpty),
        other => panic!("expected text_empty, got {other:?}"),
    }
    let ack = client.send(Target::User(chinwag_proto::UserId(bob.id)), "hi").await.unwrap();
    assert_eq!(ack.message_id, MessageId(1));
    // The same id again: the original ack, nothing new stored.
    let again = client.send_with_id(Target::Channel(ack.channel_id), &ack.client_msg_id, "hi").await.unwrap();
    assert_eq!(again, ack);
    client.close().await;
}

#[tokio::test]
async fn discovery_finds_the_gateway() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let mut cfg = config(&server, &alice.token);
    cfg.use_discovery = true;
    cfg.bind_ip = Some("127.0.0.2".parse().unwrap());
    let mut client = Client::connect(cfg).await.unwrap();
    assert!(matches!(client.next_event().await, Some(Event::Ready { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_uploaded_sent_and_fetched_through_the_sdk() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let channel = ChannelId(server.direct(&alice, &bob).await);
    let api = chinwag_client::Api::new(&server.base);
    let sender = Client::connect(config(&server, &alice.token)).await.unwrap();
    let mut reader = Client::connect(config(&server, &bob.token)).await.unwrap();
    let photo = chinwag_media::testdata::png(40, 30);
    let upload = api.upload(&alice.token, "dot.png", "image/png", photo.clone()).await.unwrap();
    assert_eq!((upload.width, upload.height), (Some(40), Some(30)));
    sender.send_files(Target::Channel(channel), "", std::slice::from_ref(&upload.id)).await.unwrap();
    let message = messages(&mut reader, 1).await.remove(0);
    assert_eq!(message.attachments.len(), 1);
    let file = &message.attachments[0];
    assert_eq!(api.fetch_media(&file.url).await.unwrap().as_ref(), photo.as_slice());
    assert!(!api.fetch_media(file.thumbnail_url.as_deref().unwrap()).await.unwrap().is_empty());
    // Someone else's upload is refused.
    let refused = reader.send_files(Target::Channel(channel), "", std::slice::from_ref(&upload.id)).await;
    assert!(matches!(refused, Err(ClientError::Server(ref e)) if e.code == ErrorCode::NotFound), "{refused:?}");
}
