//! The limits of PROTOCOL.md, checked in one place for HTTP and WebSocket.
//! Lengths count Unicode scalar values (Rust `char`s), never bytes.

use crate::error::{ErrorCode, WireError};

pub const TEXT_MAX_CHARS: usize = 100_000;
pub const GROUP_MAX_MEMBERS: usize = 100;
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 1024;
pub const DISPLAY_NAME_MAX: usize = 64;
pub const GROUP_NAME_MAX: usize = 64;
pub const CLIENT_MSG_ID_MAX: usize = 64;
pub const DEVICE_NAME_MAX: usize = 64;
/// Largest WebSocket frame (and message) the server reads.
pub const FRAME_MAX_BYTES: usize = 512 * 1024;
pub const HISTORY_LIMIT_MAX: u32 = 200;
pub const HISTORY_LIMIT_DEFAULT: u32 = 50;

/// Usernames are case-insensitive: the canonical form is lower case, so
/// `Alice` and `alice` name the same account.
pub fn username(raw: &str) -> Result<String, WireError> {
    let name = raw.to_lowercase();
    let len = name.chars().count();
    let charset_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) || !charset_ok {
        return Err(WireError::new(
            ErrorCode::InvalidUsername,
            "username must be 3-32 characters of a-z, 0-9, '_' and '.'",
        ));
    }
    Ok(name)
}

pub fn password(raw: &str) -> Result<(), WireError> {
    let len = raw.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&len) {
        return Err(WireError::new(
            ErrorCode::WeakPassword,
            "password must be 8-1024 characters",
        ));
    }
    Ok(())
}

pub fn display_name(raw: &str) -> Result<(), WireError> {
    bounded_text("display_name", raw, DISPLAY_NAME_MAX)
}

pub fn group_name(raw: &str) -> Result<(), WireError> {
    bounded_text("name", raw, GROUP_NAME_MAX)
}

pub fn device_name(raw: &str) -> Result<(), WireError> {
    bounded_text("device_name", raw, DEVICE_NAME_MAX)
}

pub fn client_msg_id(raw: &str) -> Result<(), WireError> {
    bounded_text("client_msg_id", raw, CLIENT_MSG_ID_MAX)
}

/// Message text: 1..=100,000 characters, kept byte-for-byte (no trimming).
pub fn text(raw: &str) -> Result<(), WireError> {
    if raw.is_empty() {
        return Err(WireError::new(ErrorCode::TextEmpty, "text must not be empty"));
    }
    // Byte length bounds the char count from above: skip counting short texts.
    if raw.len() > TEXT_MAX_CHARS && raw.chars().count() > TEXT_MAX_CHARS {
        return Err(WireError::new(
            ErrorCode::TextTooLong,
            "text must be at most 100000 characters",
        ));
    }
    Ok(())
}

/// The `limit` of a history page: 1..=200, 50 when absent.
pub fn history_limit(limit: Option<u32>) -> Result<u32, WireError> {
    match limit {
        None => Ok(HISTORY_LIMIT_DEFAULT),
        Some(n) if (1..=HISTORY_LIMIT_MAX).contains(&n) => Ok(n),
        Some(_) => Err(WireError::bad_request("limit must be between 1 and 200")),
    }
}

fn bounded_text(field: &str, raw: &str, max: usize) -> Result<(), WireError> {
    let len = raw.chars().count();
    if len == 0 || len > max {
        return Err(WireError::bad_request(format!(
            "{field} must be 1-{max} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(username("Alice_1.x").unwrap(), "alice_1.x");
        for bad in ["ab", "a b c", "ålice", "x".repeat(33).as_str(), "bob!"] {
            assert_eq!(username(bad).unwrap_err().code, ErrorCode::InvalidUsername, "{bad}");
        }
    }

    #[test]
    fn text_counts_characters_not_bytes() {
        assert!(text(&"é".repeat(TEXT_MAX_CHARS)).is_ok());
        assert_eq!(text(&"é".repeat(TEXT_MAX_CHARS + 1)).unwrap_err().code, ErrorCode::TextTooLong);
        assert_eq!(text("").unwrap_err().code, ErrorCode::TextEmpty);
        assert!(text(" ").is_ok());
    }

    #[test]
    fn password_bounds() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(password(&"p".repeat(1025)).is_err());
    }
}
