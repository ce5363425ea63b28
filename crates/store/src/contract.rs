//! The behaviour every `Store` backend must have, written once. A backend's
//! test module calls `store_contract_tests!(open)` with an async `open()`
//! returning `(guard, store)`; the guard keeps temp resources alive. A
//! backend in another crate enables the `contract-tests` feature.
//!
//! Each case expects a fresh, empty store (ids start at 1, names are
//! fixed): `open()` must give every test its own database or schema.
//!
//! The `conflicting_*` cases race two writers at the same row; a store with
//! one writer passes them trivially, a store with many connections only if
//! it settles each race with the right answer (never a backend error).
#![allow(clippy::unwrap_used, missing_docs)]

use crate::*;
use chinwag_proto::validate::PAGE_MAX_BYTES;
use chinwag_proto::{ChannelKind, DeviceId, MessageId, UserId};
use std::sync::Arc;

pub async fn user(store: &dyn Store, name: &str) -> UserId {
    store
        .create_user(NewUser {
            username: name.into(),
            display_name: name.to_uppercase(),
            password_hash: format!("hash-{name}"),
            created_at: 1,
        })
        .await
        .expect("create user")
        .id
}

pub async fn two_users(store: &dyn Store) -> (UserId, UserId) {
    (user(store, "alice").await, user(store, "bob").await)
}

pub async fn send(store: &dyn Store, channel: ChannelId, sender: UserId, cmid: &str) -> Appended {
    store
        .append_message(NewMessage {
            channel_id: channel,
            sender_id: sender,
            client_msg_id: cmid.into(),
            text: format!("text of {cmid}"),
            created_at: 5,
            attachments: Vec::new(),
            reply_to: None,
        })
        .await
        .expect("append")
}

pub async fn users_and_devices(store: &dyn Store) {
    let (a, _) = two_users(store).await;
    assert!(matches!(
        store
            .create_user(NewUser {
                username: "alice".into(),
                display_name: "x".into(),
                password_hash: "h".into(),
                created_at: 1
            })
            .await,
        Err(StoreError::UsernameTaken)
    ));
    assert_eq!(store.user_by_username("ALICE").await.unwrap().unwrap().id, a);
    assert_eq!(store.credentials("alice").await.unwrap().unwrap().password_hash, "hash-alice");
    assert!(store.user(UserId(999)).await.unwrap().is_none());
    let renamed = store.update_display_name(a, "Ally").await.unwrap();
    assert_eq!(renamed.display_name, "Ally");

    let device = store
        .create_device(NewDevice { user_id: a, name: Some("phone".into()), token_hash: vec![1, 2], created_at: 1 })
        .await
        .unwrap();
    let session = store.session(&[1, 2]).await.unwrap().unwrap();
    assert_eq!(session, Session { user_id: a, device_id: device });
    store.revoke_device(device).await.unwrap();
    assert!(store.session(&[1, 2]).await.unwrap().is_none());
}

pub async fn client_text_is_kept_byte_for_byte(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
    let text = "nul \u{0000} here, e\u{301} combining, \u{1F469}\u{200D}\u{1F467} family, \r\n crlf  ";
    let cmid = "id-with-\u{0000}-nul";
    let new = || NewMessage {
        channel_id: ch.id,
        sender_id: a,
        client_msg_id: cmid.into(),
        text: text.into(),
        created_at: 5,
        attachments: Vec::new(),
        reply_to: None,
    };
    let stored = store.append_message(new()).await.unwrap();
    assert_eq!((stored.message.text.as_str(), stored.message.client_msg_id.as_str()), (text, cmid));
    assert!(store.append_message(new()).await.unwrap().duplicate, "the resend is recognised");
    let page = store.messages(ch.id, HistoryQuery::Latest, 10, b).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!((page.messages[0].text.as_str(), page.messages[0].client_msg_id.as_str()), (text, cmid));
    store
        .create_device(NewDevice {
            user_id: a,
            name: Some("phone \u{0000}".into()),
            token_hash: vec![9],
            created_at: 1,
        })
        .await
        .unwrap();
}

pub async fn shared_secrets_are_created_once(store: &dyn Store) {
    assert_eq!(store.shared_secret("vapid.key", "first").await.unwrap(), "first");
    assert_eq!(store.shared_secret("vapid.key", "second").await.unwrap(), "first", "the first value stays");
    assert_eq!(store.shared_secret("webhook.secret", "other").await.unwrap(), "other", "names are separate");
}

/// Nodes starting together agree on one value.
pub async fn conflicting_first_secrets(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.shared_secret("race", &format!("node-{i}")).await.unwrap() })
        })
        .collect();
    let mut values = Vec::new();
    for task in tasks {
        values.push(task.await.unwrap());
    }
    values.dedup();
    assert_eq!(values.len(), 1, "{values:?}");
}

pub async fn disabling_revokes_every_token(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    for (n, owner) in [(1u8, a), (2, a), (3, b)] {
        store
            .create_device(NewDevice { user_id: owner, name: None, token_hash: vec![n], created_at: 1 })
            .await
            .unwrap();
    }
    let listed = store.accounts(None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|x| x.user.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!((listed[0].live_devices, listed[0].disabled_at), (2, None));
    assert_eq!(store.accounts(Some(a), 10).await.unwrap().len(), 1);

    let session_a = store.session(&[1]).await.unwrap().unwrap();
    let session_b = store.session(&[3]).await.unwrap().unwrap();
    assert_eq!(store.active_session(session_a).await.unwrap().map(|u| u.id), Some(a));
    let foreign = Session { user_id: a, device_id: session_b.device_id };
    assert!(store.active_session(foreign).await.unwrap().is_none(), "a device of another user");
    let revoked = store.set_disabled(a, true, 77).await.unwrap();
    assert_eq!(revoked.len(), 2);
    assert!(store.active_session(session_a).await.unwrap().is_none());
    assert!(store.active_session(session_b).await.unwrap().is_some());
    let account = store.account(a).await.unwrap().unwrap();
    assert_eq!((account.disabled_at, account.live_devices), (Some(77), 0));
    assert!(store.credentials("alice").await.unwrap().unwrap().disabled);
    assert!(store.session(&[1]).await.unwrap().is_none());
    assert!(store.session(&[3]).await.unwrap().is_some(), "other accounts keep their tokens");
    // A token made while disabled (a racing login) still does not work.
    store.create_device(NewDevice { user_id: a, name: None, token_hash: vec![4], created_at: 2 }).await.unwrap();
    assert!(store.session(&[4]).await.unwrap().is_none());
    assert!(store.set_disabled(a, true, 99).await.unwrap().len() == 1, "the racing token is revoked too");
    assert_eq!(store.account(a).await.unwrap().unwrap().disabled_at, Some(77), "first disable time kept");

    assert!(store.set_disabled(a, false, 100).await.unwrap().is_empty());
    assert!(!store.credentials("alice").await.unwrap().unwrap().disabled);
    assert!(store.active_session(session_a).await.unwrap().is_none(), "enabling does not bring old tokens back");
    assert!(store.session(&[1]).await.unwrap().is_none(), "enabling does not bring old tokens back");
    store.create_device(NewDevice { user_id: a, name: None, token_hash: vec![5], created_at: 3 }).await.unwrap();
    let fresh = store.session(&[5]).await.unwrap().unwrap();
    assert!(store.active_session(fresh).await.unwrap().is_some());
    store.revoke_device(fresh.device_id).await.unwrap();
    assert!(store.active_session(fresh).await.unwrap().is_none(), "a logged-out device");
    assert!(matches!(store.set_disabled(UserId(999), true, 1).await, Err(StoreError::NotFound)));
}

pub async fn direct_channels_are_one_per_pair(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let (ch, created) = store.direct_channel(a, b, 1).await.unwrap();
    assert!(created);
    assert_eq!(ch.kind, ChannelKind::Direct);
    assert_eq!(ch.member_ids, vec![a, b]);
    let (again, created) = store.direct_channel(b, a, 2).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, ch.id);
    assert!(matches!(store.direct_channel(a, UserId(999), 1).await, Err(StoreError::NotFound)));
    let (own, _) = store.direct_channel(a, a, 1).await.unwrap();
    assert_eq!(own.member_ids, vec![a]);
}

pub async fn groups_and_members(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let g = store
        .create_group(NewGroup { creator: a, name: "g".into(), member_ids: vec![b, b], created_at: 1 })
        .await
        .unwrap();
    assert_eq!(g.member_ids, vec![a, b]);
    assert_eq!(g.created_by, a);
    assert!(store.channel(g.id, c).await.unwrap().is_none());
    send(store, g.id, a, "before-carol-1").await;
    send(store, g.id, b, "before-carol-2").await;
    assert_eq!(store.add_member(g.id, c, a, 2).await.unwrap(), MemberAdded::Added);
    let joined = store.channel(g.id, c).await.unwrap().unwrap();
    assert_eq!(joined.read_up_to, MessageId(2), "what came before a member joined is not unread to them");
    assert_eq!(store.add_member(g.id, c, a, 2).await.unwrap(), MemberAdded::AlreadyMember);
    assert_eq!(store.members(g.id).await.unwrap(), vec![a, b, c]);
    assert!(store.remove_member(g.id, b, a, 3).await.unwrap());
    assert!(!store.remove_member(g.id, b, a, 3).await.unwrap());
    assert!(store.channel(g.id, b).await.unwrap().is_none());
    assert_eq!(store.channels_of(c).await.unwrap().len(), 1);
    assert!(matches!(
        store
            .create_group(NewGroup { creator: a, name: "x".into(), member_ids: vec![UserId(999)], created_at: 1 })
            .await,
        Err(StoreError::NotFound)
    ));

    let mut many = Vec::new();
    for i in 0..99 {
        many.push(user(store, &format!("user{i}")).await);
    }
    let full = store
        .create_group(NewGroup { creator: a, name: "full".into(), member_ids: many.clone(), created_at: 1 })
        .await
        .unwrap();
    assert_eq!(full.member_ids.len(), 100);
    assert!(matches!(store.add_member(full.id, b, a, 1).await, Err(StoreError::GroupTooLarge)));
    many.push(b);
    assert!(matches!(
        store.create_group(NewGroup { creator: a, name: "big".into(), member_ids: many, created_at: 1 }).await,
        Err(StoreError::GroupTooLarge)
    ));
}

pub async fn message_ids_are_sequential_and_idempotent(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
    let first = send(store, ch.id, a, "m1").await;
    assert_eq!(first.message.message_id, MessageId(1));
    assert!(!first.duplicate);
    assert_eq!(first.members, vec![a, b], "the members the append saw");
    assert_eq!(send(store, ch.id, b, "m1").await.message.message_id, MessageId(2));
    let again = send(store, ch.id, a, "m1").await;
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);
    assert!(matches!(
        store
            .append_message(NewMessage {
                channel_id: ch.id,
                sender_id: c,
                client_msg_id: "x".into(),
                text: "x".into(),
                created_at: 1,
                attachments: Vec::new(),
                reply_to: None,
            })
            .await,
        Err(StoreError::NotAMember)
    ));
    // Idempotency is scoped to the channel: the same key elsewhere is a
    // new message there, and in a channel one is not in, nothing at all.
    let (other, _) = store.direct_channel(a, c, 1).await.unwrap();
    let elsewhere = send(store, other.id, a, "m1").await;
    assert!(!elsewhere.duplicate);
    assert_eq!((elsewhere.message.channel_id, elsewhere.message.message_id), (other.id, MessageId(1)));
    assert!(matches!(
        store
            .append_message(NewMessage {
                channel_id: ch.id,
                sender_id: c,
                client_msg_id: "m1".into(),
                text: "x".into(),
                created_at: 1,
                attachments: Vec::new(),
                reply_to: None,
            })
            .await,
        Err(StoreError::NotAMember)
    ));
    let ch = store.channel(ch.id, a).await.unwrap().unwrap();
    assert_eq!(ch.last_message_id, MessageId(2));
}

pub async fn concurrent_appends_have_no_gaps(store: Arc<dyn Store>) {
    let (a, b) = two_users(&*store).await;
    let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        let sender = if i % 2 == 0 { a } else { b };
        tasks.push(tokio::spawn(async move {
            // Every message twice: the resend must not create a second copy.
            let first = send(&*store, ch.id, sender, &format!("c{i}")).await;
            let second = send(&*store, ch.id, sender, &format!("c{i}")).await;
            assert_eq!(first.message.message_id, second.message.message_id);
            first.message.message_id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().0);
    }
    ids.sort();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
}

/// Refused writes that share a batch with accepted ones leave no trace.
pub async fn refused_writes_leave_no_trace(store: Arc<dyn Store>) {
    let (a, b) = two_users(&*store).await;
    let outsider = user(&*store, "outsider").await;
    let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = store.clone();
        let sender = if i % 2 == 0 { a } else { outsider };
        tasks.push(tokio::spawn(async move {
            store
                .append_message(NewMessage {
                    channel_id: ch.id,
                    sender_id: sender,
                    client_msg_id: format!("m{i}"),
                    text: format!("text {i}"),
                    created_at: 1,
                    attachments: Vec::new(),
                    reply_to: None,
                })
                .await
        }));
    }
    let mut ok = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(appended) => ok.push(appended.message.message_id.0),
            Err(StoreError::NotAMember) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    ok.sort();
    assert_eq!(ok, (1..=50).collect::<Vec<_>>());
    let page = store.messages(ch.id, HistoryQuery::Latest, 200, a).await.unwrap();
    assert_eq!(page.messages.len(), 50);
    assert!(page.messages.iter().all(|m| m.sender_id == a));
    let search = store
        .search(a, SearchQuery { terms: vec!["text".into()], channel: None, before: None, limit: 100 })
        .await
        .unwrap();
    assert_eq!(search.messages.len(), 50);
}

pub async fn history_pages(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
    for i in 1..=10 {
        send(store, ch.id, a, &format!("h{i}")).await;
    }
    let ids = |p: &Page| p.messages.iter().map(|m| m.message_id.0).collect::<Vec<_>>();
    let latest = store.messages(ch.id, HistoryQuery::Latest, 3, a).await.unwrap();
    assert_eq!((ids(&latest), latest.has_more), (vec![8, 9, 10], true));
    let all = store.messages(ch.id, HistoryQuery::Latest, 10, a).await.unwrap();
    assert_eq!((ids(&all).len(), all.has_more), (10, false));
    let after =
        store.messages(ch.id, HistoryQuery::Range { after: Some(MessageId(7)), before: None }, 2, a).await.unwrap();
    assert_eq!((ids(&after), after.has_more), (vec![8, 9], true));
    let tail =
        store.messages(ch.id, HistoryQuery::Range { after: Some(MessageId(8)), before: None }, 5, a).await.unwrap();
    assert_eq!((ids(&tail), tail.has_more), (vec![9, 10], false));
    let between = store
        .messages(ch.id, HistoryQuery::Range { after: Some(MessageId(2)), before: Some(MessageId(5)) }, 5, a)
        .await
        .unwrap();
    assert_eq!((ids(&between), between.has_more), (vec![3, 4], false));
    let before = store.messages(ch.id, HistoryQuery::Before(MessageId(4)), 2, a).await.unwrap();
    assert_eq!((ids(&before), before.has_more), (vec![2, 3], true));
    let around = store.messages(ch.id, HistoryQuery::Around(MessageId(5)), 4, a).await.unwrap();
    assert_eq!((ids(&around), around.has_more), (vec![3, 4, 5, 6], true));
    let edge = store.messages(ch.id, HistoryQuery::Around(MessageId(1)), 1, a).await.unwrap();
    assert_eq!((ids(&edge), edge.has_more), (vec![1], true));
    let outsider = user(store, "outsider").await;
    assert!(matches!(store.messages(ch.id, HistoryQuery::Latest, 10, outsider).await, Err(StoreError::NotAMember)));
}

/// However long the texts, a page stays within `PAGE_MAX_BYTES` (but
/// always holds one message), and says there is more.
pub async fn pages_stay_within_their_byte_budget(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
    // Control characters take six bytes each once escaped in JSON.
    let long = format!("@bob word {}", "\u{1}".repeat(99_000));
    for i in 1..=6 {
        store
            .append_message(NewMessage {
                channel_id: ch.id,
                sender_id: a,
                client_msg_id: format!("p{i}"),
                text: long.clone(),
                created_at: 1,
                attachments: Vec::new(),
                reply_to: None,
            })
            .await
            .unwrap();
    }
    let size = |p: &[chinwag_proto::Message]| p.iter().map(chinwag_proto::pages::encoded_len).sum::<usize>();
    let ids = |p: &Page| p.messages.iter().map(|m| m.message_id.0).collect::<Vec<_>>();
    let latest = store.messages(ch.id, HistoryQuery::Latest, 200, a).await.unwrap();
    assert!(latest.has_more && !latest.messages.is_empty());
    assert!(size(&latest.messages) <= PAGE_MAX_BYTES, "latest page too big");
    assert_eq!(ids(&latest).last(), Some(&6), "the newest are kept when paging back");
    let forward =
        store.messages(ch.id, HistoryQuery::Range { after: Some(MessageId(0)), before: None }, 200, a).await.unwrap();
    assert!(forward.has_more && size(&forward.messages) <= PAGE_MAX_BYTES);
    assert_eq!(ids(&forward).first(), Some(&1), "the oldest are kept when paging forward");
    let around = store.messages(ch.id, HistoryQuery::Around(MessageId(3)), 200, a).await.unwrap();
    assert!(around.has_more && size(&around.messages) <= PAGE_MAX_BYTES && ids(&around).contains(&3));
    let search = store
        .search(b, SearchQuery { terms: vec!["word".into()], channel: None, before: None, limit: 100 })
        .await
        .unwrap();
    assert!(!search.messages.is_empty() && size(&search.messages) <= PAGE_MAX_BYTES);
    let next = search.next_before.expect("a cursor to continue from");
    let rest = store
        .search(b, SearchQuery { terms: vec!["word".into()], channel: None, before: Some(next), limit: 100 })
        .await
        .unwrap();
    assert!(!rest.messages.is_empty());
    assert!(rest.messages.iter().all(|m| !search.messages.contains(m)), "pages do not overlap");
    let mentions = store.mentions(b, None, 100).await.unwrap();
    assert!(!mentions.messages.is_empty() && size(&mentions.messages) <= PAGE_MAX_BYTES);
    assert!(mentions.next_before.is_some());
}

/// Someone who left a group is invited back, not added; blocks stop
/// direct messages both ways and adding the blocker anywhere.
pub async fn departures_invitations_and_blocks(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let g = store
        .create_group(NewGroup { creator: a, name: "team".into(), member_ids: vec![b], created_at: 1 })
        .await
        .unwrap();
    // b leaves on their own: a cannot put them back, only invite them.
    assert!(store.remove_member(g.id, b, b, 2).await.unwrap());
    assert_eq!(store.add_member(g.id, b, a, 3).await.unwrap(), MemberAdded::Invited);
    assert!(store.channel(g.id, b).await.unwrap().is_none());
    let invitations = store.invitations(b).await.unwrap();
    assert_eq!(invitations.len(), 1);
    assert_eq!(
        (invitations[0].channel_id, invitations[0].invited_by, invitations[0].name.as_deref()),
        (g.id, a, Some("team"))
    );
    assert!(matches!(store.accept_invitation(g.id, c, 4).await, Err(StoreError::NotFound)), "not invited");
    store.accept_invitation(g.id, b, 4).await.unwrap();
    assert!(store.channel(g.id, b).await.unwrap().is_some());
    assert!(store.invitations(b).await.unwrap().is_empty());
    // Removed by the creator (not a departure): others may add them again.
    assert!(store.remove_member(g.id, b, a, 5).await.unwrap());
    assert_eq!(store.add_member(g.id, b, a, 6).await.unwrap(), MemberAdded::Added);
    // A declined invitation is gone.
    assert!(store.remove_member(g.id, b, b, 7).await.unwrap());
    assert_eq!(store.add_member(g.id, b, a, 8).await.unwrap(), MemberAdded::Invited);
    assert!(store.decline_invitation(g.id, b).await.unwrap());
    assert!(!store.decline_invitation(g.id, b).await.unwrap());
    assert!(matches!(store.accept_invitation(g.id, b, 9).await, Err(StoreError::NotFound)));

    // c blocks a: no new direct channel, no adding c, no new group with c.
    assert!(store.block(c, a, 10).await.unwrap());
    assert!(!store.block(c, a, 10).await.unwrap());
    assert!(matches!(store.block(c, UserId(999), 10).await, Err(StoreError::NotFound)));
    assert_eq!(store.blocked_users(c).await.unwrap().iter().map(|u| u.id).collect::<Vec<_>>(), vec![a]);
    assert!(matches!(store.direct_channel(a, c, 11).await, Err(StoreError::Blocked)));
    assert!(matches!(store.direct_channel(c, a, 11).await, Err(StoreError::Blocked)), "both ways");
    assert!(matches!(store.add_member(g.id, c, a, 11).await, Err(StoreError::Blocked)));
    assert!(matches!(
        store.create_group(NewGroup { creator: a, name: "x".into(), member_ids: vec![c], created_at: 11 }).await,
        Err(StoreError::Blocked)
    ));
    // An existing direct channel takes no messages either way while blocked.
    assert!(store.unblock(c, a).await.unwrap());
    let (direct, _) = store.direct_channel(a, c, 12).await.unwrap();
    send(store, direct.id, a, "before").await;
    assert!(store.block(c, a, 13).await.unwrap());
    for (sender, cmid) in [(a, "x1"), (c, "x2")] {
        let refused = store
            .append_message(NewMessage {
                channel_id: direct.id,
                sender_id: sender,
                client_msg_id: cmid.into(),
                text: "x".into(),
                created_at: 14,
                attachments: Vec::new(),
                reply_to: None,
            })
            .await;
        assert!(matches!(refused, Err(StoreError::Blocked)), "{refused:?}");
    }
    assert!(store.unblock(c, a).await.unwrap());
    assert!(!store.unblock(c, a).await.unwrap());
    assert_eq!(send(store, direct.id, c, "after").await.message.message_id, MessageId(2));

    // Channel counts: a is in the group and the direct channel, c in the
    // direct channel, b (who left) in none.
    assert_eq!(store.users_at_channel_limit(&[a, b, c], 2).await.unwrap(), vec![a]);
    assert_eq!(store.users_at_channel_limit(&[a, b, c], 1).await.unwrap(), vec![a, c]);
}

pub async fn read_markers_only_move_forward(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
    for i in 1..=5 {
        send(store, ch.id, a, &format!("r{i}")).await;
    }
    assert_eq!(store.set_read(ch.id, b, MessageId(3)).await.unwrap(), Some(MessageId(3)));
    assert_eq!(store.set_read(ch.id, b, MessageId(2)).await.unwrap(), None);
    assert_eq!(store.set_read(ch.id, b, MessageId(99)).await.unwrap(), Some(MessageId(5)));
    assert_eq!(store.channel(ch.id, b).await.unwrap().unwrap().read_up_to, MessageId(5));
    assert_eq!(store.channel(ch.id, a).await.unwrap().unwrap().read_up_to, MessageId(0));
    let state = store.channel_state(ch.id).await.unwrap().unwrap();
    assert_eq!(state.for_member(b).read_up_to, MessageId(5));
    assert!(matches!(store.set_read(ch.id, c, MessageId(1)).await, Err(StoreError::NotAMember)));
}

pub async fn contacts_and_presence_audience(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let d = user(store, "dave").await;
    assert!(store.add_contact(a, b, 1).await.unwrap());
    assert!(!store.add_contact(a, b, 1).await.unwrap());
    assert!(store.add_contact(a, c, 1).await.unwrap());
    assert!(matches!(store.add_contact(a, UserId(999), 1).await, Err(StoreError::NotFound)));
    let ids: Vec<UserId> = store.contacts(a).await.unwrap().iter().map(|u| u.id).collect();
    assert_eq!(ids, vec![b, c]);
    assert!(store.remove_contact(a, c).await.unwrap());
    assert!(!store.remove_contact(a, c).await.unwrap());
    // b's audience: those b made contacts (a), those who share a channel
    // with b (d); following b (c) earns nothing without b's consent.
    store.create_group(NewGroup { creator: d, name: "g".into(), member_ids: vec![b], created_at: 1 }).await.unwrap();
    assert!(store.add_contact(b, a, 1).await.unwrap());
    assert!(store.add_contact(c, b, 1).await.unwrap());
    let mut audience = store.presence_audience(b).await.unwrap();
    audience.sort();
    assert_eq!(audience, vec![a, d]);
    assert_eq!(store.presence_audience(c).await.unwrap(), vec![b], "c made b a contact");
    assert_eq!(store.presence_visible(a, &[b, c, d, a]).await.unwrap(), vec![b, a]);
    assert_eq!(store.presence_visible(d, &[b]).await.unwrap(), vec![b]);
    assert!(store.presence_visible(c, &[b]).await.unwrap().is_empty(), "a follower b never accepted");
    // A block hides b from those b blocked, even fellow members.
    assert!(store.block(b, d, 2).await.unwrap());
    assert!(store.presence_visible(d, &[b]).await.unwrap().is_empty());
    assert_eq!(store.presence_audience(b).await.unwrap(), vec![a]);

    assert_eq!(store.last_active(&[a, UserId(999)]).await.unwrap(), vec![(a, None)]);
    store.set_last_active(&[a], 500).await.unwrap();
    store.set_last_active(&[a], 400).await.unwrap();
    assert_eq!(store.last_active(&[a]).await.unwrap(), vec![(a, Some(500))]);
    // Many users in one write; no time moves back.
    store.set_last_active(&[a, b, UserId(999)], 450).await.unwrap();
    assert_eq!(store.last_active(&[a, b]).await.unwrap(), vec![(a, Some(500)), (b, Some(450))]);
}

pub async fn search_and_mentions(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let ab = store.direct_channel(a, b, 1).await.unwrap().0.id;
    let bc = store.direct_channel(b, c, 1).await.unwrap().0.id;
    let say = |ch, sender, cmid: &str, text: &str| {
        store.append_message(NewMessage {
            channel_id: ch,
            sender_id: sender,
            client_msg_id: cmid.into(),
            text: text.into(),
            created_at: 1,
            attachments: Vec::new(),
            reply_to: None,
        })
    };
    say(ab, a, "1", "the Crème brûlée recipe").await.unwrap();
    say(bc, b, "2", "creme brulee for carol").await.unwrap();
    let mentioning = say(ab, a, "3", "@bob did you try the creme? cc @carol @alice").await.unwrap();
    assert_eq!(mentioning.mentions, vec![b], "carol is not a member, alice is the sender");
    say(ab, b, "4", "\"quoted\" OR NEAR( syntax*").await.unwrap();

    let find = |viewer, terms: &[&str], channel, before| {
        store.search(
            viewer,
            SearchQuery { terms: terms.iter().map(|t| t.to_string()).collect(), channel, before, limit: 10 },
        )
    };
    let texts = |p: &FeedPage| p.messages.iter().map(|m| m.client_msg_id.clone()).collect::<Vec<_>>();
    // Diacritics fold, newest first, only the viewer's channels.
    assert_eq!(texts(&find(a, &["creme"], None, None).await.unwrap()), vec!["3", "1"]);
    assert_eq!(texts(&find(b, &["creme"], None, None).await.unwrap()), vec!["3", "2", "1"]);
    assert_eq!(texts(&find(b, &["creme"], Some(bc), None).await.unwrap()), vec!["2"]);
    assert_eq!(texts(&find(c, &["recipe"], None, None).await.unwrap()), Vec::<String>::new());
    assert_eq!(texts(&find(a, &["rec"], None, None).await.unwrap()), vec!["1"], "last term is a prefix");
    assert_eq!(texts(&find(a, &["creme", "recipe"], None, None).await.unwrap()), vec!["1"]);
    // User input cannot inject FTS syntax.
    assert_eq!(texts(&find(b, &["\"quoted\"", "OR", "NEAR("], None, None).await.unwrap()), vec!["4"]);
    let first = store
        .search(b, SearchQuery { terms: vec!["creme".into()], channel: None, before: None, limit: 2 })
        .await
        .unwrap();
    assert_eq!(texts(&first), vec!["3", "2"]);
    let rest = find(b, &["creme"], None, first.next_before).await.unwrap();
    assert_eq!((texts(&rest), rest.next_before), (vec!["1".to_string()], None));

    let mentions = store.mentions(b, None, 10).await.unwrap();
    assert_eq!(texts(&mentions), vec!["3"]);
    assert!(mentions.messages[0].mentioned);
    let page = store.messages(ab, HistoryQuery::Latest, 10, b).await.unwrap();
    assert_eq!(page.messages.iter().map(|m| m.mentioned).collect::<Vec<_>>(), vec![false, true, false]);
    let page = store.messages(ab, HistoryQuery::Latest, 10, a).await.unwrap();
    assert!(page.messages.iter().all(|m| !m.mentioned));
    assert!(store.mentions(a, None, 10).await.unwrap().messages.is_empty());
}

pub async fn push_outbox_coalesces_and_retries(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let dev = |user| NewDevice { user_id: user, name: None, token_hash: vec![user.0 as u8, 9], created_at: 1 };
    let b_dev = store.create_device(dev(b)).await.unwrap();
    let c_dev = store.create_device(dev(c)).await.unwrap();
    let group = store
        .create_group(NewGroup { creator: a, name: "g".into(), member_ids: vec![b, c], created_at: 1 })
        .await
        .unwrap();
    assert!(store.push_recipients(group.id, a).await.unwrap().is_empty());
    store.set_push_target(b_dev, b, "{\"kind\":\"webhook\"}".into(), 1).await.unwrap();
    store.set_push_target(c_dev, c, "{\"kind\":\"webhook\"}".into(), 1).await.unwrap();
    assert_eq!(store.push_target(b_dev).await.unwrap().as_deref(), Some("{\"kind\":\"webhook\"}"));
    assert_eq!(store.push_target(DeviceId(999)).await.unwrap(), None);
    let recipients = store.push_recipients(group.id, a).await.unwrap();
    assert_eq!(
        recipients,
        vec![PushRecipient { user_id: b, device_id: b_dev }, PushRecipient { user_id: c, device_id: c_dev }]
    );
    assert_eq!(store.push_recipients(group.id, b).await.unwrap().len(), 1, "not the sender");
    store.set_muted(c, group.id, true).await.unwrap();
    assert_eq!(store.push_recipients(group.id, a).await.unwrap().len(), 1, "not a muted member");
    assert!(matches!(store.set_muted(UserId(999), group.id, true).await, Err(StoreError::NotAMember)));

    // Three messages in a burst: one notification, count 3, latest content.
    for n in 1..=3 {
        let item = PushItem { device_id: b_dev, channel_id: group.id, payload: format!("m{n}") };
        store.queue_pushes(vec![item], 100 + n).await.unwrap();
    }
    assert!(store.claim_due_pushes(100, 10, 1).await.unwrap().is_empty());
    let due = store.claim_due_pushes(101, 10, 1).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].payload.as_str(), due[0].count, due[0].user_id), ("m3", 3, b));
    // A failure postpones it; a merge during delivery survives the delivery.
    store.push_retry(due[0].id, 1, 500).await.unwrap();
    assert!(store.claim_due_pushes(499, 10, 1).await.unwrap().is_empty());
    let due = store.claim_due_pushes(500, 10, 1).await.unwrap();
    assert_eq!(due[0].attempts, 1);
    store
        .queue_pushes(vec![PushItem { device_id: b_dev, channel_id: group.id, payload: "m4".into() }], 600)
        .await
        .unwrap();
    store.push_delivered(due[0].id, due[0].version).await.unwrap();
    let after = store.claim_due_pushes(1_000, 10, 1).await.unwrap();
    assert_eq!((after.len(), after[0].payload.as_str(), after[0].count), (1, "m4", 4));
    store.push_delivered(after[0].id, after[0].version).await.unwrap();
    assert!(store.claim_due_pushes(1_000, 10, 1).await.unwrap().is_empty());
    // Logging out (revoking) forgets the target and its queue.
    store
        .queue_pushes(vec![PushItem { device_id: b_dev, channel_id: group.id, payload: "m5".into() }], 1)
        .await
        .unwrap();
    store.revoke_device(b_dev).await.unwrap();
    assert!(store.claim_due_pushes(1_000, 10, 1).await.unwrap().is_empty());
    assert!(store.push_recipients(group.id, a).await.unwrap().is_empty());
}

/// Two deliverers claiming at once never get the same row; a lease that
/// runs out (a deliverer died) hands the row to the next claim.
pub async fn push_claims_are_exclusive(store: Arc<dyn Store>) {
    let (a, b) = two_users(&*store).await;
    let dev =
        store.create_device(NewDevice { user_id: b, name: None, token_hash: vec![7], created_at: 1 }).await.unwrap();
    store.set_push_target(dev, b, "{}".into(), 1).await.unwrap();
    let mut channels = Vec::new();
    for n in 0..20 {
        let c = user(&*store, &format!("peer{n}")).await;
        let g = store
            .create_group(NewGroup { creator: a, name: "g".into(), member_ids: vec![b, c], created_at: 1 })
            .await
            .unwrap();
        channels.push(g.id);
    }
    let items = channels.iter().map(|&ch| PushItem { device_id: dev, channel_id: ch, payload: "p".into() }).collect();
    store.queue_pushes(items, 10).await.unwrap();
    let claims: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_due_pushes(100, 8, 1_000).await.unwrap() })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for claim in claims {
        for item in claim.await.unwrap() {
            assert!(seen.insert(item.id), "row {} claimed twice", item.id);
        }
    }
    assert_eq!(seen.len(), 20);
    assert!(store.claim_due_pushes(500, 100, 1_000).await.unwrap().is_empty(), "all leased");
    let again = store.claim_due_pushes(1_200, 100, 1_000).await.unwrap();
    assert_eq!(again.len(), 20, "expired leases are claimed again");
}

/// Runs `f` twice at once and returns both outcomes.
async fn twice_at_once<T, F, Fut>(store: &Arc<dyn Store>, f: F) -> (T, T)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (one, two) = (tokio::spawn(f(store.clone())), tokio::spawn(f(store.clone())));
    (one.await.unwrap(), two.await.unwrap())
}

pub async fn conflicting_signups_of_one_name(store: Arc<dyn Store>) {
    for round in 0..20 {
        let name = format!("same{round}");
        let signup = |store: Arc<dyn Store>| {
            let name = name.clone();
            async move {
                store
                    .create_user(NewUser {
                        username: name,
                        display_name: "x".into(),
                        password_hash: "h".into(),
                        created_at: 1,
                    })
                    .await
            }
        };
        let (one, two) = twice_at_once(&store, signup).await;
        let taken = [&one, &two].iter().filter(|r| matches!(r, Err(StoreError::UsernameTaken))).count();
        assert!(one.is_ok() != two.is_ok() && taken == 1, "round {round}: {one:?} / {two:?}");
    }
}

pub async fn conflicting_first_direct_channels(store: Arc<dyn Store>) {
    for round in 0..20 {
        let a = user(&*store, &format!("left{round}")).await;
        let b = user(&*store, &format!("right{round}")).await;
        let (one, two) = (
            tokio::spawn({
                let store = store.clone();
                async move { store.direct_channel(a, b, 1).await }
            }),
            tokio::spawn({
                let store = store.clone();
                async move { store.direct_channel(b, a, 1).await }
            }),
        );
        let ((one, one_created), (two, two_created)) = (one.await.unwrap().unwrap(), two.await.unwrap().unwrap());
        assert_eq!(one.id, two.id, "round {round}: one channel per pair");
        assert!(one_created != two_created, "round {round}: exactly one created it");
    }
}

pub async fn conflicting_adds_of_the_last_member(store: Arc<dyn Store>) {
    let creator = user(&*store, "creator").await;
    let mut others = Vec::new();
    for i in 0..98 {
        others.push(user(&*store, &format!("m{i}")).await);
    }
    let group =
        store.create_group(NewGroup { creator, name: "g".into(), member_ids: others, created_at: 1 }).await.unwrap();
    let (x, y) = (user(&*store, "late1").await, user(&*store, "late2").await);
    let (one, two) = (
        tokio::spawn({
            let store = store.clone();
            async move { store.add_member(group.id, x, creator, 2).await }
        }),
        tokio::spawn({
            let store = store.clone();
            async move { store.add_member(group.id, y, creator, 2).await }
        }),
    );
    let (one, two) = (one.await.unwrap(), two.await.unwrap());
    let added = [&one, &two].iter().filter(|r| matches!(r, Ok(MemberAdded::Added))).count();
    let full = [&one, &two].iter().filter(|r| matches!(r, Err(StoreError::GroupTooLarge))).count();
    assert_eq!((added, full), (1, 1), "{one:?} / {two:?}");
    assert_eq!(store.members(group.id).await.unwrap().len(), 100);
}

pub async fn conflicting_read_markers(store: Arc<dyn Store>) {
    let (a, b) = two_users(&*store).await;
    let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
    for i in 1..=50 {
        send(&*store, ch.id, a, &format!("r{i}")).await;
    }
    for round in 0..10 {
        let (high, low) = (MessageId(40 + round), MessageId(5 + round));
        let (one, two) = (
            tokio::spawn({
                let store = store.clone();
                async move { store.set_read(ch.id, b, high).await }
            }),
            tokio::spawn({
                let store = store.clone();
                async move { store.set_read(ch.id, b, low).await }
            }),
        );
        one.await.unwrap().unwrap();
        two.await.unwrap().unwrap();
        let marker = store.channel(ch.id, b).await.unwrap().unwrap().read_up_to;
        assert_eq!(marker, high, "round {round}: the marker moved backwards");
    }
}

pub async fn conflicting_resends_of_one_message(store: Arc<dyn Store>) {
    let (a, b) = two_users(&*store).await;
    let (ch, _) = store.direct_channel(a, b, 1).await.unwrap();
    for round in 0..20 {
        let cmid = format!("twice{round}");
        let resend = |store: Arc<dyn Store>| {
            let cmid = cmid.clone();
            async move {
                store
                    .append_message(NewMessage {
                        channel_id: ch.id,
                        sender_id: a,
                        client_msg_id: cmid,
                        text: "x".into(),
                        created_at: 1,
                        attachments: Vec::new(),
                        reply_to: None,
                    })
                    .await
            }
        };
        let (one, two) = twice_at_once(&store, resend).await;
        let (one, two) = (one.unwrap(), two.unwrap());
        assert_eq!(one.message, two.message, "round {round}: both get the one stored message");
        assert!(one.duplicate != two.duplicate, "round {round}: stored once");
    }
    let last = store.channel(ch.id, a).await.unwrap().unwrap().last_message_id;
    assert_eq!(last, MessageId(20), "no id was spent twice");
}

pub async fn closed_store_refuses_work(store: &dyn Store) {
    store.close().await;
    assert!(matches!(store.user(UserId(1)).await, Ok(None) | Err(StoreError::Closed)));
    assert!(matches!(user_result(store).await, Err(StoreError::Closed)));
}

async fn user_result(store: &dyn Store) -> Result<chinwag_proto::User, StoreError> {
    store
        .create_user(NewUser {
            username: "late".into(),
            display_name: "l".into(),
            password_hash: "h".into(),
            created_at: 1,
        })
        .await
}

fn new_upload(id: &str, owner: UserId, size: u64, created_at: i64) -> NewUpload {
    NewUpload {
        id: id.into(),
        owner,
        name: format!("{id}.png"),
        content_type: "image/png".into(),
        size,
        width: Some(64),
        height: Some(48),
        created_at,
    }
}

fn with_files(channel: ChannelId, sender: UserId, cmid: &str, uploads: &[&str]) -> NewMessage {
    NewMessage {
        channel_id: channel,
        sender_id: sender,
        client_msg_id: cmid.into(),
        text: String::new(),
        created_at: 5,
        attachments: uploads.iter().map(|u| u.to_string()).collect(),
        reply_to: None,
    }
}

pub async fn uploads_are_attached_viewed_and_collected(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let (channel, _) = store.direct_channel(a, b, 1).await.unwrap();
    // The quota counts every upload of the owner.
    store.begin_upload(new_upload("up1", a, 100, 10), 150).await.unwrap();
    assert!(matches!(store.begin_upload(new_upload("up2", a, 60, 10), 150).await, Err(StoreError::QuotaExceeded)));
    store.begin_upload(new_upload("up2", a, 50, 10), 150).await.unwrap();
    store.begin_upload(new_upload("old", b, 10, 1), 150).await.unwrap();
    // Not attachable before its bytes are stored, nor by anyone else.
    let early = store.append_message(with_files(channel.id, a, "m1", &["up1"])).await;
    assert!(matches!(early, Err(StoreError::NotFound)), "{early:?}");
    store.upload_stored("up1").await.unwrap();
    store.upload_stored("old").await.unwrap();
    let foreign = store.append_message(with_files(channel.id, b, "m1", &["up1"])).await;
    assert!(matches!(foreign, Err(StoreError::NotFound)), "{foreign:?}");
    assert!(matches!(store.upload_stored("nope").await, Err(StoreError::NotFound)));
    assert!(!store.may_view_upload("up1", b).await.unwrap(), "not sent yet");
    assert!(store.may_view_upload("up1", a).await.unwrap(), "the owner sees it");
    assert!(!store.may_view_upload("up2", a).await.unwrap(), "not stored yet");

    let sent = store.append_message(with_files(channel.id, a, "m1", &["up1"])).await.unwrap();
    let files = &sent.message.attachments;
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].id.as_str(), files[0].name.as_str(), files[0].size, files[0].width, files[0].height),
        ("up1", "up1.png", 100, Some(64), Some(48))
    );
    assert_eq!(files[0].url, "", "URLs are signed by the server, not stored");
    let resent = store.append_message(with_files(channel.id, a, "m1", &["up1"])).await.unwrap();
    assert!(resent.duplicate);
    assert_eq!(resent.message.attachments, sent.message.attachments);
    let page = store.messages(channel.id, HistoryQuery::Latest, 10, b).await.unwrap();
    assert_eq!(page.messages[0].attachments, sent.message.attachments);
    let plain = send(store, channel.id, a, "m2").await;
    assert!(plain.message.attachments.is_empty());
    assert!(store.may_view_upload("up1", b).await.unwrap(), "a member of the channel sees it");
    assert!(!store.may_view_upload("up1", c).await.unwrap(), "nobody else does");
    assert!(!store.may_view_upload("missing", a).await.unwrap());
    let stored = store.upload("up1").await.unwrap().unwrap();
    assert_eq!((stored.owner, stored.stored, stored.upload.size), (a, true, 100));

    // Collected: uploads never attached, past the cut-off; not sent ones.
    let collectable = store.collectable_uploads(5, 10).await.unwrap();
    assert_eq!(collectable, vec!["old".to_string()]);
    assert!(!store.forget_upload("up1", 5).await.unwrap(), "attached uploads stay");
    assert!(store.forget_upload("old", 5).await.unwrap());
    assert!(!store.forget_upload("old", 5).await.unwrap(), "once");
    assert_eq!(store.upload("old").await.unwrap(), None);
    assert_eq!(store.collectable_uploads(100, 10).await.unwrap(), vec!["up2".to_string()]);
}

fn say(channel: ChannelId, sender: UserId, cmid: &str, text: &str) -> NewMessage {
    NewMessage {
        channel_id: channel,
        sender_id: sender,
        client_msg_id: cmid.into(),
        text: text.into(),
        created_at: 5,
        attachments: Vec::new(),
        reply_to: None,
    }
}

async fn change(
    store: &dyn Store,
    channel: ChannelId,
    id: MessageId,
    actor: UserId,
    change: MessageChange,
) -> Result<Changed, StoreError> {
    store.change_message(channel, id, actor, change, 50).await
}

fn edit(text: &str) -> MessageChange {
    MessageChange::Edit { text: text.into() }
}

fn react(emoji: &str, add: bool) -> MessageChange {
    MessageChange::React { emoji: emoji.into(), add }
}

pub async fn edits_reactions_and_replies(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let group = store
        .create_group(NewGroup { creator: b, name: "g".into(), member_ids: vec![a], created_at: 1 })
        .await
        .unwrap();
    let first = store.append_message(say(group.id, a, "m1", "helo wrold")).await.unwrap().message;
    assert_eq!((first.change_seq, first.edited_at, first.deleted, first.reply_to), (0, None, false, None));
    // Replies name a message of the same channel.
    let reply = NewMessage { reply_to: Some(first.message_id), ..say(group.id, b, "m2", "hi") };
    assert_eq!(store.append_message(reply).await.unwrap().message.reply_to, Some(first.message_id));
    let dangling = NewMessage { reply_to: Some(MessageId(99)), ..say(group.id, b, "m3", "?") };
    assert!(matches!(store.append_message(dangling).await, Err(StoreError::MessageNotFound)));

    // Only the sender edits; each change takes the channel's next change_seq.
    assert!(matches!(change(store, group.id, first.message_id, b, edit("x")).await, Err(StoreError::NotAllowed)));
    assert!(matches!(change(store, group.id, first.message_id, c, edit("x")).await, Err(StoreError::NotAMember)));
    assert!(matches!(change(store, group.id, MessageId(42), a, edit("x")).await, Err(StoreError::MessageNotFound)));
    assert!(matches!(change(store, group.id, first.message_id, a, edit("")).await, Err(StoreError::TextEmpty)));
    let edited = change(store, group.id, first.message_id, a, edit("hello @bob, world")).await.unwrap();
    assert!(edited.changed);
    assert_eq!(
        (edited.message.text.as_str(), edited.message.edited_at, edited.message.change_seq),
        ("hello @bob, world", Some(50), 1)
    );
    assert_eq!(edited.mentions, vec![b], "an edited-in mention counts");
    assert_eq!(edited.members, vec![a, b]);
    let same = change(store, group.id, first.message_id, a, edit("hello @bob, world")).await.unwrap();
    assert!(!same.changed && same.message.change_seq == 1, "the same text changes nothing");

    let r1 = change(store, group.id, first.message_id, b, react("👍", true)).await.unwrap();
    let r2 = change(store, group.id, first.message_id, a, react("👍", true)).await.unwrap();
    let again = change(store, group.id, first.message_id, a, react("👍", true)).await.unwrap();
    assert_eq!((r1.message.change_seq, r2.message.change_seq, again.changed), (2, 3, false));
    assert_eq!(r2.message.reactions, vec![chinwag_proto::Reaction { emoji: "👍".into(), user_ids: vec![b, a] }]);
    assert_eq!(r2.mentions, vec![b], "mentions stay with the message");
    let removed = change(store, group.id, first.message_id, b, react("👍", false)).await.unwrap();
    assert_eq!(removed.message.reactions[0].user_ids, vec![a]);

    // Search and the mentions feed follow the edit.
    let words = |w: &str| SearchQuery { terms: vec![w.into()], channel: None, before: None, limit: 10 };
    assert!(store.search(a, words("wrold")).await.unwrap().messages.is_empty(), "the old words are gone");
    assert_eq!(store.search(a, words("world")).await.unwrap().messages.len(), 1);
    assert_eq!(store.mentions(b, None, 10).await.unwrap().messages.len(), 1);

    // Channels and `changed_after` tell what changed since a point.
    let channel = store.channel(group.id, a).await.unwrap().unwrap();
    assert_eq!(channel.last_change_seq, 4);
    let page = store.changes(group.id, 0, 10, b).await.unwrap();
    assert_eq!(page.messages.len(), 1, "each changed message once, as it is now");
    assert_eq!((page.messages[0].change_seq, page.messages[0].mentioned), (4, true));
    assert!(store.changes(group.id, 4, 10, b).await.unwrap().messages.is_empty());
    assert!(matches!(store.changes(group.id, 0, 10, c).await, Err(StoreError::NotAMember)));
    let history = store.messages(group.id, HistoryQuery::Latest, 10, b).await.unwrap();
    assert_eq!(history.messages[0], page.messages[0]);
}

pub async fn deletes_leave_an_empty_tombstone(store: &dyn Store) {
    let (a, b) = two_users(store).await;
    let c = user(store, "carol").await;
    let group = store
        .create_group(NewGroup { creator: b, name: "g".into(), member_ids: vec![a, c], created_at: 1 })
        .await
        .unwrap();
    store.begin_upload(new_upload("f1", a, 10, 1), 1_000).await.unwrap();
    store.upload_stored("f1").await.unwrap();
    let with_file = NewMessage { text: "secret plans @carol".into(), ..with_files(group.id, a, "m1", &["f1"]) };
    let doomed = store.append_message(with_file).await.unwrap().message;
    let kept = store.append_message(say(group.id, c, "m2", "secret recipe")).await.unwrap().message;
    change(store, group.id, doomed.message_id, b, react("🎉", true)).await.unwrap();

    // Its sender or the group's creator may delete; nobody else.
    assert!(matches!(
        change(store, group.id, doomed.message_id, c, MessageChange::Delete).await,
        Err(StoreError::NotAllowed)
    ));
    let gone = change(store, group.id, doomed.message_id, b, MessageChange::Delete).await.unwrap();
    let tomb = &gone.message;
    assert!(tomb.deleted && tomb.text.is_empty() && tomb.attachments.is_empty() && tomb.reactions.is_empty());
    assert_eq!((tomb.message_id, tomb.sender_id, tomb.change_seq), (doomed.message_id, a, 2));
    assert_eq!(gone.released_uploads, vec!["f1".to_string()]);
    assert!(gone.mentions.is_empty());
    let twice = change(store, group.id, doomed.message_id, a, MessageChange::Delete).await.unwrap();
    assert!(!twice.changed, "deleting twice changes nothing");
    assert!(matches!(
        change(store, group.id, doomed.message_id, a, edit("back")).await,
        Err(StoreError::MessageNotFound)
    ));
    assert!(matches!(
        change(store, group.id, doomed.message_id, b, react("👍", true)).await,
        Err(StoreError::MessageNotFound)
    ));

    // Gone from history, search and mentions; the id stays (no gap).
    let history = store.messages(group.id, HistoryQuery::Around(doomed.message_id), 10, c).await.unwrap();
    let ids: Vec<i64> = history.messages.iter().map(|m| m.message_id.0).collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(history.messages[0], *tomb);
    let words = SearchQuery { terms: vec!["secret".into()], channel: None, before: None, limit: 10 };
    let found = store.search(c, words).await.unwrap().messages;
    assert_eq!(found.iter().map(|m| m.message_id).collect::<Vec<_>>(), vec![kept.message_id]);
    assert!(store.mentions(c, None, 10).await.unwrap().messages.is_empty());
    // Its file is no longer held: others may not see it, collection takes it.
    assert!(!store.may_view_upload("f1", c).await.unwrap());
    assert_eq!(store.collectable_uploads(0, 10).await.unwrap(), vec!["f1".to_string()]);
}

pub async fn concurrent_changes_never_share_a_change_seq(store: Arc<dyn Store>) {
    let (a, b) = two_users(store.as_ref()).await;
    let mut members = vec![b];
    for i in 0..6 {
        members.push(user(store.as_ref(), &format!("user{i}")).await);
    }
    let group = store
        .create_group(NewGroup { creator: a, name: "g".into(), member_ids: members.clone(), created_at: 1 })
        .await
        .unwrap();
    let target = store.append_message(say(group.id, a, "m1", "react to me")).await.unwrap().message;
    let mut tasks = Vec::new();
    for (i, &member) in members.iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for emoji in ["👍", "🎉", "❤"] {
                let changed = store
                    .change_message(group.id, target.message_id, member, react(emoji, true), 60 + i as i64)
                    .await
                    .unwrap();
                seqs.push(changed.message.change_seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "every change took its own change_seq, none lost");
    let now = store.messages(group.id, HistoryQuery::Latest, 1, a).await.unwrap().messages.remove(0);
    assert_eq!(now.change_seq, seqs.len() as u64);
    assert!(now.reactions.iter().all(|r| r.user_ids.len() == members.len()), "no reaction lost");
}

/// Generates one `#[tokio::test]` per contract function for a backend.
#[macro_export]
macro_rules! store_contract_tests {
    ($open:path) => {
        mod contract_suite {
            use super::*;
            use std::sync::Arc;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (_guard, store) = $open().await;
                        $crate::contract::$name(&store).await;
                    }
                };
            }
            case!(users_and_devices);
            case!(client_text_is_kept_byte_for_byte);
            case!(shared_secrets_are_created_once);
            case!(disabling_revokes_every_token);
            case!(direct_channels_are_one_per_pair);
            case!(groups_and_members);
            case!(departures_invitations_and_blocks);
            case!(message_ids_are_sequential_and_idempotent);
            case!(history_pages);
            case!(pages_stay_within_their_byte_budget);
            case!(read_markers_only_move_forward);
            case!(closed_store_refuses_work);
            case!(contacts_and_presence_audience);
            case!(search_and_mentions);
            case!(push_outbox_coalesces_and_retries);
            case!(uploads_are_attached_viewed_and_collected);
            case!(edits_reactions_and_replies);
            case!(deletes_leave_an_empty_tombstone);

            macro_rules! shared_case {
                ($shared:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $shared() {
                        let (_guard, store) = $open().await;
                        $crate::contract::$shared(Arc::new(store)).await;
                    }
                };
            }
            shared_case!(conflicting_signups_of_one_name);
            shared_case!(conflicting_first_direct_channels);
            shared_case!(conflicting_adds_of_the_last_member);
            shared_case!(conflicting_read_markers);
            shared_case!(conflicting_resends_of_one_message);
            shared_case!(concurrent_appends_have_no_gaps);
            shared_case!(refused_writes_leave_no_trace);
            shared_case!(push_claims_are_exclusive);
            shared_case!(conflicting_first_secrets);
            shared_case!(concurrent_changes_never_share_a_change_seq);
        }
    };
}
