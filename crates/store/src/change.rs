//! What an edit, a delete or a reaction does to a message, decided once for
//! every backend: each backend reads the message, asks [`apply`], and
//! writes back what it returns with the channel's next `change_seq`.

use crate::{MessageChange, StoreError};
use chinwag_proto::{ChannelKind, Message, Reaction, UserId};

/// The channel facts a change's permission depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelFacts {
    pub kind: ChannelKind,
    pub created_by: UserId,
}

/// Applies `change` by `actor` to `message` (all checks first): `Ok(true)`
/// when the message changed, `Ok(false)` when the change was already in
/// effect. Does not touch `change_seq`.
pub(crate) fn apply(
    message: &mut Message,
    actor: UserId,
    channel: ChannelFacts,
    change: &MessageChange,
    now_ms: i64,
) -> Result<bool, StoreError> {
    match change {
        MessageChange::Edit { text } => {
            if message.deleted {
                return Err(StoreError::MessageNotFound);
            }
            if message.sender_id != actor {
                return Err(StoreError::NotAllowed);
            }
            if text.is_empty() && message.attachments.is_empty() {
                return Err(StoreError::TextEmpty);
            }
            if *text == message.text {
                return Ok(false);
            }
            message.text.clone_from(text);
            message.edited_at = Some(now_ms);
            Ok(true)
        }
        MessageChange::Delete => {
            let creator_of_group = channel.kind == ChannelKind::Group && channel.created_by == actor;
            if message.sender_id != actor && !creator_of_group {
                return Err(StoreError::NotAllowed);
            }
            if message.deleted {
                return Ok(false);
            }
            message.deleted = true;
            message.text.clear();
            message.attachments.clear();
            message.reactions.clear();
            Ok(true)
        }
        MessageChange::React { emoji, add } => {
            if message.deleted {
                return Err(StoreError::MessageNotFound);
            }
            Ok(react(&mut message.reactions, emoji, actor, *add))
        }
    }
}

/// Adds or removes one user's reaction; whether anything changed. An
/// emoji nobody uses any more disappears from the list.
fn react(reactions: &mut Vec<Reaction>, emoji: &str, user: UserId, add: bool) -> bool {
    let index = reactions.iter().position(|r| r.emoji == emoji);
    match (index, add) {
        (None, false) => false,
        (None, true) => {
            reactions.push(Reaction { emoji: emoji.to_owned(), user_ids: vec![user] });
            true
        }
        (Some(i), true) => {
            let users = &mut reactions[i].user_ids;
            if users.contains(&user) {
                return false;
            }
            users.push(user);
            true
        }
        (Some(i), false) => {
            let users = &mut reactions[i].user_ids;
            let Some(at) = users.iter().position(|&u| u == user) else { return false };
            users.remove(at);
            if users.is_empty() {
                reactions.remove(i);
            }
            true
        }
    }
}

/// A message's reactions as stored with it (JSON).
pub(crate) fn reactions_json(reactions: &[Reaction]) -> String {
    serde_json::to_string(reactions).unwrap_or_else(|_| "[]".into())
}

/// Reads [`reactions_json`]'s output; a row that cannot be read has none.
pub(crate) fn reactions_from_json(json: &str) -> Vec<Reaction> {
    serde_json::from_str(json).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chinwag_proto::{ChannelId, MessageId};

    fn message() -> Message {
        Message {
            channel_id: ChannelId(1),
            message_id: MessageId(1),
            sender_id: UserId(1),
            client_msg_id: "c".into(),
            text: "hello".into(),
            created_at: 1,
            mentioned: false,
            attachments: Vec::new(),
            edited_at: None,
            deleted: false,
            reply_to: None,
            reactions: Vec::new(),
            change_seq: 0,
        }
    }

    const GROUP: ChannelFacts = ChannelFacts { kind: ChannelKind::Group, created_by: UserId(9) };
    const DIRECT: ChannelFacts = ChannelFacts { kind: ChannelKind::Direct, created_by: UserId(9) };

    #[test]
    fn only_the_sender_edits_and_the_same_text_changes_nothing() {
        let mut m = message();
        let edit = |t: &str| MessageChange::Edit { text: t.into() };
        assert!(matches!(apply(&mut m, UserId(2), GROUP, &edit("x"), 5), Err(StoreError::NotAllowed)));
        assert!(matches!(apply(&mut m, UserId(1), GROUP, &edit(""), 5), Err(StoreError::TextEmpty)));
        assert!(!apply(&mut m, UserId(1), GROUP, &edit("hello"), 5).unwrap());
        assert!(apply(&mut m, UserId(1), GROUP, &edit("hullo"), 5).unwrap());
        assert_eq!((m.text.as_str(), m.edited_at), ("hullo", Some(5)));
    }

    #[test]
    fn the_sender_or_the_groups_creator_deletes_once() {
        let mut m = message();
        m.reactions.push(Reaction { emoji: "👍".into(), user_ids: vec![UserId(2)] });
        assert!(matches!(apply(&mut m, UserId(9), DIRECT, &MessageChange::Delete, 5), Err(StoreError::NotAllowed)));
        assert!(apply(&mut m, UserId(9), GROUP, &MessageChange::Delete, 5).unwrap());
        assert!(m.deleted && m.text.is_empty() && m.reactions.is_empty());
        assert!(!apply(&mut m, UserId(1), GROUP, &MessageChange::Delete, 6).unwrap());
        let edit = MessageChange::Edit { text: "back".into() };
        assert!(matches!(apply(&mut m, UserId(1), GROUP, &edit, 7), Err(StoreError::MessageNotFound)));
    }

    #[test]
    fn reactions_are_idempotent_per_user_and_emoji() {
        let mut m = message();
        let react = |e: &str, add| MessageChange::React { emoji: e.into(), add };
        assert!(apply(&mut m, UserId(2), GROUP, &react("👍", true), 5).unwrap());
        assert!(!apply(&mut m, UserId(2), GROUP, &react("👍", true), 5).unwrap());
        assert!(apply(&mut m, UserId(3), GROUP, &react("👍", true), 5).unwrap());
        assert!(apply(&mut m, UserId(3), GROUP, &react("🎉", true), 5).unwrap());
        assert_eq!(m.reactions[0].user_ids, vec![UserId(2), UserId(3)]);
        assert!(apply(&mut m, UserId(3), GROUP, &react("🎉", false), 5).unwrap());
        assert!(!apply(&mut m, UserId(3), GROUP, &react("🎉", false), 5).unwrap());
        assert_eq!(m.reactions.len(), 1);
        assert_eq!(reactions_from_json(&reactions_json(&m.reactions)), m.reactions);
    }
}
