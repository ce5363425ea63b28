//! `@username` mentions in message text.

use crate::validate::{USERNAME_MAX, USERNAME_MIN};

/// Most distinct mentions taken from one message.
pub const MAX_MENTIONS: usize = 50;

/// The lower-cased usernames mentioned in `text`, each once, in order.
/// A mention is `@` at the start or after a character that cannot be part
/// of a username (so `a@b.com` mentions nobody), followed by a username;
/// dots that end it are punctuation (`thanks @bob.` mentions `bob`).
pub fn mentioned_usernames(text: &str) -> Vec<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let mut found: Vec<String> = Vec::new();
    let mut prev: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        // Any letter or digit before `@` (not just ASCII) makes it an address.
        let starts = c == '@' && !prev.is_some_and(|p| p.is_alphanumeric() || is_name_char(p));
        prev = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[i + 1..];
        let len = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        let name = rest[..len].trim_end_matches('.').to_ascii_lowercase();
        if (USERNAME_MIN..=USERNAME_MAX).contains(&name.len()) && !found.contains(&name) {
            found.push(name);
            if found.len() == MAX_MENTIONS {
                break;
            }
        }
        // Skip the name so `@a@b` does not start a second mention at `@b`.
        for _ in 0..len {
            prev = chars.next().map(|(_, c)| c);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::mentioned_usernames as m;

    #[test]
    fn finds_mentions() {
        assert_eq!(m("hi @Bob and @carol.w, thanks @bob."), vec!["bob", "carol.w"]);
        assert_eq!(m("@dave: look"), vec!["dave"]);
        assert!(m("mail me at me@example.com").is_empty());
        assert!(m("@ab is too short, @ alone, @@").is_empty());
        assert_eq!(m("(@erin)"), vec!["erin"]);
        assert_eq!(m("@frank@gina"), vec!["frank"]);
        assert_eq!(m("ünï@bob @éve"), Vec::<String>::new());
    }
}
