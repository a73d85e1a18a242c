//! Decision cases for `beaker rules check --cases FILE`: a plain-text table
//! a rule author writes next to the rules, one case per line.
//!
//! ```text
//! # op     qty  current  expect           level  events
//! add      5    none     ok               5
//! remove   1    10       ok               9      low-stock
//! remove   11   10       rule-violated
//! remove   1    none     unknown-product
//! get      -    none     ok               0
//! ```
//!
//! `op` is `add`, `remove` or `get`; `qty` a number (`-` for get); `current`
//! the product's stock before (`none` when never stocked); `expect` one of
//! `ok`, `invalid-request`, `unknown-product`, `rule-violated`; for `ok`,
//! the level after and the events (`low-stock`, comma-separated; nothing or
//! `-` for none). Blank lines and `#` comments are ignored. The SKU is
//! `case-N` unless a column `sku=VALUE` is added anywhere on the line.

use super::state::{Outcome, describe_outcome};
use super::{Event, Operation, Rejection, Request, Rules, RulesEngine};

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Ok { level: u32, low_stock: bool },
    InvalidRequest,
    UnknownProduct,
    RuleViolated,
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

/// A case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
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

/// Parses a cases table.
pub fn parse(text: &str) -> Result<Vec<Case>, CaseError> {
    let mut cases = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let err = |reason: String| CaseError { line, reason };
        let mut sku = format!("case-{line}");
        let mut fields = Vec::new();
        for field in content.split_whitespace() {
            match field.strip_prefix("sku=") {
                Some(value) => sku = value.to_string(),
                None => fields.push(field),
            }
        }
        if fields.len() < 4 {
            return Err(err(format!(
                "expected `op qty current expect [level] [events]`, got {content:?}"
            )));
        }
        let quantity = |text: &str| {
            text.parse::<u32>()
                .map_err(|_| err(format!("quantity {text:?} is not a number")))
        };
        let operation = match fields[0] {
            "add" => Operation::Add(quantity(fields[1])?),
            "remove" => Operation::Remove(quantity(fields[1])?),
            "get" => Operation::Get,
            other => return Err(err(format!("unknown operation {other:?}"))),
        };
        let current =
            match fields[2] {
                "none" => None,
                number => Some(number.parse::<u32>().map_err(|_| {
                    err(format!("current stock {number:?} is not a number or none"))
                })?),
            };
        let expected = match fields[3] {
            "ok" => {
                let level = fields
                    .get(4)
                    .ok_or_else(|| err("`ok` needs the level after".into()))?
                    .parse::<u32>()
                    .map_err(|_| err("the level after is not a number".into()))?;
                let events = fields.get(5).copied().unwrap_or("-");
                let low_stock = match events {
                    "-" => false,
                    "low-stock" => true,
                    other => return Err(err(format!("unknown events {other:?}"))),
                };
                Expected::Ok { level, low_stock }
            }
            "invalid-request" => Expected::InvalidRequest,
            "unknown-product" => Expected::UnknownProduct,
            "rule-violated" => Expected::RuleViolated,
            other => return Err(err(format!("unknown expectation {other:?}"))),
        };
        cases.push(Case {
            line,
            sku,
            operation,
            current,
            expected,
        });
    }
    Ok(cases)
}

fn matches(expected: &Expected, outcome: &Outcome) -> bool {
    match (expected, outcome) {
        (Expected::Ok { level, low_stock }, Ok(decision)) => {
            let has_low = decision
                .events
                .iter()
                .any(|e| matches!(e, Event::LowStock(_)));
            decision.level == *level && has_low == *low_stock && decision.events.len() <= 1
        }
        (Expected::InvalidRequest, Err(Rejection::InvalidRequest(_)))
        | (Expected::UnknownProduct, Err(Rejection::UnknownProduct(_)))
        | (Expected::RuleViolated, Err(Rejection::RuleViolated(_))) => true,
        _ => false,
    }
}

/// How a case's expectation reads in the table.
pub fn describe_expected(expected: &Expected) -> String {
    match expected {
        Expected::Ok { level, low_stock } => {
            format!(
                "ok level {level}{}",
                if *low_stock { " +low-stock" } else { "" }
            )
        }
        Expected::InvalidRequest => "invalid-request".into(),
        Expected::UnknownProduct => "unknown-product".into(),
        Expected::RuleViolated => "rule-violated".into(),
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
            Ok(outcome) => (
                describe_outcome(&outcome),
                matches(&case.expected, &outcome),
            ),
            Err(e) => (format!("failed: {e}"), false),
        };
        results.push(CaseResult {
            case: case.clone(),
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
             get - none ok 0 sku=Widget-9\n",
        )
        .expect("valid table");
        assert_eq!(cases.len(), 4);
        assert_eq!(cases[0].operation, Operation::Add(5));
        assert_eq!(cases[0].current, None);
        assert_eq!(cases[0].sku, "case-2");
        assert_eq!(
            cases[1].expected,
            Expected::Ok {
                level: 9,
                low_stock: true
            }
        );
        assert_eq!(cases[2].expected, Expected::RuleViolated);
        assert_eq!(cases[3].operation, Operation::Get);
        assert_eq!(cases[3].sku, "Widget-9");
    }

    #[test]
    fn reports_the_line_of_a_bad_case() {
        let error = parse("add 5 none ok 5\nadd five none ok 5\n").expect_err("bad quantity");
        assert_eq!(error.line, 2);
        assert!(parse("add 5 none ok\n").is_err(), "ok needs a level");
        assert!(parse("move 5 none ok 1\n").is_err());
        assert!(parse("add 5 some ok 1\n").is_err());
        assert!(parse("add 5 none maybe\n").is_err());
    }
}
