//! WebSocket frames. Client frames are decoded through one flat struct so a
//! bad frame yields a precise `bad_request` (and the `ref` to echo) instead
//! of a generic serde error; server frames are a tagged enum.

use crate::error::{ErrorCode, WireError};
use crate::ids::{ChannelId, DeviceId, MessageId, UserId};
use crate::objects::{Channel, Invitation, Message, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Auth {
        token: String,
    },
    Send {
        client_msg_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        channel_id: Option<ChannelId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to_user_id: Option<UserId>,
        text: String,
        /// Upload ids (1-10); with them, `text` may be empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<String>,
        /// The message of the same channel this one answers.
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageId>,
    },
    Sync {
        channel_id: ChannelId,
        after: MessageId,
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    Read {
        channel_id: ChannelId,
        message_id: MessageId,
    },
    Typing {
        channel_id: ChannelId,
    },
    Ping,
}

/// A client frame that could not be decoded, with what to echo as `ref`.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub reference: Option<Value>,
    pub error: WireError,
}

/// Every field any client frame has; which ones are required depends on `type`.
#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<Value>,
    token: Option<String>,
    client_msg_id: Option<String>,
    channel_id: Option<ChannelId>,
    to_user_id: Option<UserId>,
    text: Option<String>,
    attachments: Option<Vec<String>>,
    reply_to: Option<MessageId>,
    after: Option<MessageId>,
    limit: Option<u32>,
    message_id: Option<MessageId>,
}

impl ClientFrame {
    /// Decodes one text frame. On success also returns the client's `ref`
    /// (or, for `send`, its `client_msg_id`) to echo in a later error.
    pub fn decode(text: &str) -> Result<(ClientFrame, Option<Value>), FrameError> {
        let raw: RawFrame = serde_json::from_str(text).map_err(|e| FrameError {
            reference: salvage_ref(text),
            error: WireError::bad_request(format!("malformed frame: {e}")),
        })?;
        let reference = raw.reference.clone().or_else(|| raw.client_msg_id.clone().map(Value::String));
        let fail =
            |message: String| FrameError { reference: reference.clone(), error: WireError::bad_request(message) };
        let kind = raw.kind.as_deref().ok_or_else(|| fail("missing field `type`".into()))?;
        fn need<T>(v: Option<T>, kind: &str, field: &str) -> Result<T, String> {
            v.ok_or_else(|| format!("`{kind}` frame needs field `{field}`"))
        }
        let frame = match kind {
            "auth" => ClientFrame::Auth { token: need(raw.token, kind, "token").map_err(fail)? },
            "send" => {
                let client_msg_id = need(raw.client_msg_id, kind, "client_msg_id").map_err(fail)?;
                let attachments = raw.attachments.unwrap_or_default();
                // With attachments the text may be left out.
                let text = match raw.text {
                    Some(text) => text,
                    None if !attachments.is_empty() => String::new(),
                    None => return Err(fail("`send` frame needs field `text`".into())),
                };
                if raw.channel_id.is_some() == raw.to_user_id.is_some() {
                    return Err(fail("`send` frame needs exactly one of `channel_id` and `to_user_id`".into()));
                }
                ClientFrame::Send {
                    client_msg_id,
                    channel_id: raw.channel_id,
                    to_user_id: raw.to_user_id,
                    text,
                    attachments,
                    reply_to: raw.reply_to,
                }
            }
            "sync" => ClientFrame::Sync {
                channel_id: need(raw.channel_id, kind, "channel_id").map_err(fail)?,
                after: raw.after.unwrap_or_default(),
                limit: raw.limit,
            },
            "read" => ClientFrame::Read {
                channel_id: need(raw.channel_id, kind, "channel_id").map_err(fail)?,
                message_id: need(raw.message_id, kind, "message_id").map_err(fail)?,
            },
            "typing" => ClientFrame::Typing { channel_id: need(raw.channel_id, kind, "channel_id").map_err(fail)? },
            "ping" => ClientFrame::Ping,
            other => return Err(fail(format!("unknown frame type `{other}`"))),
        };
        Ok((frame, reference))
    }
}

/// Best effort: the `ref` or `client_msg_id` of a frame that failed to decode.
fn salvage_ref(text: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(text).ok()?;
    let obj = value.as_object()?;
    obj.get("ref").cloned().or_else(|| obj.get("client_msg_id").filter(|v| v.is_string()).cloned())
}

/// Online or offline, as presence reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Online,
    Offline,
}

/// What the server sends on a WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Ready {
        user: User,
        device_id: DeviceId,
        heartbeat_interval_ms: u64,
        channels: Vec<Channel>,
    },
    Ack {
        client_msg_id: String,
        channel_id: ChannelId,
        message_id: MessageId,
        created_at: i64,
    },
    Message(Message),
    /// An existing message was edited, deleted or reacted to: the whole
    /// message as it is now.
    MessageUpdated {
        message: Message,
    },
    Read {
        channel_id: ChannelId,
        user_id: UserId,
        message_id: MessageId,
    },
    Typing {
        channel_id: ChannelId,
        user_id: UserId,
    },
    Presence {
        user_id: UserId,
        status: PresenceStatus,
        last_active_at: Option<i64>,
    },
    Channel {
        channel: Channel,
    },
    ChannelRemoved {
        channel_id: ChannelId,
    },
    /// Someone invited the user back into a group they had left.
    Invitation {
        invitation: Invitation,
    },
    Synced {
        channel_id: ChannelId,
        up_to: MessageId,
        has_more: bool,
    },
    Pong,
    Error {
        code: ErrorCode,
        message: String,
        #[serde(rename = "ref")]
        reference: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame {
    /// The `error` frame for a failure, echoing the client's `ref`.
    pub fn error(error: &WireError, reference: Option<Value>) -> ServerFrame {
        ServerFrame::Error {
            code: error.code,
            message: error.message.clone(),
            reference,
            retry_after_ms: error.retry_after_ms,
        }
    }

    /// JSON text of the frame. Serialising these types cannot fail (no maps
    /// with non-string keys, no foreign `Serialize` impls).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"type":"error","code":"internal","message":"unencodable frame","ref":null}"#.into())
    }
}

impl From<ErrorCode> for WireError {
    fn from(code: ErrorCode) -> Self {
        WireError::new(code, code.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_send_and_keeps_ref() {
        let (f, r) = ClientFrame::decode(r#"{"type":"send","client_msg_id":"c1","channel_id":3,"text":"hi"}"#).unwrap();
        assert_eq!(r, Some(Value::String("c1".into())));
        assert!(matches!(f, ClientFrame::Send { channel_id: Some(ChannelId(3)), .. }));
    }

    #[test]
    fn bad_frames_are_bad_requests_with_ref() {
        let e = ClientFrame::decode(r#"{"type":"nope","ref":7}"#).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::BadRequest);
        assert_eq!(e.reference, Some(Value::from(7)));
        let e = ClientFrame::decode(r#"{"type":"send","client_msg_id":"x","channel_id":"a"}"#).unwrap_err();
        assert_eq!(e.reference, Some(Value::String("x".into())));
        for bad in ["", "{", "[]", "null", "{\"type\":5}", "{\"type\":\"send\",\"text\":\"x\"}"] {
            assert_eq!(ClientFrame::decode(bad).unwrap_err().error.code, ErrorCode::BadRequest);
        }
    }

    #[test]
    fn server_frames_round_trip() {
        let frame = ServerFrame::Synced { channel_id: ChannelId(1), up_to: MessageId(9), has_more: false };
        let json = frame.to_json();
        assert_eq!(json, r#"{"type":"synced","channel_id":1,"up_to":9,"has_more":false}"#);
        assert_eq!(serde_json::from_str::<ServerFrame>(&json).unwrap(), frame);
    }
}
