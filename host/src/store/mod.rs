//! Postgres: stock levels, the ledger, the outbox and idempotency keys.
//!
//! A change reads the product's row `FOR UPDATE` (so concurrent changes to
//! one product queue up behind each other), lets the caller ask the rules,
//! then writes the new level and its ledger row in a single statement and
//! commits. Stock can never go below zero: the rules refuse it, the host
//! checks the decision, and the table's CHECK constraint is the last word.
//!
//! - [`error`]: what a failure means for the caller (SQLSTATE mapping);
//! - [`change`]: one request's transaction;
//! - [`group`]: a group commit's transaction;
//! - [`idempotency`]: keys and the replies stored under them;
//! - [`outbox`]: the relay's claims, the backlog, housekeeping;
//! - [`ledger`]: a product's history;
//! - [`replay`]: recorded history read back for `beaker rules replay`.

pub mod change;
pub mod error;
pub mod group;
pub mod idempotency;
pub mod ledger;
pub mod outbox;
pub mod replay;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres, Row};
use tracing::Instrument;

pub use change::Locked;
pub use change::{Begun, Change, Movement, RowLock, RulesStamp};
pub use error::StoreError;
pub use group::{Group, GroupMovement, GroupWrites};
pub use idempotency::{IdempotencyKey, KeyStatus, StoredReply};
pub use ledger::LedgerRow;
pub use outbox::{OutboxBatch, OutboxEvent, PendingEvent};
pub use replay::{RecordedEvents, RecordedMovement};

/// A span for one statement, named as the OpenTelemetry database
/// conventions ask: `{operation} {table}`.
pub(crate) fn statement(operation: &'static str, table: &'static str) -> tracing::Span {
    tracing::debug_span!(
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

/// How many connections the pool holds, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub used: u64,
    pub idle: u64,
    pub max: u64,
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

    /// Whether the database answers now, within `within`.
    pub async fn ping(&self, within: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(within, sqlx::query("SELECT 1").execute(&self.pool)).await {
            Ok(done) => done.map(|_| ()).map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                within.as_millis()
            ))),
        }
    }

    /// The pool's connections: in use, idle, and the most it opens.
    pub fn pool_stats(&self) -> PoolStats {
        let size = u64::from(self.pool.size());
        let idle = u64::try_from(self.pool.num_idle()).unwrap_or(0);
        PoolStats {
            used: size.saturating_sub(idle),
            idle,
            max: u64::from(self.pool.options().get_max_connections()),
        }
    }

    /// Opens `count` connections now (up to the pool's size), so that a
    /// measurement that follows does not pay for opening them.
    pub async fn open_connections(&self, count: usize) -> Result<(), StoreError> {
        let mut held = Vec::with_capacity(count);
        for _ in 0..count {
            held.push(self.pool.acquire().await?);
        }
        Ok(())
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

    /// The levels of those of `skus` ever stocked, in one statement.
    pub async fn levels(&self, skus: &[&str]) -> Result<HashMap<String, u32>, StoreError> {
        let rows = sqlx::query(
            "SELECT product_sku, stock_level FROM inventory WHERE product_sku = ANY($1)",
        )
        .bind(skus)
        .fetch_all(&self.pool)
        .instrument(statement("SELECT", "inventory"))
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.get::<String, _>(0), level_from(r.get::<i32, _>(1))?)))
            .collect()
    }
}

/// Commits a change's transaction. A COMMIT the database refused rolled
/// back; one whose connection broke may or may not have applied.
async fn commit(tx: sqlx::Transaction<'static, Postgres>) -> Result<(), StoreError> {
    tx.commit()
        .instrument(statement("COMMIT", "inventory"))
        .await
        .map_err(error::commit_failure)
}

pub(crate) fn level_from(value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Failed(format!("negative stock level {value}")))
}

pub(crate) fn to_db(value: u32) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::Failed(format!("value {value} exceeds int4")))
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
