//! One request's transaction: claim its idempotency key, lock its
//! product's row (or, asked not to wait, find it held), and write the new
//! level, the ledger row, the outbox rows and the stored reply in one
//! statement before committing.

use sqlx::{Postgres, Row, Transaction};
use tracing::Instrument;
use uuid::Uuid;

use super::idempotency::{Claim, IdempotencyKey, StoredReply, claim_key};
use super::outbox::{OutboxEvent, headers_json};
use super::{Store, StoreError, commit, level_from, statement, to_db};

/// Which rules made a decision, as recorded in the ledger.
#[derive(Debug, Clone)]
pub struct RulesStamp {
    pub name: String,
    pub version: String,
    pub digest: String,
}

/// An applied add or remove, as the ledger records it.
#[derive(Debug, Clone)]
pub struct Movement {
    pub operation: &'static str,
    pub quantity: u32,
    pub level_after: u32,
    pub rules: RulesStamp,
    pub request_id: Uuid,
    pub trace_id: Option<String>,
}

/// How a change begins.
#[derive(Debug)]
pub enum Begun {
    /// The row is locked; decide and commit.
    Change(Change),
    /// The key was used before for this very request: send this again.
    Replay(StoredReply),
    /// The key was used before for a different request.
    KeyReused,
    /// The product's row is held by another transaction, and the caller
    /// asked not to wait for it ([`RowLock::SkipIfHeld`]). Nothing was
    /// written; the key, if any, is free again.
    Busy,
}

/// Whether [`Store::begin_change_locking`] waits for a row another
/// transaction holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    /// Wait until the row is free, as every request alone does.
    Wait,
    /// Do not wait: answer [`Begun::Busy`].
    SkipIfHeld,
}

/// The rows a group commit locked.
#[derive(Debug, Clone, Default)]
pub struct Locked {
    /// Levels of the products now locked by the group.
    pub levels: std::collections::HashMap<String, u32>,
    /// Products that exist but another transaction holds.
    pub busy: std::collections::HashSet<String>,
}

impl Store {
    /// Starts a change: opens a transaction, claims the idempotency key if
    /// there is one (a concurrent request with the same key waits here
    /// until the first commits or rolls back), and locks the product's row.
    pub async fn begin_change(
        &self,
        sku: &str,
        key: Option<&IdempotencyKey>,
    ) -> Result<Begun, StoreError> {
        self.begin_change_locking(sku, key, RowLock::Wait).await
    }

    /// [`Store::begin_change`], with the choice of not waiting for a row
    /// another transaction holds.
    pub async fn begin_change_locking(
        &self,
        sku: &str,
        key: Option<&IdempotencyKey>,
        lock: RowLock,
    ) -> Result<Begun, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .instrument(statement("BEGIN", "inventory"))
            .await?;
        if let Some(key) = key {
            match claim_key(&mut tx, key)
                .instrument(statement("INSERT", "idempotency"))
                .await?
            {
                Claim::Owned => {}
                Claim::Replay(reply) => return Ok(Begun::Replay(reply)),
                Claim::Reused => return Ok(Begun::KeyReused),
            }
        }
        let current = match lock {
            RowLock::Wait => {
                sqlx::query("SELECT stock_level FROM inventory WHERE product_sku = $1 FOR UPDATE")
                    .bind(sku)
                    .fetch_optional(&mut *tx)
                    .instrument(statement("SELECT", "inventory"))
                    .await?
                    .map(|r| level_from(r.get::<i32, _>(0)))
                    .transpose()?
            }
            RowLock::SkipIfHeld => {
                let mut locked = lock_unless_held(&mut tx, &[sku]).await?;
                if locked.busy.contains(sku) {
                    return Ok(Begun::Busy);
                }
                locked.levels.remove(sku)
            }
        };
        Ok(Begun::Change(Change {
            tx,
            sku: sku.to_string(),
            current,
            key: key.map(|k| k.key.clone()),
        }))
    }
}

/// A change in progress: the transaction holds the product's row lock
/// (and the idempotency key, if any). Dropping it without committing rolls
/// back.
#[derive(Debug)]
pub struct Change {
    tx: Transaction<'static, Postgres>,
    sku: String,
    key: Option<String>,
    /// The level read under the lock; `None` if the product is new.
    pub current: Option<u32>,
}

impl Change {
    /// Writes, in one statement, the new level, its ledger row, its events
    /// into the outbox and the reply for the idempotency key; then commits.
    pub async fn commit(
        mut self,
        movement: &Movement,
        events: &[OutboxEvent],
        reply: &StoredReply,
    ) -> Result<(), StoreError> {
        let level_change = match self.current {
            Some(_) => {
                "UPDATE inventory SET stock_level = $2, updated_at = now() \
                 WHERE product_sku = $1 RETURNING product_sku"
            }
            None => {
                "INSERT INTO inventory (product_sku, stock_level) VALUES ($1, $2) \
                 ON CONFLICT (product_sku) DO NOTHING RETURNING product_sku"
            }
        };
        let write = format!(
            "WITH moved AS ({level_change}), \
             ledger AS (\
               INSERT INTO stock_movements (product_sku, operation, quantity, level_before, \
                 level_after, rules_name, rules_version, rules_digest, request_id, trace_id) \
               SELECT product_sku, $3, $4, $5, $2, $6, $7, $8, $9, $10 FROM moved \
               RETURNING product_sku), \
             events AS (\
               INSERT INTO outbox (msg_id, subject, payload, headers, request_id) \
               SELECT e.msg_id, e.subject, e.payload, e.headers::jsonb, $9 \
               FROM UNNEST($11::uuid[], $12::text[], $13::text[], $14::text[]) \
                 AS e(msg_id, subject, payload, headers)), \
             replied AS (\
               UPDATE idempotency SET reply_body = $15 WHERE key = $16) \
             SELECT count(*) FROM ledger"
        );
        let msg_ids: Vec<Uuid> = events.iter().map(|e| e.msg_id).collect();
        let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
        let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
        let headers: Vec<String> = events.iter().map(|e| headers_json(&e.headers)).collect();
        let written: i64 = sqlx::query_scalar(&write)
            .bind(&self.sku)
            .bind(to_db(movement.level_after)?)
            .bind(movement.operation)
            .bind(to_db(movement.quantity)?)
            .bind(to_db(self.current.unwrap_or(0))?)
            .bind(&movement.rules.name)
            .bind(&movement.rules.version)
            .bind(&movement.rules.digest)
            .bind(movement.request_id)
            .bind(movement.trace_id.as_deref())
            .bind(&msg_ids)
            .bind(&subjects)
            .bind(&payloads)
            .bind(&headers)
            .bind(&reply.body)
            .bind(self.key.as_deref())
            .fetch_one(&mut *self.tx)
            .instrument(statement(
                if self.current.is_some() {
                    "UPDATE"
                } else {
                    "INSERT"
                },
                "inventory",
            ))
            .await?;
        if written != 1 {
            // Only the insert of a new product can write nothing: someone
            // else created it after our read. Roll back and decide again.
            return Err(StoreError::Contended);
        }
        commit(self.tx).await
    }

    /// Ends a change the rules refused. With an idempotency key the refusal
    /// is stored, so that a retry gets the same answer; without one there
    /// is nothing to write.
    pub async fn refuse(mut self, reply: &StoredReply) -> Result<(), StoreError> {
        let Some(key) = self.key.take() else {
            return Ok(());
        };
        let (code, message) = match &reply.error {
            Some((code, message)) => (Some(i32::from(*code)), Some(message.as_str())),
            None => (None, None),
        };
        sqlx::query(
            "UPDATE idempotency SET reply_body = $2, error_code = $3, error_message = $4 \
             WHERE key = $1",
        )
        .bind(&key)
        .bind(&reply.body)
        .bind(code)
        .bind(message)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// Locks the rows of these products that no other transaction holds, in
/// one statement, and reports the levels of those it locked and which
/// exist but are held elsewhere (busy). Products in neither set do not
/// exist (yet).
pub(super) async fn lock_unless_held(
    tx: &mut Transaction<'static, Postgres>,
    skus: &[&str],
) -> Result<Locked, StoreError> {
    let rows = sqlx::query(
        "WITH locked AS (\
           SELECT product_sku, stock_level FROM inventory WHERE product_sku = ANY($1) \
           ORDER BY product_sku FOR UPDATE SKIP LOCKED) \
         SELECT w.sku, l.stock_level, \
           l.product_sku IS NULL AND EXISTS \
             (SELECT 1 FROM inventory i WHERE i.product_sku = w.sku) \
         FROM UNNEST($1::text[]) AS w(sku) LEFT JOIN locked l ON l.product_sku = w.sku",
    )
    .bind(skus)
    .fetch_all(&mut **tx)
    .instrument(statement("SELECT", "inventory"))
    .await?;
    let mut locked = Locked::default();
    for row in rows {
        let sku: String = row.get(0);
        if row.get::<bool, _>(2) {
            locked.busy.insert(sku);
        } else if let Some(level) = row.get::<Option<i32>, _>(1) {
            locked.levels.insert(sku, level_from(level)?);
        }
    }
    Ok(locked)
}
