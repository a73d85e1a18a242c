//! The books of a scenario: every request settled against the ledger (by
//! the trace id the host writes into it), every level against what the
//! callers were told, every committed low-stock change against the stream.
//!
//! The books and the ledger rows they read are defined here; settling the
//! requests, checking the events and reporting live in their own modules.

mod events;
mod ledger;
mod report;

/// The low-stock threshold of the default rules: a remove that leaves
/// fewer units emits an event.
pub const LOW_STOCK_BELOW: i32 = 10;

/// What a scenario's books show. Every count named "mismatch", "anomaly",
/// "missing", "duplicated" or "unexpected" must be zero.
#[derive(Debug, Clone, Default)]
pub struct Books {
    pub scenario: String,
    pub sent: usize,
    pub acknowledged: usize,
    pub refused_rule: usize,
    pub refused_other: usize,
    pub unavailable: usize,
    pub no_responders: usize,
    /// Requests with at least one attempt whose answer was lost.
    pub answers_lost: usize,
    /// Of those, the ones a retry with the same key settled.
    pub settled_by_retry: usize,
    /// Never answered, applied according to the ledger.
    pub lost_applied: usize,
    /// Never answered, not applied according to the ledger.
    pub lost_not_applied: usize,
    /// Repeated keyed requests answered, all byte-identical to the first.
    pub replays: usize,
    /// Σ |quantity| of the requests never answered: how far the books may
    /// be from the acknowledged changes alone.
    pub lost_bound: i64,
    pub level_mismatches: Vec<String>,
    pub ledger_anomalies: Vec<String>,
    pub events_expected: usize,
    pub events_missing: Vec<String>,
    pub events_duplicated: Vec<String>,
    pub events_unexpected: Vec<String>,
    /// Of the requests sent after recovery: not answered, or answered 503.
    pub after_recovery_failures: usize,
    pub after_recovery: usize,
}

/// One ledger row.
#[derive(Debug, Clone)]
struct LedgerRow {
    sku: String,
    operation: String,
    quantity: i32,
    level_before: i32,
    level_after: i32,
    trace_id: Option<String>,
}
