//! The ledger: every applied change, in order, as `beaker ledger` prints it.

use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError};

/// One ledger row, as `beaker ledger` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub id: i64,
    pub operation: String,
    pub quantity: i32,
    pub level_before: i32,
    pub level_after: i32,
    pub rules_name: String,
    pub rules_version: String,
    pub rules_digest: String,
    pub request_id: Uuid,
    pub trace_id: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The columns a [`LedgerRow`] is read from, in its fields' order.
const COLUMNS: &str = "id, operation, quantity, level_before, level_after, rules_name, \
     rules_version, rules_digest, request_id, trace_id, created_at";

impl Store {
    /// A product's ledger, oldest first.
    pub async fn ledger(&self, sku: &str) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM stock_movements WHERE product_sku = $1 ORDER BY id"
        ))
        .bind(sku)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(ledger_row).collect())
    }

    /// At most `limit` of a product's movements older than `before` (all
    /// when `None`), newest first: one page of `stock.history`. Served by
    /// the (product_sku, id) index, so a page costs the same however long
    /// the ledger is.
    pub async fn history(
        &self,
        sku: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM stock_movements \
             WHERE product_sku = $1 AND ($2::bigint IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(sku)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(ledger_row).collect())
    }
}

fn ledger_row(r: &sqlx::postgres::PgRow) -> LedgerRow {
    LedgerRow {
        id: r.get(0),
        operation: r.get(1),
        quantity: r.get(2),
        level_before: r.get(3),
        level_after: r.get(4),
        rules_name: r.get(5),
        rules_version: r.get(6),
        rules_digest: r.get(7),
        request_id: r.get(8),
        trace_id: r.get(9),
        created_at: r.get(10),
    }
}
