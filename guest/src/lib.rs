//! Beaker's default inventory rules, compiled to a WebAssembly component.
//!
//! They are the business rules of the reference service, exactly:
//! - `add`: a product that was never stocked starts at 0; the new level is
//!   returned.
//! - `remove`: an unknown product is refused as not found; a remove that
//!   would take the level below 0 is refused and changes nothing; when the
//!   new level is below [`LOW_STOCK_THRESHOLD`] a low-stock event is emitted.
//! - `get`: the current level; an unknown product is 0.
//!
//! The decisions live in [`rules`], plain Rust that the unit tests run
//! natively; the component glue below only converts WIT types.

// The generated component glue needs `unsafe` for the canonical ABI; the
// rules themselves (`rules`) use none.
#![allow(unsafe_code)]

pub mod rules;

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "rules",
        path: "../wit",
    });
}

use bindings::beaker::inventory::types::{
    Decision, Event, Limits, LowStock, Operation, Rejection, Request, RulesInfo, Stock,
};

/// The component's exports.
struct DefaultRules;

impl bindings::Guest for DefaultRules {
    fn describe() -> RulesInfo {
        RulesInfo {
            name: rules::NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    fn decide(
        request: Request,
        current: Option<Stock>,
        limits: Limits,
    ) -> Result<Decision, Rejection> {
        let operation = match request.operation {
            Operation::Add(n) => rules::Operation::Add(n),
            Operation::Remove(n) => rules::Operation::Remove(n),
            Operation::Get => rules::Operation::Get,
        };
        let limits = rules::Limits {
            max_quantity: limits.max_quantity,
            max_stock_level: limits.max_stock_level,
        };
        match rules::decide(&request.sku, operation, current.map(|s| s.level), limits) {
            Ok(outcome) => Ok(Decision {
                level: outcome.level,
                events: outcome
                    .low_stock
                    .then(|| {
                        Event::LowStock(LowStock {
                            sku: request.sku.clone(),
                            level: outcome.level,
                        })
                    })
                    .into_iter()
                    .collect(),
            }),
            Err(rules::Refusal::Invalid(message)) => Err(Rejection::InvalidRequest(message)),
            Err(rules::Refusal::UnknownProduct(message)) => Err(Rejection::UnknownProduct(message)),
            Err(rules::Refusal::RuleViolated(message)) => Err(Rejection::RuleViolated(message)),
        }
    }
}

bindings::export!(DefaultRules with_types_in bindings);
