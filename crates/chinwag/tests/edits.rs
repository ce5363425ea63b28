//! Edit, delete, reply and react over real sockets: live `message_updated`
//! events in order, the catch-up of a device that was away, the rules of
//! who may change what, and deletions that really remove.

mod common;

use chinwag_client::{Backoff, Client as SdkClient, ClientConfig, Draft, Event, Target};
use chinwag_proto::{ChannelId, Message, MessageId};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn config(server: &TestServer, token: &str) -> ClientConfig {
    let mut config = ClientConfig::new(&server.base, token);
    config.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(500) };
    config
}

fn path(channel: i64, message: i64) -> String {
    format!("/v1/channels/{channel}/messages/{message}")
}

/// The next `count` changes the SDK hands over (other events skipped).
async fn updates(client: &mut SdkClient, count: usize) -> Vec<Message> {
    sdk_events(client, count, |event| match event {
        Event::MessageUpdated(m) => Some(m),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_members_live_and_in_order() {
    let server = TestServer::start();
    let (alice, bob, channel) = server.alice_and_bob().await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, ready) = server.connect(&bob.token).await;
    assert_eq!(ready["channels"][0]["last_change_seq"], 0);
    let ack = a.send_text(channel, "m1", "helo").await;
    let id = ack["message_id"].as_i64().unwrap();
    let first = b.next_of("message").await;
    assert_eq!(
        (first["edited_at"].clone(), first["deleted"].clone(), first["change_seq"].clone()),
        (Value::Null, json!(false), json!(0))
    );
    assert_eq!(first["reactions"], json!([]));

    let (status, body) =
        server.call("PATCH", &path(channel, id), Some(&alice.token), Some(json!({"text": "hello"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["message"]["text"].clone(), body["message"]["change_seq"].clone()), (json!("hello"), json!(1)));
    assert!(body["message"]["edited_at"].is_i64());
    let (status, _) =
        server.call("PUT", &format!("{}/reactions/%F0%9F%91%8D", path(channel, id)), Some(&bob.token), None).await;
    assert_eq!(status, 204);
    let (status, _) =
        server.call("PUT", &format!("{}/reactions/%F0%9F%91%8D", path(channel, id)), Some(&bob.token), None).await;
    assert_eq!(status, 204, "idempotent");
    for device in [&mut a, &mut b] {
        let edit = device.next_of("message_updated").await;
        assert_eq!(
            (edit["message"]["text"].clone(), edit["message"]["change_seq"].clone()),
            (json!("hello"), json!(1))
        );
        let react = device.next_of("message_updated").await;
        assert_eq!(react["message"]["reactions"], json!([{"emoji": "👍", "user_ids": [bob.id]}]));
        assert_eq!(react["message"]["change_seq"], 2);
        device.quiet("message_updated", Duration::from_millis(300)).await;
    }

    // A reply names a message of the same channel.
    a.send(json!({"type": "send", "client_msg_id": "m2", "channel_id": channel, "text": "re", "reply_to": id})).await;
    assert_eq!(b.next_of("message").await["reply_to"], id);
    a.send(json!({"type": "send", "client_msg_id": "m3", "channel_id": channel, "text": "re", "reply_to": 99})).await;
    let refused = a.next_of("error").await;
    assert_eq!((refused["code"].clone(), refused["ref"].clone()), (json!("not_found"), json!("m3")));
    let (status, body) = server
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &bob.token,
            json!({"client_msg_id": "h1", "text": "x", "reply_to": id}),
        )
        .await;
    assert_eq!((status, body["message"]["reply_to"].clone()), (201, json!(id)));
    let (status, _) = server.get(&format!("/v1/channels/{channel}"), &bob.token).await;
    assert_eq!(status, 200);
    let (_, channels) = server.get("/v1/channels", &bob.token).await;
    assert_eq!(channels["channels"][0]["last_change_seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_sender_edits_and_strangers_see_nothing() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let group = server.group(&bob, &[&alice, &carol]).await;
    let (mut a, _) = server.connect(&alice.token).await;
    let id = a.send_text(group, "m1", "mine").await["message_id"].as_i64().unwrap();
    let stranger = server.user("mallory").await;
    let p = path(group, id);
    let edit = |text: &str| Some(json!({ "text": text }));
    // (method, path, token, body, status, error code)
    type Case<'a> = (&'a str, String, &'a str, Option<Value>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("PATCH", p.clone(), &carol.token, edit("x"), 403, "forbidden"),
        ("PATCH", p.clone(), &bob.token, edit("x"), 403, "forbidden"),
        ("PATCH", p.clone(), &stranger.token, edit("x"), 404, "not_found"),
        ("PATCH", path(group, 42), &alice.token, edit("x"), 404, "not_found"),
        ("PATCH", p.clone(), &alice.token, edit(""), 400, "text_empty"),
        ("PATCH", p.clone(), &alice.token, Some(json!({"text": 5})), 400, "bad_request"),
        ("DELETE", p.clone(), &carol.token, None, 403, "forbidden"),
        ("DELETE", p.clone(), &stranger.token, None, 404, "not_found"),
        ("PUT", format!("{p}/reactions/%F0%9F%91%8D"), &stranger.token, None, 404, "not_found"),
        ("PUT", format!("{p}/reactions/a%20b"), &carol.token, None, 400, "bad_request"),
        ("PUT", format!("{p}/reactions/{}", "x".repeat(33)), &carol.token, None, 400, "bad_request"),
        ("GET", format!("/v1/channels/{group}/messages?changed_after=0"), &stranger.token, None, 404, "not_found"),
        (
            "GET",
            format!("/v1/channels/{group}/messages?changed_after=0&after=1"),
            &alice.token,
            None,
            400,
            "bad_request",
        ),
    ];
    for (method, url, token, body, status, code) in cases {
        let (got, answer) = server.call(method, &url, Some(token), body).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{method} {url}: {answer}");
    }
    // The group's creator may delete anyone's message.
    let (status, _) = server.call("DELETE", &p, Some(&bob.token), None).await;
    assert_eq!(status, 204);
    let (status, _) = server.call("DELETE", &p, Some(&alice.token), None).await;
    assert_eq!(status, 204, "deleting twice is harmless");
    let (_, page) = server.get(&format!("/v1/channels/{group}/messages?changed_after=0"), &carol.token).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["deleted"], true);
    assert_eq!(page["messages"][0]["change_seq"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_is_gone_from_every_view() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let group = server.group(&alice, &[&bob]).await;
    let (mut a, _) = server.connect(&alice.token).await;
    let png = chinwag_media::testdata::png(40, 30);
    let (status, upload) = server.upload(&alice.token, "plan.png", "image/png", png).await;
    assert_eq!(status, 201, "{upload}");
    let file = upload["upload"]["id"].as_str().unwrap().to_owned();
    a.send(json!({"type": "send", "client_msg_id": "m1", "channel_id": group, "text": "zanzibar plans @bob", "attachments": [file]})).await;
    let sent = a.next_of("message").await;
    let id = sent["message_id"].as_i64().unwrap();
    let url = sent["attachments"][0]["url"].as_str().unwrap().to_owned();
    a.send_text(group, "m2", "after").await;
    assert_eq!(server.fetch(&url, None, None).await.status(), 200, "served before the delete");

    let (status, _) = server.call("DELETE", &path(group, id), Some(&alice.token), None).await;
    assert_eq!(status, 204);
    let tomb = a.next_of("message_updated").await["message"].clone();
    assert_eq!(
        (tomb["deleted"].clone(), tomb["text"].clone(), tomb["attachments"].clone()),
        (json!(true), json!(""), json!([]))
    );
    let (_, found) = server.get("/v1/search?q=zanzibar", &bob.token).await;
    assert_eq!(found["messages"], json!([]));
    let (_, mentions) = server.get("/v1/mentions", &bob.token).await;
    assert_eq!(mentions["messages"], json!([]));
    for query in ["", "?around=1", "?after=0"] {
        let (_, page) = server.get(&format!("/v1/channels/{group}/messages{query}"), &bob.token).await;
        let first = &page["messages"][0];
        assert_eq!(
            (first["message_id"].clone(), first["deleted"].clone(), first["text"].clone()),
            (json!(id), json!(true), json!("")),
            "{query}"
        );
        assert!(!page.to_string().contains("zanzibar"));
    }
    // Its file stops being served at once and leaves the object store.
    assert_eq!(server.fetch(&url, None, None).await.status(), 404);
    let objects = server.data_dir().join("media");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while walk(&objects).iter().any(|f| f.contains(&file)) {
        assert!(std::time::Instant::now() < deadline, "the file's bytes are still stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every file under `dir`, as paths.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_was_away_catches_up_exactly() {
    let mut server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let group = server.group(&alice, &[&bob]).await;
    let channel = ChannelId(group);
    let writer = SdkClient::connect(config(&server, &alice.token)).await.unwrap();
    let mut reader = SdkClient::connect(config(&server, &bob.token)).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(writer.send(Target::Channel(channel), &format!("m{n}")).await.unwrap().message_id);
    }
    let reply = Draft { reply_to: Some(ids[0]), ..Draft::text("answer") };
    let answer = writer.handle().send_draft(Target::Channel(channel), "r1", reply).await.unwrap();
    writer.handle().edit(channel, ids[0], "m0 fixed").await.unwrap();
    let live = updates(&mut reader, 1).await;
    assert_eq!((live[0].text.as_str(), live[0].change_seq), ("m0 fixed", 1));

    // The reader goes away; changes go on, and the server dies right after
    // acking the last ones (their events may never have been sent). The
    // reader comes back with the cursors its app kept, and catches up.
    reader.close().await;
    let api = chinwag_client::Api::new(&server.base);
    api.edit_message(&alice.token, channel, ids[1], "m1 fixed").await.unwrap();
    api.react(&bob.token, channel, ids[1], "🎉", true).await.unwrap();
    api.react(&alice.token, channel, ids[2], "🎉", true).await.unwrap();
    api.delete_message(&alice.token, channel, ids[3]).await.unwrap();
    api.react(&bob.token, channel, ids[1], "🎉", false).await.unwrap();
    api.edit_message(&alice.token, channel, answer.message_id, "answer!").await.unwrap();
    server.kill();
    server.restart_same_port();
    let mut back = config(&server, &bob.token);
    back.cursors.insert(channel, answer.message_id);
    back.change_cursors.insert(channel, 1);
    let mut reader = SdkClient::connect(back).await.unwrap();
    let caught = updates(&mut reader, 4).await;
    let seqs: Vec<u64> = caught.iter().map(|m| m.change_seq).collect();
    let got: Vec<MessageId> = caught.iter().map(|m| m.message_id).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7], "each changed message once, newest state, in change order");
    assert_eq!(got, vec![ids[2], ids[3], ids[1], answer.message_id]);
    assert!(caught[1].deleted && caught[1].text.is_empty());
    assert!(caught[2].reactions.is_empty() && caught[2].text == "m1 fixed");
    assert_eq!(caught[3].reply_to, Some(ids[0]));

    // Live again, and nothing is handed over twice.
    writer.handle().react(channel, ids[4], "👍", true).await.unwrap();
    let next = updates(&mut reader, 1).await;
    assert_eq!((next[0].message_id, next[0].change_seq), (ids[4], 8));
    assert_eq!(reader.handle().stats().repeats_dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
}
