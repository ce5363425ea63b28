//! Any bytes a client can send in a WebSocket text frame: decoding answers
//! with a frame or a clean `bad_request`, never a panic, and whatever
//! decodes passes the same validation the server applies.
#![no_main]

use chinwag_proto::{validate, ClientFrame, ErrorCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The gateway closes non-UTF-8 frames (1007) before decoding; the lossy
    // form still feeds the decoder every shape of invalid text.
    let text = String::from_utf8_lossy(data);
    match ClientFrame::decode(&text) {
        Ok((ClientFrame::Send { client_msg_id, text, .. }, _)) => {
            let _ = validate::client_msg_id(&client_msg_id);
            let _ = validate::text(&text);
            let _ = chinwag_proto::mentions::mentioned_usernames(&text);
        }
        Ok((ClientFrame::Sync { limit, .. }, _)) => {
            let _ = validate::history_limit(limit);
        }
        Ok(_) => {}
        Err(e) => {
            assert_eq!(e.error.code, ErrorCode::BadRequest);
            assert!(!e.error.message.is_empty());
        }
    }
});
