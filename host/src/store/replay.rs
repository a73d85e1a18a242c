//! Reading recorded history back for `beaker rules replay`: the ledger's
//! movements with the stock each one saw, and the events each published
//! while the outbox still holds them. Read only, in pages, so a long
//! ledger costs time, not memory.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError};

/// A recorded movement, as a replay needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMovement {
    pub id: i64,
    pub sku: String,
    pub operation: String,
    pub quantity: i32,
    /// The stock the request saw: `None` for a product's first movement
    /// (it had never been stocked), else the level before.
    pub current: Option<i32>,
    pub level_after: i32,
    pub rules_name: String,
    pub rules_version: String,
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// The low-stock events the outbox still holds, by request, and since
/// when it holds every event (rows are deleted some time after they are
/// published, oldest first).
#[derive(Debug, Clone, Default)]
pub struct RecordedEvents {
    pub by_request: HashMap<Uuid, Vec<String>>,
    /// Movements at or after this time have all their events here; `None`
    /// when no movement's events are known.
    pub complete_since: Option<DateTime<Utc>>,
}

impl Store {
    /// At most `limit` movements after `after` (an id), oldest first,
    /// from `since` on and of `sku` when given.
    pub async fn recorded_movements(
        &self,
        after: i64,
        since: Option<DateTime<Utc>>,
        sku: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RecordedMovement>, StoreError> {
        // A product's first movement is the one with no earlier one: the
        // (product_sku, id) index answers that per row.
        let rows = sqlx::query(
            "SELECT m.id, m.product_sku, m.operation, m.quantity, m.level_before, m.level_after, \
                    m.rules_name, m.rules_version, m.request_id, m.created_at, \
                    NOT EXISTS (SELECT 1 FROM stock_movements e \
                                WHERE e.product_sku = m.product_sku AND e.id < m.id) AS first \
             FROM stock_movements m \
             WHERE m.id > $1 \
               AND ($2::timestamptz IS NULL OR m.created_at >= $2) \
               AND ($3::text IS NULL OR m.product_sku = $3) \
             ORDER BY m.id LIMIT $4",
        )
        .bind(after)
        .bind(since)
        .bind(sku)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let first: bool = r.get(10);
                RecordedMovement {
                    id: r.get(0),
                    sku: r.get(1),
                    operation: r.get(2),
                    quantity: r.get(3),
                    current: (!first).then(|| r.get(4)),
                    level_after: r.get(5),
                    rules_name: r.get(6),
                    rules_version: r.get(7),
                    request_id: r.get(8),
                    created_at: r.get(9),
                }
            })
            .collect())
    }

    /// Every event payload the outbox holds from `since` on, by request,
    /// and since when it holds them all.
    ///
    /// Housekeeping deletes rows published more than the retention ago, so
    /// every row deleted was published before the earliest publish time
    /// still held, and created before that too: from that time on, nothing
    /// is missing. When the ids held run unbroken from the first, nothing
    /// was ever deleted and every movement's events are known.
    pub async fn recorded_events(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<RecordedEvents, StoreError> {
        let (first, last, count, earliest_published): (
            Option<i64>,
            Option<i64>,
            i64,
            Option<DateTime<Utc>>,
        ) = sqlx::query_as("SELECT min(id), max(id), count(*), min(published_at) FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        let complete_since = match (first, last) {
            (Some(1), Some(last)) if last == count => Some(DateTime::<Utc>::MIN_UTC),
            _ => earliest_published,
        };
        let rows = sqlx::query(
            "SELECT request_id, payload FROM outbox \
             WHERE ($1::timestamptz IS NULL OR created_at >= $1) ORDER BY id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut by_request: HashMap<Uuid, Vec<String>> = HashMap::new();
        for row in &rows {
            by_request.entry(row.get(0)).or_default().push(row.get(1));
        }
        Ok(RecordedEvents {
            by_request,
            complete_since,
        })
    }
}
