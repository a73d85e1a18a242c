//! Reading a cases table: lines of words, where a rejection's message may
//! be given as a "quoted string" (exact) or a /pattern/ (a regular
//! expression), and `#` starts a comment outside them.
//!
//! Every line must say exactly what it means: a word this format does not
//! know, or one too many, is an error naming the line, never ignored (a
//! trailing word silently accepted is an assertion the author believes is
//! checked and is not).

use regex::Regex;

use super::{Case, CaseError, Expected, ExpectedEvent, MessageMatch};
use crate::rules::Operation;

/// One word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Pattern(String),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("{w:?}"),
            Token::Quoted(q) => format!("the message \"{q}\""),
            Token::Pattern(p) => format!("the pattern /{p}/"),
        }
    }
}

/// Splits a line into words, quoted strings and patterns, up to a comment.
fn tokens(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => break,
            '"' | '/' => {
                chars.next();
                let mut text = String::new();
                let mut closed = false;
                while let Some(next) = chars.next() {
                    match next {
                        '\\' if c == '"' => match chars.next() {
                            Some(escaped) => text.push(escaped),
                            None => break,
                        },
                        // In a pattern, `\/` is a slash; every other
                        // escape is the regular expression's own.
                        '\\' => match chars.next() {
                            Some('/') => text.push('/'),
                            Some(escaped) => {
                                text.push('\\');
                                text.push(escaped);
                            }
                            None => break,
                        },
                        end if end == c => {
                            closed = true;
                            break;
                        }
                        other => text.push(other),
                    }
                }
                if !closed {
                    return Err(format!(
                        "a {} is not closed",
                        if c == '"' {
                            "quoted message"
                        } else {
                            "/pattern/"
                        }
                    ));
                }
                tokens.push(if c == '"' {
                    Token::Quoted(text)
                } else {
                    Token::Pattern(text)
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || next == '#' {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Parses a cases table.
pub fn parse(text: &str) -> Result<Vec<Case>, CaseError> {
    let mut cases = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let err = |reason: String| CaseError { line, reason };
        let mut sku = format!("case-{line}");
        let mut fields = Vec::new();
        for token in tokens(raw).map_err(err)? {
            match &token {
                Token::Word(word) => match word.strip_prefix("sku=") {
                    Some("") => return Err(err("`sku=` needs a value".into())),
                    Some(value) => sku = value.to_string(),
                    None => fields.push(token),
                },
                _ => fields.push(token),
            }
        }
        if fields.is_empty() {
            continue;
        }
        cases.push(case(line, sku, &fields).map_err(err)?);
    }
    Ok(cases)
}

fn word(token: Option<&Token>) -> Option<&str> {
    match token {
        Some(Token::Word(w)) => Some(w),
        _ => None,
    }
}

fn case(line: usize, sku: String, fields: &[Token]) -> Result<Case, String> {
    let usage = "expected `op qty current expect …`: e.g. `remove 1 10 ok 9 low-stock` \
                 or `remove 11 10 rule-violated \"message\"`";
    let (Some(op), Some(qty), Some(current), Some(expect)) = (
        word(fields.first()),
        word(fields.get(1)),
        word(fields.get(2)),
        word(fields.get(3)),
    ) else {
        return Err(usage.into());
    };
    let quantity = |text: &str| {
        text.parse::<u32>()
            .map_err(|_| format!("quantity {text:?} is not a number"))
    };
    let operation = match op {
        "add" => Operation::Add(quantity(qty)?),
        "remove" => Operation::Remove(quantity(qty)?),
        "get" if qty == "-" => Operation::Get,
        "get" => return Err(format!("get takes no quantity: write `-`, not {qty:?}")),
        other => return Err(format!("unknown operation {other:?} (add, remove or get)")),
    };
    let current = match current {
        "none" => None,
        number => Some(
            number
                .parse::<u32>()
                .map_err(|_| format!("current stock {number:?} is not a number or none"))?,
        ),
    };
    let rest = &fields[4..];
    let expected = match expect {
        "ok" => ok(rest)?,
        "invalid-request" => Expected::InvalidRequest(message(expect, rest)?),
        "unknown-product" => Expected::UnknownProduct(message(expect, rest)?),
        "rule-violated" => Expected::RuleViolated(message(expect, rest)?),
        other => {
            return Err(format!(
                "unknown expectation {other:?} (ok, invalid-request, unknown-product or rule-violated)"
            ));
        }
    };
    Ok(Case {
        line,
        sku,
        operation,
        current,
        expected,
    })
}

/// `ok LEVEL [EVENTS]`.
fn ok(rest: &[Token]) -> Result<Expected, String> {
    let level = word(rest.first())
        .ok_or("`ok` needs the level after")?
        .parse::<u32>()
        .map_err(|_| "the level after is not a number".to_string())?;
    let events = match rest.get(1) {
        None => Vec::new(),
        Some(Token::Word(w)) if w == "-" => Vec::new(),
        Some(Token::Word(w)) => w.split(',').map(event).collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "after `ok LEVEL` come the events, not {}",
                other.describe()
            ));
        }
    };
    if let Some(extra) = rest.get(2) {
        return Err(format!(
            "nothing may follow the events, got {} (a comment starts with #)",
            extra.describe()
        ));
    }
    Ok(Expected::Ok { level, events })
}

/// `low-stock` (any level) or `low-stock:LEVEL`.
fn event(text: &str) -> Result<ExpectedEvent, String> {
    match text.split_once(':') {
        None if text == "low-stock" => Ok(ExpectedEvent::LowStock { level: None }),
        Some(("low-stock", level)) => level
            .parse::<u32>()
            .map(|level| ExpectedEvent::LowStock { level: Some(level) })
            .map_err(|_| format!("the level in {text:?} is not a number")),
        _ => Err(format!(
            "unknown event {text:?} (low-stock or low-stock:LEVEL, comma-separated, or - for none)"
        )),
    }
}

/// A rejection's optional message: "exact" or /pattern/.
fn message(kind: &str, rest: &[Token]) -> Result<Option<MessageMatch>, String> {
    let matcher = match rest.first() {
        None => return Ok(None),
        Some(Token::Quoted(text)) => MessageMatch::Exact(text.clone()),
        Some(Token::Pattern(pattern)) => MessageMatch::Pattern(
            Regex::new(pattern)
                .map_err(|e| format!("the pattern /{pattern}/ is not valid: {e}"))?,
        ),
        Some(Token::Word(w)) => {
            return Err(format!(
                "after `{kind}` only its message may follow, as \"exact text\" or /a pattern/; got {w:?}"
            ));
        }
    };
    if let Some(extra) = rest.get(1) {
        return Err(format!(
            "nothing may follow the message, got {} (a comment starts with #)",
            extra.describe()
        ));
    }
    Ok(Some(matcher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_messages_patterns_and_comments_are_told_apart() {
        let got =
            tokens(r#"remove 1 2 rule-violated "a \"b\" # c" /x\/y\d/  # done"#).expect("valid");
        assert_eq!(
            got,
            vec![
                Token::Word("remove".into()),
                Token::Word("1".into()),
                Token::Word("2".into()),
                Token::Word("rule-violated".into()),
                Token::Quoted(r#"a "b" # c"#.into()),
                Token::Pattern(r"x/y\d".into()),
            ]
        );
        assert!(tokens(r#"add 1 none ok 1 "open"#).is_err());
        assert!(tokens("add 1 none ok 1 /open").is_err());
    }
}
