//! Example rules that differ from the defaults in two ways:
//!
//! 1. A low-stock event is emitted only when a remove *crosses* the
//!    threshold (from 10 or more to below 10), not on every remove that
//!    leaves the product low — consumers hear about each dip once.
//! 2. Every product has a stock ceiling ([`ceiling`]): an add that would
//!    take it above is refused as a business rule (409).
//!
//! Everything else is as in the default rules. Build with
//! `cargo build --release -p beaker-rules-threshold --target wasm32-wasip2`.

// The generated component glue needs `unsafe` for the canonical ABI.
#![allow(unsafe_code)]

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({ world: "rules", path: "../../wit" });
}

use bindings::beaker::inventory::types::{
    Decision, Event, Limits, LowStock, Operation, Rejection, Request, RulesInfo, Stock,
};

/// Below this level a product is low.
pub const LOW_STOCK_THRESHOLD: u32 = 10;

/// The most units of `sku` the warehouse can hold. Products named
/// `bulk-…` have room for more; everything else for 1,000.
pub fn ceiling(sku: &str) -> u32 {
    if sku.starts_with("bulk-") {
        100_000
    } else {
        1_000
    }
}

/// Decides one request. Pure: no I/O, no state.
pub fn decide(
    sku: &str,
    operation: Operation,
    current: Option<u32>,
    limits: Limits,
) -> Result<(u32, bool), Rejection> {
    let invalid = |q: u32| {
        Rejection::InvalidRequest(format!(
            "quantity must be between 1 and {}, got {q}",
            limits.max_quantity
        ))
    };
    match operation {
        Operation::Get => Ok((current.unwrap_or(0), false)),
        Operation::Add(q) if q == 0 || q > limits.max_quantity => Err(invalid(q)),
        Operation::Remove(q) if q == 0 || q > limits.max_quantity => Err(invalid(q)),
        Operation::Add(q) => {
            let level = current.unwrap_or(0);
            let ceiling = ceiling(sku).min(limits.max_stock_level);
            match level.checked_add(q) {
                Some(after) if after <= ceiling => Ok((after, false)),
                _ => Err(Rejection::RuleViolated(format!(
                    "cannot add {q} units of {sku}: it holds at most {ceiling} and has {level}"
                ))),
            }
        }
        Operation::Remove(q) => {
            let Some(level) = current else {
                return Err(Rejection::UnknownProduct(format!(
                    "product {sku} is not known: it has never been stocked"
                )));
            };
            match level.checked_sub(q) {
                Some(after) => Ok((
                    after,
                    level >= LOW_STOCK_THRESHOLD && after < LOW_STOCK_THRESHOLD,
                )),
                None => Err(Rejection::RuleViolated(format!(
                    "cannot remove {q} units of {sku}: only {level} in stock"
                ))),
            }
        }
    }
}

struct ThresholdRules;

impl bindings::Guest for ThresholdRules {
    fn describe() -> RulesInfo {
        RulesInfo {
            name: "beaker-threshold-rules".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn decide(
        request: Request,
        current: Option<Stock>,
        limits: Limits,
    ) -> Result<Decision, Rejection> {
        let (level, crossed) = decide(
            &request.sku,
            request.operation,
            current.map(|s| s.level),
            limits,
        )?;
        let events = if crossed {
            vec![Event::LowStock(LowStock {
                sku: request.sku,
                level,
            })]
        } else {
            Vec::new()
        };
        Ok(Decision { level, events })
    }
}

bindings::export!(ThresholdRules with_types_in bindings);

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_quantity: 1_000_000,
        max_stock_level: 1_000_000_000,
    };

    #[test]
    fn low_stock_only_when_crossing() {
        assert_eq!(
            decide("a", Operation::Remove(1), Some(10), LIMITS).ok(),
            Some((9, true))
        );
        assert_eq!(
            decide("a", Operation::Remove(1), Some(9), LIMITS).ok(),
            Some((8, false))
        );
        assert_eq!(
            decide("a", Operation::Remove(5), Some(20), LIMITS).ok(),
            Some((15, false))
        );
    }

    #[test]
    fn adds_stop_at_the_products_ceiling() {
        assert_eq!(
            decide("a", Operation::Add(1000), None, LIMITS).ok(),
            Some((1000, false))
        );
        assert!(matches!(
            decide("a", Operation::Add(1), Some(1000), LIMITS),
            Err(Rejection::RuleViolated(_))
        ));
        assert_eq!(
            decide("bulk-a", Operation::Add(5000), None, LIMITS).ok(),
            Some((5000, false))
        );
    }
}
