//! `stock.history`: a product's ledger, newest first, one page at a time.
//!
//! It reads what the changes wrote and decides nothing, so the rules are
//! not asked; the request is checked like every other (size, UTF-8, the
//! JSON Schema) and the page against its response schema before it goes.

use chrono::SecondsFormat;
use serde_json::Value;

use super::Inventory;
use super::prepare::{decode_by_schema, payload_text};
use super::reply::{internal, store_failure};
use crate::contract::wire::{
    Endpoint, HISTORY_DEFAULT_LIMIT, HistoryMovement, HistoryPage, HistoryRequest, Reply, RulesRef,
    True,
};
use crate::store::LedgerRow;

impl Inventory {
    /// Answers one `stock.history` request.
    pub(super) async fn history(&self, payload: &[u8]) -> Reply {
        let request = match self.decode_history(payload) {
            Ok(request) => request,
            Err(reply) => return reply,
        };
        let limit = request.limit.unwrap_or(HISTORY_DEFAULT_LIMIT);
        // One more than asked: whether an older page exists, without a count.
        let rows = match self
            .store
            .history(&request.sku, limit + 1, request.before)
            .await
        {
            Ok(rows) => rows,
            Err(e) => return store_failure(e),
        };
        let page = page(request.sku, rows, limit);
        // The page is built from the database's rows: a value out of the
        // schema's bounds there (a column changed by hand, say) must not
        // reach callers as if it were valid.
        let body = serde_json::to_value(&page).unwrap_or(Value::Null);
        if let Err(e) = self.schemas.check_response(Endpoint::History, &body) {
            tracing::error!(error = %e, "history page does not match its schema; sending 500");
            return internal();
        }
        Reply::History(Box::new(page))
    }

    fn decode_history(&self, payload: &[u8]) -> Result<HistoryRequest, Reply> {
        let text = payload_text(Endpoint::History, payload, self.limits.max_request_bytes)?;
        decode_by_schema(&self.schemas, Endpoint::History, text).map(|(request, _)| request)
    }
}

/// The page for `rows` (newest first, at most `limit + 1` of them).
fn page(sku: String, mut rows: Vec<LedgerRow>, limit: u32) -> HistoryPage {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_before = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    HistoryPage {
        ok: True,
        sku,
        movements: rows.into_iter().map(movement).collect(),
        next_before,
    }
}

fn movement(row: LedgerRow) -> HistoryMovement {
    HistoryMovement {
        id: row.id,
        operation: row.operation,
        // The database's CHECK constraints keep both within the schema's
        // bounds; a negative value would fail the page's schema check.
        quantity: u32::try_from(row.quantity).unwrap_or(0),
        level_after: u32::try_from(row.level_after).unwrap_or(0),
        rules: RulesRef {
            name: row.rules_name,
            version: row.rules_version,
        },
        request_id: row.request_id.to_string(),
        at: row.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}
