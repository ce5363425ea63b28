//! The authorization matrix: every endpoint and frame, tried by someone who
//! may not use it. Outsiders and removed members learn nothing about a
//! channel (`not_found`, as for a channel that does not exist) and change
//! nothing in it; logged-out and disabled tokens get `unauthorized`
//! everywhere. Members watching the channel see none of it.

mod common;

use chinwag_proto::api::{Access, Route, ROUTES};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// How the matrix calls each endpoint of the API table: its path with the
/// parameters filled in (and a query), and its body. Every endpoint must be
/// named here, so none is added without its authorization test.
fn requests(route: &Route, channel: i64, user: i64) -> Vec<(String, Option<Value>)> {
    let path = route
        .path
        .replace("{id}", &channel.to_string())
        .replace("{channel_id}", &channel.to_string())
        .replace("{user_id}", &user.to_string())
        .replace("{message_id}", "1")
        .replace("{emoji}", "%F0%9F%91%8D");
    let body = |value: Value| vec![(path.clone(), Some(value))];
    let query = |query: &str| vec![(format!("{path}?{query}"), None)];
    match route.name {
        "Signup" => body(json!({"username": "newcomer", "password": PASSWORD})),
        "Login" => body(json!({"username": "alice", "password": PASSWORD})),
        "CspReport" => body(json!({"csp-report": {"violated-directive": "script-src"}})),
        "UpdateMe" => body(json!({"display_name": "x"})),
        "FindUser" => query("username=alice"),
        "GetPresence" => query(&format!("user_ids={user}")),
        "Search" => query("q=secret"),
        "SetPush" => body(json!({"kind": "webhook", "url": "http://127.0.0.1:9/x"})),
        "OpenDirect" => body(json!({"user_id": user})),
        "CreateGroup" => body(json!({"name": "g", "member_ids": [user]})),
        "AddMember" => body(json!({"user_id": user})),
        "History" => [query("limit=5"), query("around=1"), query("changed_after=0")].concat(),
        "EditMessage" => body(json!({"text": "mine now"})),
        "PostMessage" => body(json!({"client_msg_id": "intruder-http", "text": "let me in"})),
        "MarkRead" => body(json!({"message_id": 1})),
        "Mute" => body(json!({"muted": true})),
        "CreateUpload" => vec![(format!("{path}?filename=x.txt"), Some(json!({"not": "stored"})))],
        "Me" | "UserById" | "Logout" | "ListChannels" | "GetChannel" | "RemoveMember" | "Reads" | "Contacts"
        | "AddContact" | "RemoveContact" | "Blocks" | "Block" | "Unblock" | "Invitations" | "AcceptInvitation"
        | "DeclineInvitation" | "Mentions" | "Discovery" | "GetPush" | "RemovePush" | "VapidPublicKey"
        | "GetLimits" | "DeleteMessage" | "AddReaction" | "RemoveReaction" => {
            vec![(path, None)]
        }
        other => panic!("no authorization sample for endpoint {other}: add one here"),
    }
}

/// Every request to endpoints of `access`.
fn endpoints_of(access: Access, channel: i64, user: i64) -> Vec<(&'static str, String, Option<Value>)> {
    ROUTES
        .iter()
        .filter(|route| route.access == access)
        .flat_map(|route| {
            requests(route, channel, user).into_iter().map(|(path, body)| (route.method.as_str(), path, body))
        })
        .collect()
}

/// Every endpoint that needs a token.
fn every_endpoint(channel: i64, user: i64) -> Vec<(&'static str, String, Option<Value>)> {
    [endpoints_of(Access::User, channel, user), endpoints_of(Access::Member, channel, user)].concat()
}

/// Every endpoint about one channel.
fn channel_endpoints(channel: i64, user: i64) -> Vec<(&'static str, String, Option<Value>)> {
    endpoints_of(Access::Member, channel, user)
}

/// Every frame about one channel.
fn channel_frames(channel: i64) -> Vec<Value> {
    vec![
        json!({"type": "send", "ref": "s", "client_msg_id": "intruder-ws", "channel_id": channel, "text": "let me in"}),
        json!({"type": "sync", "ref": "y", "channel_id": channel, "after": 0}),
        json!({"type": "read", "ref": "r", "channel_id": channel, "message_id": 1}),
        json!({"type": "typing", "ref": "t", "channel_id": channel}),
    ]
}

async fn history_len(server: &TestServer, channel: i64, token: &str) -> usize {
    let (status, body) = server.get(&format!("/v1/channels/{channel}/messages?limit=200"), token).await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().unwrap().len()
}

/// Tries every channel endpoint and frame as `intruder`, expecting
/// `not_found` from each.
async fn refused_everything_about(server: &TestServer, intruder: &Account, channel: i64, victim: i64) {
    for (method, path, body) in channel_endpoints(channel, victim) {
        let (status, answer) = server.call(method, &path, Some(&intruder.token), body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{} {method} {path}: {answer}",
            intruder.name
        );
    }
    let (mut ws, ready) = server.connect(&intruder.token).await;
    assert!(
        !ready["channels"].as_array().unwrap().iter().any(|c| c["id"] == channel),
        "{}'s ready lists the channel",
        intruder.name
    );
    for frame in channel_frames(channel) {
        ws.send(frame.clone()).await;
        let answer = ws.next_of("error").await;
        assert_eq!(answer["code"], "not_found", "{}: {frame} -> {answer}", intruder.name);
        assert_eq!(answer["ref"], frame["ref"]);
    }
    let (_, listed) = server.get("/v1/channels", &intruder.token).await;
    assert!(!listed["channels"].as_array().unwrap().iter().any(|c| c["id"] == channel));
    // Found nowhere else either.
    let (_, found) = server.get("/v1/search?q=secret", &intruder.token).await;
    assert_eq!(found["messages"], json!([]), "{}: {found}", intruder.name);
    let (_, mentions) = server.get("/v1/mentions", &intruder.token).await;
    assert_eq!(mentions["messages"], json!([]), "{}: {mentions}", intruder.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_removed_members_and_dead_tokens_are_refused_everywhere() {
    let server = TestServer::start();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let erin = server.user("erin").await;
    let frank = server.user("frank").await;

    let group = server.group(&alice, &[&bob, &carol, &frank]).await;
    let direct = server.direct(&alice, &bob).await;
    let (mut watcher, _) = server.connect(&alice.token).await;
    let (mut carol_ws, _) = server.connect(&carol.token).await;
    assert_eq!(watcher.send_text(group, "g1", "the secret plan, @carol").await["type"], "ack");
    assert_eq!(watcher.send_text(direct, "d1", "a secret for bob").await["type"], "ack");
    carol_ws.next_of("message").await;
    // The watcher's own two messages come back to it; later ones would not.
    watcher.next_of("message").await;
    watcher.next_of("message").await;

    // Carol leaves the picture: removed by the group's creator.
    let (status, _) =
        server.call("DELETE", &format!("/v1/channels/{group}/members/{}", carol.id), Some(&alice.token), None).await;
    assert_eq!(status, 204);
    assert_eq!(carol_ws.next_of("channel_removed").await["channel_id"], group);
    // And a member who is not the creator cannot remove anyone.
    let (status, answer) =
        server.call("DELETE", &format!("/v1/channels/{group}/members/{}", alice.id), Some(&bob.token), None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{answer}");

    let before = (history_len(&server, group, &alice.token).await, history_len(&server, direct, &alice.token).await);
    refused_everything_about(&server, &dave, group, bob.id).await;
    refused_everything_about(&server, &dave, direct, bob.id).await;
    refused_everything_about(&server, &carol, group, bob.id).await;
    refused_everything_about(&server, &carol, direct, bob.id).await;
    // Nothing was written, and the members heard nothing.
    let after = (history_len(&server, group, &alice.token).await, history_len(&server, direct, &alice.token).await);
    assert_eq!(before, after);
    watcher.quiet("message", Duration::from_millis(300)).await;
    watcher.quiet("typing", Duration::from_millis(100)).await;
    let (_, reads) = server.get(&format!("/v1/channels/{group}/reads"), &alice.token).await;
    assert!(
        !reads.to_string().contains(&format!("\"user_id\":{}", dave.id)),
        "an outsider's read marker appeared: {reads}"
    );

    // Dead tokens: logged out, and an account an operator disabled.
    let erin_phone = server.login("erin").await;
    let (status, _) = server.call("DELETE", "/v1/sessions/current", Some(&erin.token), None).await;
    assert_eq!(status, 204);
    let (ok, out) = server.admin(&["disable", "frank"]);
    assert!(ok, "{out}");
    for (who, token) in
        [("logged out", erin.token.as_str()), ("disabled", frank.token.as_str()), ("garbage", "not-a-token")]
    {
        for (method, path, body) in every_endpoint(group, bob.id) {
            let (status, answer) = server.call(method, &path, Some(token), body).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (401, Some("unauthorized")),
                "{who}: {method} {path}: {answer}"
            );
        }
        let mut ws = Client::open(&server.ws_url()).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        assert_eq!(ws.next().await["code"], "unauthorized", "{who}");
        assert_eq!(ws.closed().await, Some(1008), "{who}");
        let upgrade = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(server.ws_url())
            .map(|mut request| {
                request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
                request
            })
            .unwrap();
        let refused = tokio_tungstenite::connect_async(upgrade).await;
        assert!(
            matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
            "{who}: bearer upgrade was not refused with 401"
        );
    }
    // Erin's other device is still logged in; only the one token died.
    assert_eq!(server.get("/v1/users/me", &erin_phone).await.0, 200);
    // Unauthenticated sockets may do nothing but authenticate (or ping).
    let mut anonymous = Client::open(&server.ws_url()).await;
    for frame in channel_frames(group) {
        anonymous.send(frame).await;
        assert_eq!(anonymous.next().await["code"], "unauthorized");
    }
    assert_eq!(history_len(&server, group, &alice.token).await, before.0);
    // Without a token: every endpoint but the public ones answers 401,
    // and the public ones answer without one.
    for (method, path, body) in every_endpoint(group, bob.id) {
        let (status, answer) = server.call(method, &path, None, body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")), "{method} {path}");
    }
    for (method, path, body) in endpoints_of(Access::Public, group, bob.id) {
        let (status, answer) = server.call(method, &path, None, body).await;
        assert!((200..300).contains(&status), "public {method} {path}: {status} {answer}");
    }
}
