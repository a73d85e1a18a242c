//! The bounds on SKUs, quantities and stock levels, read from the JSON
//! Schemas in `schemas/` so that they are stated exactly once.
//!
//! The schemas are what callers read, so they are the source of truth: the
//! host validates requests with them, passes the numbers to the rules
//! through the WIT `limits` record, and checks every decision against them.
//! The database's CHECK constraints repeat the same numbers
//! (`migrations/`); an end-to-end test proves they agree.

use std::sync::LazyLock;

use serde_json::Value;

use crate::contract::schema::embedded;

/// Bounds every request and every decision must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The longest SKU, in characters (all ASCII, so also bytes).
    pub max_sku_len: usize,
    /// The smallest quantity one add or remove may carry.
    pub min_quantity: u32,
    /// The largest quantity one add or remove may carry.
    pub max_quantity: u32,
    /// The highest stock level a product may reach.
    pub max_stock_level: u32,
}

/// The bounds, parsed once from the embedded schemas.
pub static BOUNDS: LazyLock<Bounds> = LazyLock::new(|| {
    // The schemas are compiled into the binary and covered by unit tests, so
    // a failure here is a build defect, not an input error.
    from_schemas().unwrap_or_else(|field| panic!("embedded schema lacks {field}"))
});

fn number(schema: &str, field: &'static str) -> Result<u64, &'static str> {
    let value: Value = serde_json::from_str(schema).map_err(|_| field)?;
    value.get(field).and_then(Value::as_u64).ok_or(field)
}

fn from_schemas() -> Result<Bounds, &'static str> {
    let narrow = |n: u64, field| u32::try_from(n).map_err(|_| field);
    Ok(Bounds {
        max_sku_len: usize::try_from(number(embedded::PRODUCT_SKU, "maxLength")?)
            .map_err(|_| "maxLength")?,
        min_quantity: narrow(number(embedded::QUANTITY, "minimum")?, "minimum")?,
        max_quantity: narrow(number(embedded::QUANTITY, "maximum")?, "maximum")?,
        max_stock_level: narrow(number(embedded::STOCK_LEVEL, "maximum")?, "maximum")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_read_from_the_schemas() {
        let bounds = from_schemas().expect("schemas carry every bound");
        assert_eq!(
            bounds.max_sku_len, 50,
            "the reference column is varchar(50)"
        );
        assert_eq!(bounds.min_quantity, 1);
        assert!(bounds.max_quantity >= 1);
        // The database column is a 32-bit integer: the ceiling must fit.
        assert!(i32::try_from(bounds.max_stock_level).is_ok());
        assert!(bounds.max_quantity <= bounds.max_stock_level);
    }
}
