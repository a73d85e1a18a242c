//! The outbox: events written with the change that caused them, claimed
//! by the relay in batches, marked once JetStream acknowledged them; the
//! backlog the metrics show; and housekeeping of old rows and keys.

use std::time::Duration;

use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{Store, StoreError};

/// An event to write to the outbox with its change.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// The stable id published as `Nats-Msg-Id`.
    pub msg_id: Uuid,
    pub subject: String,
    pub payload: String,
    /// Extra NATS headers, e.g. trace context.
    pub headers: Vec<(String, String)>,
}

/// A pending outbox row, as the relay reads it.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub id: i64,
    pub msg_id: Uuid,
    pub subject: String,
    pub payload: String,
    pub headers: Vec<(String, String)>,
    pub request_id: Uuid,
}

impl Store {
    /// Claims up to `limit` pending outbox rows, oldest first, skipping
    /// rows another relay holds. The claim lasts until the batch is
    /// finished or dropped.
    pub async fn claim_pending(&self, limit: i64) -> Result<OutboxBatch, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, msg_id, subject, payload, headers::text, request_id FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let events = rows
            .into_iter()
            .map(|r| PendingEvent {
                id: r.get(0),
                msg_id: r.get(1),
                subject: r.get(2),
                payload: r.get(3),
                headers: parse_headers(&r.get::<String, _>(4)),
                request_id: r.get(5),
            })
            .collect();
        Ok(OutboxBatch { tx, events })
    }

    /// Pending outbox rows and the age of the oldest, for metrics.
    pub async fn outbox_backlog(&self) -> Result<(i64, Duration), StoreError> {
        let row = sqlx::query(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 \
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        let age: f64 = row.get(1);
        Ok((row.get(0), Duration::from_secs_f64(age.max(0.0))))
    }

    /// Deletes expired idempotency keys and outbox rows published longer
    /// ago than `retention`. Returns how many of each went.
    pub async fn housekeeping(&self, retention: Duration) -> Result<(u64, u64), StoreError> {
        let keys = sqlx::query("DELETE FROM idempotency WHERE expires_at < now()")
            .execute(&self.pool)
            .await?
            .rows_affected();
        let rows = sqlx::query(
            "DELETE FROM outbox WHERE published_at < now() - $1 * interval '1 millisecond'",
        )
        .bind(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((keys, rows))
    }
}

/// A claimed batch of outbox rows. Dropping it releases the claim.
#[derive(Debug)]
pub struct OutboxBatch {
    tx: Transaction<'static, Postgres>,
    pub events: Vec<PendingEvent>,
}

impl OutboxBatch {
    /// Marks the published rows, counts an attempt on the others, and
    /// releases the claim.
    pub async fn finish(
        mut self,
        published: &[i64],
        failed: &[(i64, String)],
    ) -> Result<(), StoreError> {
        if !published.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(published)
                .execute(&mut *self.tx)
                .await?;
        }
        if !failed.is_empty() {
            let ids: Vec<i64> = failed.iter().map(|(id, _)| *id).collect();
            let errors: Vec<&str> = failed.iter().map(|(_, e)| e.as_str()).collect();
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = f.error \
                 FROM UNNEST($1::bigint[], $2::text[]) AS f(id, error) WHERE outbox.id = f.id",
            )
            .bind(&ids)
            .bind(&errors)
            .execute(&mut *self.tx)
            .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}

pub(super) fn headers_json(headers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn parse_headers(text: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
            .collect(),
        _ => Vec::new(),
    }
}
