//! Whatever arrives on the wire, decoding and validation answer with a
//! value or a clean `bad_request`-style error, never a panic.

use chinwag_proto::{validate, ClientFrame, ErrorCode};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Arbitrary JSON, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(".{0,12}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Frames shaped like real ones, with fields of any type.
fn frame_like() -> impl Strategy<Value = Value> {
    let kinds =
        prop_oneof![Just("auth"), Just("send"), Just("sync"), Just("read"), Just("typing"), Just("ping"), Just("nope")];
    let fields = prop::collection::hash_map(
        prop_oneof![
            Just("token"),
            Just("client_msg_id"),
            Just("channel_id"),
            Just("to_user_id"),
            Just("text"),
            Just("after"),
            Just("limit"),
            Just("message_id"),
            Just("ref")
        ],
        any_json(),
        0..7,
    );
    (kinds, fields).prop_map(|(kind, fields)| {
        let mut obj: serde_json::Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        obj.insert("type".into(), Value::from(kind));
        Value::Object(obj)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 50_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        if let Err(e) = ClientFrame::decode(&text) {
            prop_assert_eq!(e.error.code, ErrorCode::BadRequest);
            prop_assert!(!e.error.message.is_empty());
        }
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = ClientFrame::decode(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let _ = ClientFrame::decode(&value.to_string());
    }

    #[test]
    fn frame_shaped_json_decodes_or_fails_cleanly(value in frame_like()) {
        match ClientFrame::decode(&value.to_string()) {
            Ok((frame, reference)) => {
                // A decoded send always has exactly one target.
                if let ClientFrame::Send { channel_id, to_user_id, .. } = frame {
                    prop_assert!(channel_id.is_some() != to_user_id.is_some());
                }
                // A non-null `ref` is echoed as parsed from the frame (null
                // counts as absent; floats carry serde_json's precision).
                if let Some(r) = value.get("ref").filter(|r| !r.is_null()) {
                    let parsed: Value = serde_json::from_str(&r.to_string()).unwrap();
                    prop_assert_eq!(reference, Some(parsed));
                }
            }
            Err(e) => prop_assert_eq!(e.error.code, ErrorCode::BadRequest),
        }
    }

    #[test]
    fn validators_never_panic(s in ".{0,200}", n in any::<Option<u32>>()) {
        let _ = validate::username(&s);
        let _ = validate::password(&s, &s);
        let _ = validate::password(&s, "alice");
        let _ = validate::search_query(&s);
        if let Ok(name) = validate::display_name(&s) {
            // What is accepted is already in its final form.
            prop_assert_eq!(validate::display_name(&name), Ok(name.clone()));
        }
        let _ = validate::group_name(&s);
        let _ = validate::client_msg_id(&s);
        let _ = validate::history_limit(n);
        match validate::text(&s) {
            Ok(()) => prop_assert!(!s.is_empty()),
            Err(e) => prop_assert!(matches!(e.code, ErrorCode::TextEmpty | ErrorCode::TextTooLong)),
        }
    }

    #[test]
    fn valid_usernames_are_lowercase_and_stable(s in "[A-Za-z0-9_.]{3,32}") {
        let name = validate::username(&s).unwrap();
        prop_assert_eq!(&name, &s.to_lowercase());
        prop_assert_eq!(validate::username(&name).unwrap(), name);
    }

    #[test]
    fn mention_parsing_never_panics(s in ".{0,200}") {
        for name in chinwag_proto::mentions::mentioned_usernames(&s) {
            prop_assert!(validate::username(&name).is_ok());
        }
    }
}
