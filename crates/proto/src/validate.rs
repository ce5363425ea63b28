//! The limits of PROTOCOL.md, checked in one place for HTTP and WebSocket.
//! Lengths count Unicode scalar values (Rust `char`s), never bytes.

use crate::error::{ErrorCode, WireError};
use unicode_normalization::UnicodeNormalization;

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
/// Encoded messages one page (history, `sync`, search, mentions) holds at
/// most, so one answer stays small however long its texts are; a page
/// always holds at least one message, and stops early with `has_more`.
pub const PAGE_MAX_BYTES: usize = 1024 * 1024;
/// Longest search query, in characters.
pub const SEARCH_QUERY_MAX: usize = 500;

/// Passwords that lead the public lists of leaked ones (lower case).
const COMMON_PASSWORDS: &str = include_str!("data/common-passwords.txt");

/// Usernames are case-insensitive: the canonical form is lower case, so
/// `Alice` and `alice` name the same account.
pub fn username(raw: &str) -> Result<String, WireError> {
    let name = raw.to_lowercase();
    let len = name.chars().count();
    let charset_ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) || !charset_ok {
        return Err(WireError::new(
            ErrorCode::InvalidUsername,
            "username must be 3-32 characters of a-z, 0-9, '_' and '.'",
        ));
    }
    Ok(name)
}

/// 8-1024 characters, not one of the most common passwords (nor one of
/// them with digits or punctuation appended), not one character repeated,
/// and not containing the (lower-cased) username: the first guesses of
/// anyone who tries.
pub fn password(raw: &str, username: &str) -> Result<(), WireError> {
    let len = raw.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&len) {
        return Err(WireError::new(ErrorCode::WeakPassword, "password must be 8-1024 characters"));
    }
    let lower = raw.to_lowercase();
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    let common = COMMON_PASSWORDS
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .any(|common| common == lower || common == stem);
    let mut chars = lower.chars();
    let repeated = chars.next().is_some_and(|first| chars.all(|c| c == first));
    let has_username = !username.is_empty() && lower.contains(&username.to_lowercase());
    if common || repeated {
        return Err(WireError::new(ErrorCode::WeakPassword, "this password is too common; choose another"));
    }
    if has_username {
        return Err(WireError::new(ErrorCode::WeakPassword, "the password must not contain the username"));
    }
    Ok(())
}

/// A name shown to other people: trimmed, normalised to NFC, 1-64
/// characters, and free of what makes names look like someone else's:
/// control characters (NUL included), bidirectional overrides and
/// isolates, and invisible characters (zero-width spaces and joiners,
/// fillers). A zero-width joiner stays allowed inside emoji sequences.
pub fn display_name(raw: &str) -> Result<String, WireError> {
    shown_name("display_name", raw, DISPLAY_NAME_MAX)
}

/// A group's name, under the same rules as display names.
pub fn group_name(raw: &str) -> Result<String, WireError> {
    shown_name("name", raw, GROUP_NAME_MAX)
}

fn shown_name(field: &str, raw: &str, max: usize) -> Result<String, WireError> {
    let name: String = raw.trim().nfc().collect();
    let chars: Vec<char> = name.chars().collect();
    let hidden = chars.iter().enumerate().find(|&(i, &c)| {
        if c == '\u{200D}' {
            let emoji_around =
                i > 0 && is_emoji_part(chars[i - 1]) && chars.get(i + 1).is_some_and(|&n| is_emoji_part(n));
            return !emoji_around;
        }
        is_deceptive(c)
    });
    if let Some((_, c)) = hidden {
        return Err(WireError::bad_request(format!(
            "{field} must not contain control, direction-changing or invisible characters (found U+{:04X})",
            *c as u32
        )));
    }
    bounded_text(field, &name, max)?;
    Ok(name)
}

/// Characters that hide, reorder or fake what a name shows.
fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
            | '\u{3164}' | '\u{FE00}'..='\u{FE0E}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}')
}

/// Emoji and what joins them into one picture (`👩‍💻`).
fn is_emoji_part(c: char) -> bool {
    matches!(c, '\u{2600}'..='\u{27BF}' | '\u{FE0F}' | '\u{1F000}'..='\u{1FAFF}')
}

/// A search query: 1-500 characters with at least one word, no control
/// characters (a NUL would reach the search engine).
pub fn search_query(raw: &str) -> Result<(), WireError> {
    if raw.chars().any(char::is_control) {
        return Err(WireError::bad_request("q must not contain control characters"));
    }
    if raw.split_whitespace().next().is_none() || raw.chars().count() > SEARCH_QUERY_MAX {
        return Err(WireError::bad_request("q must hold 1 to 500 characters of search words"));
    }
    Ok(())
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
        return Err(WireError::new(ErrorCode::TextTooLong, "text must be at most 100000 characters"));
    }
    Ok(())
}

/// Attachments of a message at most.
pub const ATTACHMENTS_MAX: usize = 10;

/// A message's body: with attachments (1-10 distinct upload ids) the text
/// may be empty; without, the text rules hold.
pub fn message_body(text: &str, attachments: &[String]) -> Result<(), WireError> {
    if attachments.is_empty() {
        return self::text(text);
    }
    if attachments.len() > ATTACHMENTS_MAX {
        return Err(WireError::bad_request("a message has at most 10 attachments"));
    }
    if attachments.iter().any(|a| a.is_empty() || a.len() > 64) {
        return Err(WireError::not_found("upload"));
    }
    let mut seen: Vec<&String> = attachments.iter().collect();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != attachments.len() {
        return Err(WireError::bad_request("an upload is attached twice"));
    }
    if text.is_empty() {
        Ok(())
    } else {
        self::text(text)
    }
}

/// Longest reaction, in characters.
pub const EMOJI_MAX: usize = 32;

/// A reaction: 1-32 characters without whitespace or control characters
/// (an emoji, with its modifiers and joiners, or a short code like `:+1:`).
pub fn emoji(raw: &str) -> Result<(), WireError> {
    bounded_text("emoji", raw, EMOJI_MAX)?;
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(WireError::bad_request("emoji must not contain spaces or control characters"));
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
        return Err(WireError::bad_request(format!("{field} must be 1-{max} characters")));
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
        assert!(password("1234567", "alice").is_err());
        assert!(password("7 lazy otters", "alice").is_ok());
        assert!(password(&"p".repeat(1025), "alice").is_err());
    }

    #[test]
    fn common_passwords_and_the_username_are_refused() {
        for weak in ["12345678", "password", "PassWord", "password2024!", "qwerty123", "iloveyou", "aaaaaaaaaa"] {
            assert_eq!(password(weak, "alice").unwrap_err().code, ErrorCode::WeakPassword, "{weak}");
        }
        assert!(password("alice1234", "alice").is_err());
        assert!(password("my ALICE is here", "alice").is_err());
        assert!(password("correct horse battery", "alice").is_ok());
        assert!(password("passwords are fun", "alice").is_ok());
    }

    #[test]
    fn shown_names_are_normalised_and_free_of_tricks() {
        assert_eq!(display_name("  Ali\u{0065}\u{0301} ").unwrap(), "Ali\u{00E9}");
        assert_eq!(display_name("Zoë 👩\u{200D}💻").unwrap(), "Zoë 👩\u{200D}💻");
        for bad in [
            "bob\u{202E}evil",
            "a\u{0000}b",
            "x\u{200B}y",
            "ab\u{2066}c",
            "tab\there",
            "a\u{200D}b",
            "\u{3164}",
            "   ",
            "\u{FEFF}",
        ] {
            assert!(display_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(group_name("Team \u{202D}x").is_err());
    }

    #[test]
    fn search_queries_refuse_control_characters() {
        assert!(search_query("hello world").is_ok());
        assert!(search_query("a\u{0000}b").is_err());
        assert!(search_query("   ").is_err());
        assert!(search_query(&"x".repeat(501)).is_err());
    }
}
