//! NATS subjects as the gateway sees them: checking what a caller put in a
//! URL, and deciding whether a subject is one the gateway lets callers use.
//!
//! The allow-lists use NATS wildcards (`*` one token, `>` the rest), so an
//! operator writes them as they would write NATS user permissions.

use std::fmt;

/// The longest subject accepted from a caller, in bytes. NATS itself has no
/// hard limit; this keeps an absurd URL from becoming an absurd subject.
pub const MAX_SUBJECT_BYTES: usize = 512;

/// Why a subject from a caller is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the subject is empty")]
    Empty,
    #[error("the subject is {0} bytes long; at most {MAX_SUBJECT_BYTES} are accepted")]
    TooLong(usize),
    #[error("the subject contains whitespace or a control character")]
    BadCharacter,
    #[error("the subject has an empty token (leading, trailing or doubled '.')")]
    EmptyToken,
    #[error("wildcards ('*', '>') are not allowed where a message is sent")]
    Wildcard,
    #[error("'>' may only be the last token of a subject")]
    MisplacedTail,
}

/// Checks the shape of a subject. `wildcards` says whether `*` and `>`
/// tokens are allowed (subscribing) or not (publishing, requesting).
pub fn validate(subject: &str, wildcards: bool) -> Result<(), SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty);
    }
    if subject.len() > MAX_SUBJECT_BYTES {
        return Err(SubjectError::TooLong(subject.len()));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SubjectError::BadCharacter);
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let last = tokens.len() - 1;
    for (i, token) in tokens.iter().enumerate() {
        match *token {
            "" => return Err(SubjectError::EmptyToken),
            "*" | ">" if !wildcards => return Err(SubjectError::Wildcard),
            ">" if i != last => return Err(SubjectError::MisplacedTail),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `subject` is an inbox a reply may be sent to: `_INBOX.` then
/// one or more tokens of ASCII letters, digits, `_` and `-` (what NATS
/// clients generate). Replies to anything else are refused, so a caller
/// cannot make a service publish its answer on, say, an event subject.
pub fn is_inbox(subject: &str) -> bool {
    let Some(rest) = subject.strip_prefix("_INBOX.") else {
        return false;
    };
    subject.len() <= MAX_SUBJECT_BYTES
        && rest.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// One allow-list entry, e.g. `stock.*` or `events.>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, SubjectError> {
        let text = text.trim();
        validate(text, true)?;
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether every subject that `subject` can match is also matched by
    /// this pattern. For a subject without wildcards that is plain matching;
    /// for a subscription it keeps `events.*` from being widened to `events.>`.
    pub fn covers(&self, subject: &str) -> bool {
        let mut pattern = self.0.split('.');
        let mut tokens = subject.split('.');
        loop {
            match (pattern.next(), tokens.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(token)) if token != ">" => {}
                (Some(p), Some(token)) if p == token && p != "*" && p != ">" => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A list of patterns; a subject is allowed when one of them covers it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList(Vec<Pattern>);

impl AllowList {
    /// Parses a comma-separated list; empty entries are ignored.
    pub fn parse(list: &str) -> Result<Self, (String, SubjectError)> {
        let mut patterns = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            patterns.push(Pattern::parse(entry).map_err(|e| (entry.to_string(), e))?);
        }
        Ok(Self(patterns))
    }

    pub fn allows(&self, subject: &str) -> bool {
        self.0.iter().any(|p| p.covers(subject))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(Pattern::as_str).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_subjects_are_literal() {
        assert_eq!(validate("stock.add", false), Ok(()));
        assert_eq!(validate("$SRV.INFO.beaker", false), Ok(()));
        assert_eq!(validate("", false), Err(SubjectError::Empty));
        assert_eq!(validate("stock..add", false), Err(SubjectError::EmptyToken));
        assert_eq!(validate(".stock", false), Err(SubjectError::EmptyToken));
        assert_eq!(validate("stock.", false), Err(SubjectError::EmptyToken));
        assert_eq!(validate("stock.*", false), Err(SubjectError::Wildcard));
        assert_eq!(validate("stock.>", false), Err(SubjectError::Wildcard));
        assert_eq!(validate("a b", false), Err(SubjectError::BadCharacter));
        assert_eq!(validate("a\tb", false), Err(SubjectError::BadCharacter));
        assert!(matches!(
            validate(&"a".repeat(MAX_SUBJECT_BYTES + 1), false),
            Err(SubjectError::TooLong(_))
        ));
        // Wildcard characters inside a token are ordinary characters.
        assert_eq!(validate("stock.a*b", false), Ok(()));
    }

    #[test]
    fn only_inboxes_take_replies() {
        assert!(is_inbox("_INBOX.abc"));
        assert!(is_inbox("_INBOX.Ab-1_x.2"));
        assert!(!is_inbox("_INBOX."));
        assert!(!is_inbox("_INBOX"));
        assert!(!is_inbox("_INBOX..a"));
        assert!(!is_inbox("_INBOX.a b"));
        assert!(!is_inbox("_INBOX.*"));
        assert!(!is_inbox("_INBOX.>"));
        assert!(!is_inbox("_INBOX.é"));
        assert!(!is_inbox("events.low_stock"));
        assert!(!is_inbox("x._INBOX.a"));
    }

    #[test]
    fn subscriptions_may_use_wildcards_in_their_place() {
        assert_eq!(validate("events.*", true), Ok(()));
        assert_eq!(validate("events.>", true), Ok(()));
        assert_eq!(
            validate("events.>.x", true),
            Err(SubjectError::MisplacedTail)
        );
    }

    #[test]
    fn patterns_match_like_nats_permissions() {
        let stock = Pattern::parse("stock.*").expect("valid");
        assert!(stock.covers("stock.add"));
        assert!(stock.covers("stock.get"));
        assert!(!stock.covers("stock"));
        assert!(!stock.covers("stock.add.extra"));
        assert!(!stock.covers("other.add"));
        assert!(stock.covers("stock.*"));
        assert!(
            !stock.covers("stock.>"),
            "a wider subscription is not covered"
        );

        let all = Pattern::parse("events.>").expect("valid");
        assert!(all.covers("events.low_stock"));
        assert!(all.covers("events.a.b"));
        assert!(all.covers("events.>"));
        assert!(!all.covers("events"));

        let literal = Pattern::parse("$SRV.INFO.beaker").expect("valid");
        assert!(literal.covers("$SRV.INFO.beaker"));
        assert!(!literal.covers("$SRV.INFO.beaker.id"));
        assert!(!literal.covers("$SRV.INFO.*"));
    }

    #[test]
    fn allow_lists_parse_and_refuse_bad_entries() {
        let list = AllowList::parse(" stock.* , $SRV.INFO.beaker ,").expect("valid");
        assert!(list.allows("stock.add"));
        assert!(list.allows("$SRV.INFO.beaker"));
        assert!(!list.allows("$SRV.STATS.beaker"));
        assert_eq!(list.to_string(), "stock.*,$SRV.INFO.beaker");
        assert!(AllowList::parse("stock..x").is_err());
        assert!(AllowList::parse("").expect("empty is valid").is_empty());
    }
}
