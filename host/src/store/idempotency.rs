//! Idempotency keys: a request's key claimed in its transaction, and the
//! reply stored under it, replayed byte for byte to a retry.

use std::time::Duration;

use sqlx::{Postgres, Row, Transaction};

use super::StoreError;

/// A request's idempotency key, as stored with its reply.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub endpoint: &'static str,
    /// Fingerprint of the endpoint and the request.
    pub request_hash: String,
    /// How long a retry gets the stored reply.
    pub ttl: Duration,
}

/// A reply exactly as it was sent, for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReply {
    pub body: String,
    /// The error code and message of a failed reply.
    pub error: Option<(u16, String)>,
}

pub(super) enum Claim {
    Owned,
    Replay(StoredReply),
    Reused,
}

/// Inserts the key, or finds the committed reply of its first use.
pub(super) async fn claim_key(
    tx: &mut Transaction<'static, Postgres>,
    key: &IdempotencyKey,
) -> Result<Claim, StoreError> {
    let ttl_ms = i64::try_from(key.ttl.as_millis()).unwrap_or(i64::MAX);
    for _ in 0..2 {
        let inserted = sqlx::query(
            "INSERT INTO idempotency (key, endpoint, request_hash, expires_at) \
             VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond') \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&key.key)
        .bind(key.endpoint)
        .bind(&key.request_hash)
        .bind(ttl_ms)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Owned);
        }
        let row = sqlx::query(
            "SELECT request_hash, reply_body, error_code, error_message, expires_at < now() \
             FROM idempotency WHERE key = $1",
        )
        .bind(&key.key)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            continue; // deleted meanwhile: claim it again
        };
        let expired: bool = row.get(4);
        if expired {
            sqlx::query("DELETE FROM idempotency WHERE key = $1")
                .bind(&key.key)
                .execute(&mut **tx)
                .await?;
            continue;
        }
        let hash: String = row.get(0);
        if hash != key.request_hash {
            return Ok(Claim::Reused);
        }
        let body: Option<String> = row.get(1);
        let code: Option<i32> = row.get(2);
        let message: Option<String> = row.get(3);
        let Some(body) = body else {
            return Err(StoreError::Failed("idempotency key without a reply".into()));
        };
        let error = match (code, message) {
            (Some(code), Some(message)) => Some((u16::try_from(code).unwrap_or(500), message)),
            _ => None,
        };
        return Ok(Claim::Replay(StoredReply { body, error }));
    }
    Err(StoreError::Unavailable(
        "the idempotency key is being claimed and released repeatedly".into(),
    ))
}

/// What a group commit found for one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// Claimed by this transaction: the request goes ahead.
    Owned,
    /// Used before for this very request: send this reply again.
    Replay(StoredReply),
    /// Used before for a different request.
    Reused,
    /// Expired, vanished or unreadable: leave it to the one-request path,
    /// which knows how to deal with each of these.
    Aside,
}
