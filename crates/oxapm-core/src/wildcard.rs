//! Elastic's wildcard patterns, used by list options such as `sanitize_field_names` and
//! `transaction_ignore_urls`: `*` matches any text (none included), everything else matches itself,
//! and a pattern matches the whole string. Matching ignores case unless the pattern starts with
//! `(?-i)`; `(?i)` says the default explicitly.

/// One compiled pattern: the literal pieces between its `*`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wildcard {
    /// `pieces[0]` starts the text and the last piece ends it (a pattern without `*` has one
    /// piece: the whole text); those between are found in order. Lower case unless case-sensitive.
    pieces: Vec<String>,
    case_sensitive: bool,
}

impl Wildcard {
    pub fn new(pattern: &str) -> Wildcard {
        let (pattern, case_sensitive) = match pattern.strip_prefix("(?-i)") {
            Some(rest) => (rest, true),
            None => (pattern.strip_prefix("(?i)").unwrap_or(pattern), false),
        };
        let mut pieces: Vec<String> = pattern.split('*').map(|piece| if case_sensitive { piece.to_owned() } else { piece.to_lowercase() }).collect();
        // Empty pieces in the middle (`**`) match anywhere: only the ends anchor.
        let (count, mut index) = (pieces.len(), 0);
        pieces.retain(|piece| {
            index += 1;
            index == 1 || index == count || !piece.is_empty()
        });
        Wildcard { pieces, case_sensitive }
    }

    pub fn matches(&self, text: &str) -> bool {
        self.matches_folded(text, &mut None)
    }

    /// `lowered` caches `text` in lower case, for the case-insensitive patterns of a list: folding
    /// it once and comparing bytes costs far less than folding at every comparison.
    fn matches_folded(&self, text: &str, lowered: &mut Option<String>) -> bool {
        if self.case_sensitive {
            return self.matches_bytes(text.as_bytes());
        }
        let lowered = lowered.get_or_insert_with(|| if text.is_ascii() { text.to_ascii_lowercase() } else { text.to_lowercase() });
        self.matches_bytes(lowered.as_bytes())
    }

    fn matches_bytes(&self, text: &[u8]) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some((first, rest)) => (first.as_bytes(), rest),
            None => return text.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else { return text == first };
        let last = last.as_bytes();
        if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
            return false;
        }
        let mut between = &text[first.len()..text.len() - last.len()];
        for piece in middle.iter().map(String::as_bytes) {
            match find(between, piece) {
                Some(at) => between = &between[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Where `needle` (not empty) first occurs in `haystack`: the names matched are short, so scanning
/// for the first byte beats a general string search's set-up.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&head, tail) = needle.split_first()?;
    let candidates = haystack.len().checked_sub(needle.len())? + 1;
    (0..candidates).find(|&at| haystack[at] == head && &haystack[at + 1..at + needle.len()] == tail)
}

/// A list option of patterns: matches when any pattern does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WildcardMatchers(Vec<Wildcard>);

impl WildcardMatchers {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> WildcardMatchers {
        WildcardMatchers(patterns.iter().map(|pattern| Wildcard::new(pattern.as_ref())).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, text: &str) -> bool {
        let mut lowered = None;
        self.0.iter().any(|pattern| pattern.matches_folded(text, &mut lowered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    #[test]
    fn every_cross_agent_case() {
        let groups: Map<String, Value> = serde_json::from_str(include_str!("../../../tests/specs/agent-specs/wildcard_matcher_tests.json")).unwrap();
        let mut checked = 0;
        for (group, patterns) in &groups {
            for (pattern, cases) in patterns.as_object().unwrap() {
                let wildcard = Wildcard::new(pattern);
                for (text, expected) in cases.as_object().unwrap() {
                    assert_eq!(wildcard.matches(text), expected.as_bool().unwrap(), "{group}: {pattern:?} against {text:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 86, "every case of the file");
    }

    #[test]
    fn unicode_text_ignores_case_too() {
        assert!(Wildcard::new("*ÄPFEL*").matches("grüne äpfel"));
        assert!(Wildcard::new("x*").matches("Xö"));
        assert!(!Wildcard::new("(?-i)*ÄPFEL").matches("äpfel"));
        assert!(Wildcard::new("(?i)FOO").matches("foo"));
    }

    #[test]
    fn pieces_do_not_overlap() {
        assert!(!Wildcard::new("ab*ba").matches("aba"));
        assert!(Wildcard::new("ab*ba").matches("abba"));
        assert!(Wildcard::new("*").matches(""));
        assert!(Wildcard::new("").matches(""));
        assert!(!Wildcard::new("").matches("x"));
        assert!(Wildcard::new("a**b").matches("ab"));
    }

    #[test]
    fn a_list_matches_when_any_pattern_does() {
        let list = WildcardMatchers::new(&["/health*", "(?-i)*.CSS", "*secret*"]);
        assert!(list.matches("/healthz") && list.matches("/static/app.CSS") && list.matches("Top-SECRET-ö"));
        assert!(!list.matches("/static/app.css") && !list.matches("/api"));
        assert!(!WildcardMatchers::default().matches("anything"));
    }
}
