//! The default business rules as plain functions, independent of the
//! component model so that they can be tested natively.

/// The name these rules report through `describe`.
pub const NAME: &str = "beaker-default-rules";

/// A remove that leaves fewer units than this emits a low-stock event.
pub const LOW_STOCK_THRESHOLD: u32 = 10;

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Add(u32),
    Remove(u32),
    Get,
}

/// The bounds the host passes with every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_quantity: u32,
    pub max_stock_level: u32,
}

/// The level after the operation, and whether stock is now low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub level: u32,
    pub low_stock: bool,
}

/// Why a request is refused, with a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Invalid(String),
    UnknownProduct(String),
    RuleViolated(String),
}

/// Decides one request. `current` is `None` for a product never stocked.
pub fn decide(
    sku: &str,
    operation: Operation,
    current: Option<u32>,
    limits: Limits,
) -> Result<Outcome, Refusal> {
    match operation {
        Operation::Get => Ok(Outcome {
            level: current.unwrap_or(0),
            low_stock: false,
        }),
        Operation::Add(quantity) => {
            check_quantity(quantity, limits)?;
            let level = current.unwrap_or(0);
            match level.checked_add(quantity) {
                Some(new_level) if new_level <= limits.max_stock_level => Ok(Outcome {
                    level: new_level,
                    low_stock: false,
                }),
                _ => Err(Refusal::RuleViolated(format!(
                    "cannot add {quantity} units of {sku}: the stock level would exceed the maximum of {} (it is {level})",
                    limits.max_stock_level
                ))),
            }
        }
        Operation::Remove(quantity) => {
            check_quantity(quantity, limits)?;
            let Some(level) = current else {
                return Err(Refusal::UnknownProduct(format!(
                    "product {sku} is not known: it has never been stocked"
                )));
            };
            match level.checked_sub(quantity) {
                Some(new_level) => Ok(Outcome {
                    level: new_level,
                    low_stock: new_level < LOW_STOCK_THRESHOLD,
                }),
                None => Err(Refusal::RuleViolated(format!(
                    "cannot remove {quantity} units of {sku}: only {level} in stock"
                ))),
            }
        }
    }
}

fn check_quantity(quantity: u32, limits: Limits) -> Result<(), Refusal> {
    if quantity == 0 || quantity > limits.max_quantity {
        return Err(Refusal::Invalid(format!(
            "quantity must be between 1 and {}, got {quantity}",
            limits.max_quantity
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_quantity: 1_000_000,
        max_stock_level: 1_000_000_000,
    };

    fn decide_now(operation: Operation, current: Option<u32>) -> Result<Outcome, Refusal> {
        decide("sku-1", operation, current, LIMITS)
    }

    #[test]
    fn add_to_an_unknown_product_starts_from_zero() {
        assert_eq!(
            decide_now(Operation::Add(5), None),
            Ok(Outcome {
                level: 5,
                low_stock: false
            })
        );
    }

    #[test]
    fn add_to_a_known_product_adds() {
        assert_eq!(
            decide_now(Operation::Add(5), Some(7)),
            Ok(Outcome {
                level: 12,
                low_stock: false
            })
        );
    }

    #[test]
    fn add_never_emits_low_stock_even_when_the_level_stays_low() {
        assert_eq!(
            decide_now(Operation::Add(1), Some(2)),
            Ok(Outcome {
                level: 3,
                low_stock: false
            })
        );
    }

    #[test]
    fn add_refuses_zero_and_oversized_quantities() {
        assert!(matches!(
            decide_now(Operation::Add(0), None),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            decide_now(Operation::Add(LIMITS.max_quantity + 1), None),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn add_refuses_to_pass_the_stock_ceiling_and_never_wraps() {
        assert_eq!(
            decide_now(Operation::Add(1), Some(LIMITS.max_stock_level)).map(|o| o.level),
            Err(Refusal::RuleViolated(
                "cannot add 1 units of sku-1: the stock level would exceed the maximum of 1000000000 (it is 1000000000)".into()
            ))
        );
        assert!(matches!(
            decide(
                "s",
                Operation::Add(2),
                Some(u32::MAX - 1),
                Limits {
                    max_quantity: u32::MAX,
                    max_stock_level: u32::MAX
                }
            ),
            Err(Refusal::RuleViolated(_))
        ));
        assert_eq!(
            decide_now(Operation::Add(1), Some(LIMITS.max_stock_level - 1)).map(|o| o.level),
            Ok(LIMITS.max_stock_level)
        );
    }

    #[test]
    fn remove_from_an_unknown_product_is_not_found() {
        assert!(matches!(
            decide_now(Operation::Remove(1), None),
            Err(Refusal::UnknownProduct(_))
        ));
    }

    #[test]
    fn remove_below_zero_is_refused() {
        assert_eq!(
            decide_now(Operation::Remove(4), Some(3)),
            Err(Refusal::RuleViolated(
                "cannot remove 4 units of sku-1: only 3 in stock".into()
            ))
        );
    }

    #[test]
    fn remove_to_exactly_zero_is_allowed_and_low() {
        assert_eq!(
            decide_now(Operation::Remove(3), Some(3)),
            Ok(Outcome {
                level: 0,
                low_stock: true
            })
        );
    }

    #[test]
    fn low_stock_is_emitted_below_ten_only() {
        assert_eq!(
            decide_now(Operation::Remove(1), Some(11)),
            Ok(Outcome {
                level: 10,
                low_stock: false
            })
        );
        assert_eq!(
            decide_now(Operation::Remove(1), Some(10)),
            Ok(Outcome {
                level: 9,
                low_stock: true
            })
        );
    }

    #[test]
    fn remove_refuses_zero_quantity() {
        assert!(matches!(
            decide_now(Operation::Remove(0), Some(5)),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn get_reports_the_level_and_zero_for_unknown() {
        assert_eq!(
            decide_now(Operation::Get, Some(42)).map(|o| o.level),
            Ok(42)
        );
        assert_eq!(decide_now(Operation::Get, None).map(|o| o.level), Ok(0));
    }
}
