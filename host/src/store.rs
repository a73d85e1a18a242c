//! Postgres: stock levels and the ledger, one transaction per change.
//!
//! A change reads the product's row `FOR UPDATE` (so concurrent changes to
//! one product queue up behind each other), lets the caller ask the rules,
//! then writes the new level and its ledger row in a single statement and
//! commits. Stock can never go below zero: the rules refuse it, the host
//! checks the decision, and the table's CHECK constraint is the last word.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres, Row, Transaction};
use tracing::Instrument;
use uuid::Uuid;

/// A span for one statement, named as the OpenTelemetry database
/// conventions ask: `{operation} {table}`.
fn statement(operation: &'static str, table: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db.query",
        otel.name = format!("{operation} {table}"),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
        db.collection.name = table,
    )
}

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Database settings.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// A `postgres://` URL; may hold a password, so never log it as is.
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a free connection before it is told
    /// the service is unavailable.
    pub acquire_timeout: Duration,
    /// The longest any statement may run.
    pub statement_timeout: Duration,
}

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, is shutting down, timed out, or no
    /// connection is free: retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A concurrent transaction got in the way: another request created
    /// the same product at the same moment, or Postgres broke a deadlock
    /// or a serialization conflict. Nothing was written; the change should
    /// be decided again against the rows as they now are.
    #[error("a concurrent change got in the way")]
    Contended,
    /// Anything else: a defect, not a caller's mistake.
    #[error("database error: {0}")]
    Failed(String),
    /// The connection failed while committing: the change may or may not
    /// have been applied, and only a retry with the same idempotency key
    /// can tell.
    #[error("the outcome of a commit is unknown: {0}")]
    CommitUnknown(String),
    #[error("bad database URL: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migrate(String),
}

impl StoreError {
    fn from_sqlx(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(error.to_string())
            }
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                // 40001 serialization failure, 40P01 deadlock: deciding
                // again succeeds. 57014 query_canceled (statement timeout),
                // 57P0x shutdown, 08xxx connection exceptions, 53xxx
                // insufficient resources, other 40xxx: try again later.
                if code == "40001" || code == "40P01" {
                    StoreError::Contended
                } else if code == "57014"
                    || code.starts_with("57P")
                    || code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("40")
                {
                    StoreError::Unavailable(db.message().to_string())
                } else {
                    StoreError::Failed(format!("{} ({code})", db.message()))
                }
            }
            _ => StoreError::Failed(error.to_string()),
        }
    }
}

/// A failed COMMIT: one the database refused was rolled back, but one
/// whose connection broke may have been applied.
fn commit_failure(error: sqlx::Error) -> StoreError {
    match StoreError::from_sqlx(error) {
        StoreError::Unavailable(detail) => StoreError::CommitUnknown(detail),
        other => other,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::from_sqlx(error)
    }
}

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

/// The connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

/// Parses the URL and applies the session settings every connection gets.
fn connect_options(config: &DbConfig) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(&config.url)
        .map_err(|e| StoreError::Config(format!("{} ({e})", redact_url(&config.url))))?;
    Ok(options
        .application_name("beaker")
        .options([(
            "statement_timeout",
            config.statement_timeout.as_millis().to_string(),
        )])
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1)))
}

impl Store {
    /// Creates the pool. Connections open lazily, so a database that is
    /// down at start makes requests fail with 503 until it is back rather
    /// than keeping the service from starting.
    pub fn connect_lazy(config: &DbConfig) -> Result<Self, StoreError> {
        let options = connect_options(config)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(0)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// Creates the database named in the URL if it does not exist yet.
    pub async fn ensure_database(url: &str) -> Result<bool, StoreError> {
        if Postgres::database_exists(url).await? {
            return Ok(false);
        }
        Postgres::create_database(url).await?;
        Ok(true)
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // A connection of its own, not one from the pool: the pool's acquire
        // timeout is set for requests, and may be shorter than opening the
        // first connection takes.
        let mut connection = self
            .pool
            .connect_options()
            .connect()
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let migrated = MIGRATOR
            .run(&mut connection)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()));
        let _ = connection.close().await;
        migrated
    }

    /// The pool, for tests and health checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection; waits for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A product's level, or `None` if it was never stocked.
    pub async fn level(&self, sku: &str) -> Result<Option<u32>, StoreError> {
        let row = sqlx::query("SELECT stock_level FROM inventory WHERE product_sku = $1")
            .bind(sku)
            .fetch_optional(&self.pool)
            .instrument(statement("SELECT", "inventory"))
            .await?;
        row.map(|r| level_from(r.get::<i32, _>(0))).transpose()
    }

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

    /// A product's ledger, oldest first.
    pub async fn ledger(&self, sku: &str) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, operation, quantity, level_before, level_after, rules_name, \
             rules_version, rules_digest, request_id, trace_id, created_at \
             FROM stock_movements WHERE product_sku = $1 ORDER BY id",
        )
        .bind(sku)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| LedgerRow {
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
            })
            .collect())
    }
}

fn level_from(value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Failed(format!("negative stock level {value}")))
}

fn to_db(value: u32) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::Failed(format!("value {value} exceeds int4")))
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
        self.tx
            .commit()
            .instrument(statement("COMMIT", "inventory"))
            .await
            .map_err(commit_failure)
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

enum Claim {
    Owned,
    Replay(StoredReply),
    Reused,
}

/// Inserts the key, or finds the committed reply of its first use.
async fn claim_key(
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

/// One applied change of a group, for the ledger.
#[derive(Debug, Clone)]
pub struct GroupMovement {
    pub sku: String,
    pub level_before: u32,
    pub movement: Movement,
}

/// The rows a group commit locked.
#[derive(Debug, Clone, Default)]
pub struct Locked {
    /// Levels of the products now locked by the group.
    pub levels: std::collections::HashMap<String, u32>,
    /// Products that exist but another transaction holds.
    pub busy: std::collections::HashSet<String>,
}

/// Everything a group commit writes, each kind in one statement.
#[derive(Debug, Clone, Default)]
pub struct GroupWrites {
    /// Final levels of products that existed when the group locked them.
    pub updated: Vec<(String, u32)>,
    /// Final levels of products the group creates.
    pub created: Vec<(String, u32)>,
    /// Ledger rows, in the order the changes were decided.
    pub movements: Vec<GroupMovement>,
    /// Outbox rows, with the id of the request that caused each.
    pub events: Vec<(OutboxEvent, Uuid)>,
    /// Replies stored under their idempotency keys.
    pub replies: Vec<(String, StoredReply)>,
    /// Keys claimed for requests that failed: removed, so a retry may
    /// succeed (as when a one-request transaction rolls back).
    pub released: Vec<String>,
}

/// A group commit in progress: one transaction for many requests. Dropping
/// it without committing rolls everything back.
#[derive(Debug)]
pub struct Group {
    tx: Transaction<'static, Postgres>,
}

impl Store {
    /// Opens the transaction of a group commit.
    pub async fn begin_group(&self) -> Result<Group, StoreError> {
        let tx = self
            .pool
            .begin()
            .instrument(statement("BEGIN", "inventory"))
            .await?;
        Ok(Group { tx })
    }
}

impl Group {
    /// Claims every key in one statement (in key order, so that two groups
    /// never wait for each other in a cycle) and reports, per key in the
    /// order given, what was found. A key another transaction is claiming
    /// makes this wait until that one ends, as in the one-request path.
    pub async fn claim_keys(
        &mut self,
        keys: &[&IdempotencyKey],
    ) -> Result<Vec<KeyStatus>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].key.cmp(&keys[b].key));
        let names: Vec<&str> = order.iter().map(|&i| keys[i].key.as_str()).collect();
        let endpoints: Vec<&str> = order.iter().map(|&i| keys[i].endpoint).collect();
        let hashes: Vec<&str> = order
            .iter()
            .map(|&i| keys[i].request_hash.as_str())
            .collect();
        let ttls: Vec<i64> = order
            .iter()
            .map(|&i| i64::try_from(keys[i].ttl.as_millis()).unwrap_or(i64::MAX))
            .collect();
        let claimed: Vec<String> = sqlx::query_scalar(
            "INSERT INTO idempotency (key, endpoint, request_hash, expires_at) \
             SELECT k, e, h, now() + t * interval '1 millisecond' \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) WITH ORDINALITY \
               AS c(k, e, h, t, n) ORDER BY n \
             ON CONFLICT (key) DO NOTHING RETURNING key",
        )
        .bind(&names)
        .bind(&endpoints)
        .bind(&hashes)
        .bind(&ttls)
        .fetch_all(&mut *self.tx)
        .instrument(statement("INSERT", "idempotency"))
        .await?;
        let others: Vec<&str> = names
            .iter()
            .copied()
            .filter(|k| !claimed.iter().any(|c| c == k))
            .collect();
        let mut found = std::collections::HashMap::new();
        if !others.is_empty() {
            let rows = sqlx::query(
                "SELECT key, request_hash, reply_body, error_code, error_message, \
                 expires_at < now() FROM idempotency WHERE key = ANY($1)",
            )
            .bind(&others)
            .fetch_all(&mut *self.tx)
            .instrument(statement("SELECT", "idempotency"))
            .await?;
            for row in rows {
                let key: String = row.get(0);
                found.insert(key, row);
            }
        }
        Ok(keys
            .iter()
            .map(|key| {
                if claimed.contains(&key.key) {
                    return KeyStatus::Owned;
                }
                let Some(row) = found.get(&key.key) else {
                    return KeyStatus::Aside;
                };
                let expired: bool = row.get(5);
                let body: Option<String> = row.get(2);
                if expired || body.is_none() {
                    return KeyStatus::Aside;
                }
                let hash: String = row.get(1);
                if hash != key.request_hash {
                    return KeyStatus::Reused;
                }
                let code: Option<i32> = row.get(3);
                let message: Option<String> = row.get(4);
                let error = match (code, message) {
                    (Some(code), Some(message)) => {
                        Some((u16::try_from(code).unwrap_or(500), message))
                    }
                    _ => None,
                };
                KeyStatus::Replay(StoredReply {
                    body: body.unwrap_or_default(),
                    error,
                })
            })
            .collect())
    }

    /// Locks the group's products, skipping rows held elsewhere (see
    /// [`lock_unless_held`]): a group must not wait for one busy row, or
    /// every other product in it would wait too.
    pub async fn lock_levels(&mut self, skus: &[&str]) -> Result<Locked, StoreError> {
        lock_unless_held(&mut self.tx, skus).await
    }

    /// Writes the levels, the ledger, the outbox and the stored replies,
    /// one statement for all, and commits. New products are inserted in
    /// product order; if another transaction created one of them first,
    /// nothing is written and the group must be decided again.
    pub async fn commit(mut self, writes: &GroupWrites) -> Result<(), StoreError> {
        let mut created = writes.created.clone();
        created.sort();
        let (updated_skus, updated_levels) = split_levels(&writes.updated)?;
        let (created_skus, created_levels) = split_levels(&created)?;
        let m = &writes.movements;
        let m_skus: Vec<&str> = m.iter().map(|g| g.sku.as_str()).collect();
        let m_ops: Vec<&str> = m.iter().map(|g| g.movement.operation).collect();
        let m_quantities = m
            .iter()
            .map(|g| to_db(g.movement.quantity))
            .collect::<Result<Vec<_>, _>>()?;
        let m_before = m
            .iter()
            .map(|g| to_db(g.level_before))
            .collect::<Result<Vec<_>, _>>()?;
        let m_after = m
            .iter()
            .map(|g| to_db(g.movement.level_after))
            .collect::<Result<Vec<_>, _>>()?;
        let m_rules_names: Vec<&str> = m.iter().map(|g| g.movement.rules.name.as_str()).collect();
        let m_rules_versions: Vec<&str> = m
            .iter()
            .map(|g| g.movement.rules.version.as_str())
            .collect();
        let m_rules_digests: Vec<&str> =
            m.iter().map(|g| g.movement.rules.digest.as_str()).collect();
        let m_requests: Vec<Uuid> = m.iter().map(|g| g.movement.request_id).collect();
        let m_traces: Vec<Option<&str>> =
            m.iter().map(|g| g.movement.trace_id.as_deref()).collect();
        let e = &writes.events;
        let e_ids: Vec<Uuid> = e.iter().map(|(ev, _)| ev.msg_id).collect();
        let e_subjects: Vec<&str> = e.iter().map(|(ev, _)| ev.subject.as_str()).collect();
        let e_payloads: Vec<&str> = e.iter().map(|(ev, _)| ev.payload.as_str()).collect();
        let e_headers: Vec<String> = e.iter().map(|(ev, _)| headers_json(&ev.headers)).collect();
        let e_requests: Vec<Uuid> = e.iter().map(|(_, r)| *r).collect();
        let r = &writes.replies;
        let r_keys: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        let r_bodies: Vec<&str> = r.iter().map(|(_, s)| s.body.as_str()).collect();
        let r_codes: Vec<Option<i32>> = r
            .iter()
            .map(|(_, s)| s.error.as_ref().map(|(c, _)| i32::from(*c)))
            .collect();
        let r_messages: Vec<Option<&str>> = r
            .iter()
            .map(|(_, s)| s.error.as_ref().map(|(_, m)| m.as_str()))
            .collect();
        let row = sqlx::query(
            "WITH updated AS (\
               UPDATE inventory AS i SET stock_level = v.level, updated_at = now() \
               FROM UNNEST($1::text[], $2::int4[]) AS v(sku, level) \
               WHERE i.product_sku = v.sku RETURNING 1), \
             created AS (\
               INSERT INTO inventory (product_sku, stock_level) \
               SELECT sku, level FROM UNNEST($3::text[], $4::int4[]) WITH ORDINALITY \
                 AS v(sku, level, n) ORDER BY n \
               ON CONFLICT (product_sku) DO NOTHING RETURNING 1), \
             ledger AS (\
               INSERT INTO stock_movements (product_sku, operation, quantity, level_before, \
                 level_after, rules_name, rules_version, rules_digest, request_id, trace_id) \
               SELECT sku, op, qty, before, after, rn, rv, rd, req, tr \
               FROM UNNEST($5::text[], $6::text[], $7::int4[], $8::int4[], $9::int4[], \
                 $10::text[], $11::text[], $12::text[], $13::uuid[], $14::text[]) WITH ORDINALITY \
                 AS v(sku, op, qty, before, after, rn, rv, rd, req, tr, n) ORDER BY n), \
             events AS (\
               INSERT INTO outbox (msg_id, subject, payload, headers, request_id) \
               SELECT id, subject, payload, headers::jsonb, req \
               FROM UNNEST($15::uuid[], $16::text[], $17::text[], $18::text[], $19::uuid[]) \
                 WITH ORDINALITY AS v(id, subject, payload, headers, req, n) ORDER BY n), \
             replied AS (\
               UPDATE idempotency AS k \
               SET reply_body = v.body, error_code = v.code, error_message = v.message \
               FROM UNNEST($20::text[], $21::text[], $22::int4[], $23::text[]) \
                 AS v(key, body, code, message) \
               WHERE k.key = v.key), \
             released AS (DELETE FROM idempotency WHERE key = ANY($24::text[])) \
             SELECT (SELECT count(*) FROM updated), (SELECT count(*) FROM created)",
        )
        .bind(&updated_skus)
        .bind(&updated_levels)
        .bind(&created_skus)
        .bind(&created_levels)
        .bind(&m_skus)
        .bind(&m_ops)
        .bind(&m_quantities)
        .bind(&m_before)
        .bind(&m_after)
        .bind(&m_rules_names)
        .bind(&m_rules_versions)
        .bind(&m_rules_digests)
        .bind(&m_requests)
        .bind(&m_traces)
        .bind(&e_ids)
        .bind(&e_subjects)
        .bind(&e_payloads)
        .bind(&e_headers)
        .bind(&e_requests)
        .bind(&r_keys)
        .bind(&r_bodies)
        .bind(&r_codes)
        .bind(&r_messages)
        .bind(&writes.released)
        .fetch_one(&mut *self.tx)
        .instrument(statement("UPDATE", "inventory"))
        .await?;
        let (updated, inserted): (i64, i64) = (row.get(0), row.get(1));
        if usize::try_from(updated).ok() != Some(updated_skus.len()) {
            // A product this group locked vanished: a defect, not a race.
            return Err(StoreError::Failed(format!(
                "updated {updated} of {} products",
                updated_skus.len()
            )));
        }
        if usize::try_from(inserted).ok() != Some(created_skus.len()) {
            return Err(StoreError::Contended);
        }
        self.tx
            .commit()
            .instrument(statement("COMMIT", "inventory"))
            .await
            .map_err(commit_failure)
    }
}

/// Locks the rows of these products that no other transaction holds, in
/// one statement, and reports the levels of those it locked and which
/// exist but are held elsewhere (busy). Products in neither set do not
/// exist (yet).
async fn lock_unless_held(
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

fn split_levels(levels: &[(String, u32)]) -> Result<(Vec<&str>, Vec<i32>), StoreError> {
    let skus = levels.iter().map(|(s, _)| s.as_str()).collect();
    let values = levels
        .iter()
        .map(|(_, l)| to_db(*l))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((skus, values))
}

fn headers_json(headers: &[(String, String)]) -> String {
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

/// The URL with any password replaced, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_cut_off_is_unknown_and_a_refused_one_is_not() {
        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(
            commit_failure(sqlx::Error::Io(cut)),
            StoreError::CommitUnknown(_)
        ));
        assert!(matches!(
            commit_failure(sqlx::Error::PoolTimedOut),
            StoreError::CommitUnknown(_)
        ));
        assert!(matches!(
            commit_failure(sqlx::Error::Protocol("unexpected".into())),
            StoreError::Failed(_)
        ));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/beaker"),
            "postgres://app:***@db:5432/beaker"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/beaker"),
            "postgres://postgres@127.0.0.1:5432/beaker"
        );
        assert!(!redact_url("not a url with s3cret").contains("s3cret"));
    }
}
