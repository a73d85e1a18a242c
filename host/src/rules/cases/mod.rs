//! Decision cases for `beaker rules check --cases FILE`: a plain-text table
//! a rule author writes next to the rules, one case per line.
//!
//! ```text
//! # op     qty  current  expect           level  events
//! add      5    none     ok               5
//! remove   1    10       ok               9      low-stock:9
//! remove   11   10       rule-violated    "cannot remove 11 units of case-4: only 10 in stock"
//! remove   11   10       rule-violated    /only \d+ in stock/
//! remove   1    none     unknown-product
//! get      -    none     ok               0
//! ```
//!
//! `op` is `add`, `remove` or `get`; `qty` a number (`-` for get); `current`
//! the product's stock before (`none` when never stocked); `expect` one of
//! `ok`, `invalid-request`, `unknown-product`, `rule-violated`. For `ok`
//! come the level after and the events: `-` or nothing for none, else a
//! comma-separated list of `low-stock` (any level) or `low-stock:LEVEL`,
//! which must be exactly the events decided, in order. A rejection may be
//! followed by its message, `"exact"` (`\"` and `\\` inside) or
//! `/pattern/` (a regular expression that must match somewhere in it;
//! `\/` for a slash). Blank lines and `#` comments are ignored; anything
//! else on a line is an error. The SKU is `case-N` (N the line number)
//! unless a word `sku=VALUE` is added anywhere on the line.

mod parse;

pub use parse::parse;

use regex::Regex;
use serde::Serialize;

use super::state::{Outcome, describe_outcome};
use super::{Event, Operation, Rejection, Request, Rules, RulesEngine};

/// How a rejection's message is checked.
#[derive(Debug, Clone)]
pub enum MessageMatch {
    Exact(String),
    Pattern(Regex),
}

impl PartialEq for MessageMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (MessageMatch::Exact(a), MessageMatch::Exact(b)) => a == b,
            (MessageMatch::Pattern(a), MessageMatch::Pattern(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for MessageMatch {}

impl MessageMatch {
    fn accepts(&self, message: &str) -> bool {
        match self {
            MessageMatch::Exact(text) => text == message,
            MessageMatch::Pattern(pattern) => pattern.is_match(message),
        }
    }

    fn describe(&self) -> String {
        match self {
            MessageMatch::Exact(text) => format!("\"{text}\""),
            MessageMatch::Pattern(pattern) => format!("/{}/", pattern.as_str()),
        }
    }
}

/// An event a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedEvent {
    /// A low-stock event for the case's product, at `level` when given.
    LowStock { level: Option<u32> },
}

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Ok {
        level: u32,
        events: Vec<ExpectedEvent>,
    },
    InvalidRequest(Option<MessageMatch>),
    UnknownProduct(Option<MessageMatch>),
    RuleViolated(Option<MessageMatch>),
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub line: usize,
    pub sku: String,
    pub operation: Operation,
    pub current: Option<u32>,
    pub expected: Expected,
}

/// A case's result, as `--format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub line: usize,
    pub sku: String,
    /// The request and the stock before it, e.g. `remove 1 with 10`.
    pub case: String,
    pub expected: String,
    pub got: String,
    pub passed: bool,
}

/// A line that is not a case.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct CaseError {
    pub line: usize,
    pub reason: String,
}

fn matches(case: &Case, outcome: &Outcome) -> bool {
    match (&case.expected, outcome) {
        (Expected::Ok { level, events }, Ok(decision)) => {
            decision.level == *level
                && decision.events.len() == events.len()
                && decision
                    .events
                    .iter()
                    .zip(events)
                    .all(|(got, wanted)| match (got, wanted) {
                        (Event::LowStock(low), ExpectedEvent::LowStock { level }) => {
                            low.sku == case.sku && level.is_none_or(|l| l == low.level)
                        }
                    })
        }
        (Expected::InvalidRequest(m), Err(Rejection::InvalidRequest(got)))
        | (Expected::UnknownProduct(m), Err(Rejection::UnknownProduct(got)))
        | (Expected::RuleViolated(m), Err(Rejection::RuleViolated(got))) => {
            m.as_ref().is_none_or(|m| m.accepts(got))
        }
        _ => false,
    }
}

/// How a case's expectation reads in the table.
pub fn describe_expected(expected: &Expected) -> String {
    let rejected = |kind: &str, message: &Option<MessageMatch>| match message {
        None => kind.to_string(),
        Some(m) => format!("{kind} {}", m.describe()),
    };
    match expected {
        Expected::Ok { level, events } => {
            let mut text = format!("ok level {level}");
            for event in events {
                match event {
                    ExpectedEvent::LowStock { level: None } => text.push_str(" +low-stock"),
                    ExpectedEvent::LowStock { level: Some(l) } => {
                        text.push_str(&format!(" +low-stock:{l}"))
                    }
                }
            }
            text
        }
        Expected::InvalidRequest(m) => rejected("invalid-request", m),
        Expected::UnknownProduct(m) => rejected("unknown-product", m),
        Expected::RuleViolated(m) => rejected("rule-violated", m),
    }
}

/// Runs every case through the rules, each in a fresh sandbox.
pub async fn run(engine: &RulesEngine, rules: &Rules, cases: &[Case]) -> Vec<CaseResult> {
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let request = Request {
            sku: case.sku.clone(),
            operation: case.operation,
        };
        let (got, passed) = match engine.decide(rules, &request, case.current).await {
            Ok(outcome) => (describe_outcome(&outcome), matches(case, &outcome)),
            Err(e) => (format!("failed: {e}"), false),
        };
        results.push(CaseResult {
            line: case.line,
            sku: case.sku.clone(),
            case: format!(
                "{} with {}",
                super::describe_operation(case.operation),
                case.current.map_or("none".to_string(), |l| l.to_string())
            ),
            expected: describe_expected(&case.expected),
            got,
            passed,
        });
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_line() {
        let cases = parse(
            "# comment\n\
             add 5 none ok 5\n\
             \n\
             remove 1 10 ok 9 low-stock   # trailing comment\n\
             remove 11 10 rule-violated\n\
             get - none ok 0 sku=Widget-9\n\
             remove 11 10 rule-violated \"only 10 # in stock\"\n\
             remove 11 10 rule-violated /only \\d+ in/ sku=x\n\
             remove 3 5 ok 2 low-stock:2\n",
        )
        .expect("valid table");
        assert_eq!(cases.len(), 7);
        assert_eq!(cases[0].operation, Operation::Add(5));
        assert_eq!(cases[0].current, None);
        assert_eq!(cases[0].sku, "case-2");
        assert_eq!(
            cases[1].expected,
            Expected::Ok {
                level: 9,
                events: vec![ExpectedEvent::LowStock { level: None }]
            }
        );
        assert_eq!(cases[2].expected, Expected::RuleViolated(None));
        assert_eq!(cases[3].operation, Operation::Get);
        assert_eq!(cases[3].sku, "Widget-9");
        assert_eq!(
            cases[4].expected,
            Expected::RuleViolated(Some(MessageMatch::Exact("only 10 # in stock".into())))
        );
        assert_eq!(cases[5].sku, "x");
        assert!(
            matches!(&cases[5].expected, Expected::RuleViolated(Some(MessageMatch::Pattern(p))) if p.as_str() == r"only \d+ in")
        );
        assert_eq!(
            cases[6].expected,
            Expected::Ok {
                level: 2,
                events: vec![ExpectedEvent::LowStock { level: Some(2) }]
            }
        );
    }

    #[test]
    fn reports_the_line_of_a_bad_case() {
        let error = parse("add 5 none ok 5\nadd five none ok 5\n").expect_err("bad quantity");
        assert_eq!(error.line, 2);
        for bad in [
            "add 5 none ok",
            "move 5 none ok 1",
            "add 5 some ok 1",
            "add 5 none maybe",
            "get 3 none ok 0",
            // Trailing words are errors, not silently accepted.
            "remove 11 10 rule-violated only 10 in stock",
            "remove 11 10 rule-violated \"a\" \"b\"",
            "remove 1 10 ok 9 low-stock extra",
            "remove 1 10 ok 9 low-stock:nine",
            "remove 1 10 ok 9 high-stock",
            "remove 1 10 rule-violated /(/",
            "add 1 none ok 1 sku=",
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.line, 1, "{bad}");
        }
    }
}
