//! Full-text search words, folded the way the embedded store's FTS5
//! tokenizer folds them (`unicode61 remove_diacritics 2`): runs of letters
//! and digits, lower-cased, without diacritics. Folding happens here, not in
//! PostgreSQL, so results do not depend on the server's locale or on
//! extensions: the stored `tsvector` holds these words as they are, and a
//! query is built from the same words.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The words of `text`, folded, each once.
pub fn words(text: &str) -> Vec<String> {
    let mut words = words_in_order(text);
    words.sort();
    words.dedup();
    words
}

/// The words of `text` in order (repeats kept), for phrase queries.
fn words_in_order(text: &str) -> Vec<String> {
    let folded: String = text.nfkd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect();
    folded.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// A `tsquery` matching every term (a term of several words as a phrase),
/// the last word of the last term also as a prefix; `None` when no term
/// has a word. Words are letters and digits only, so quoting them cannot
/// be escaped from.
pub fn tsquery(terms: &[String]) -> Option<String> {
    let phrases: Vec<Vec<String>> = terms.iter().map(|t| words_in_order(t)).filter(|w| !w.is_empty()).collect();
    let last = phrases.len().checked_sub(1)?;
    let parts: Vec<String> = phrases
        .iter()
        .enumerate()
        .map(|(i, phrase)| {
            let quoted: Vec<String> = phrase.iter().map(|w| format!("'{w}'")).collect();
            let mut joined = quoted.join(" <-> ");
            if i == last {
                joined.push_str(":*");
            }
            format!("({joined})")
        })
        .collect();
    Some(parts.join(" & "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_like_the_embedded_index() {
        assert_eq!(words("Crème BRÛLÉE, crème!"), vec!["brulee", "creme"]);
        assert_eq!(words("日本語 text"), vec!["text", "日本語"]);
        assert_eq!(tsquery(&["Café".into(), "o'neil".into()]).unwrap(), "('cafe') & ('o' <-> 'neil':*)");
        assert_eq!(tsquery(&["!!".into()]), None);
    }
}
