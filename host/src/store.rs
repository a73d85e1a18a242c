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
use sqlx::{ConnectOptions, Postgres, Row, Transaction};
use uuid::Uuid;

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
    /// Another request created the same product at the same moment; the
    /// change should be decided again against the row that now exists.
    #[error("the product was created concurrently")]
    Contended,
    /// Anything else: a defect, not a caller's mistake.
    #[error("database error: {0}")]
    Failed(String),
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
                // 57014 query_canceled (statement timeout), 57P0x shutdown,
                // 08xxx connection exceptions, 53xxx insufficient resources,
                // 40xxx serialization failure or deadlock.
                if code == "57014"
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
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))
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
            .await?;
        row.map(|r| level_from(r.get::<i32, _>(0))).transpose()
    }

    /// Starts a change: opens a transaction and locks the product's row.
    pub async fn begin_change(&self, sku: &str) -> Result<Change, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT stock_level FROM inventory WHERE product_sku = $1 FOR UPDATE")
                .bind(sku)
                .fetch_optional(&mut *tx)
                .await?;
        let current = row.map(|r| level_from(r.get::<i32, _>(0))).transpose()?;
        Ok(Change {
            tx,
            sku: sku.to_string(),
            current,
        })
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

/// A change in progress: the transaction holds the product's row lock.
/// Dropping it without [`Change::commit`] rolls back.
#[derive(Debug)]
pub struct Change {
    tx: Transaction<'static, Postgres>,
    sku: String,
    /// The level read under the lock; `None` if the product is new.
    pub current: Option<u32>,
}

impl Change {
    /// Writes the new level and its ledger row, and commits.
    pub async fn commit(mut self, movement: &Movement) -> Result<(), StoreError> {
        let write = match self.current {
            Some(_) => {
                "WITH moved AS (\
                   UPDATE inventory SET stock_level = $2, updated_at = now() \
                   WHERE product_sku = $1 RETURNING product_sku) \
                 INSERT INTO stock_movements (product_sku, operation, quantity, level_before, \
                   level_after, rules_name, rules_version, rules_digest, request_id, trace_id) \
                 SELECT product_sku, $3, $4, $5, $2, $6, $7, $8, $9, $10 FROM moved"
            }
            None => {
                "WITH created AS (\
                   INSERT INTO inventory (product_sku, stock_level) VALUES ($1, $2) \
                   ON CONFLICT (product_sku) DO NOTHING RETURNING product_sku) \
                 INSERT INTO stock_movements (product_sku, operation, quantity, level_before, \
                   level_after, rules_name, rules_version, rules_digest, request_id, trace_id) \
                 SELECT product_sku, $3, $4, $5, $2, $6, $7, $8, $9, $10 FROM created"
            }
        };
        let written = sqlx::query(write)
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
            .execute(&mut *self.tx)
            .await?;
        if written.rows_affected() != 1 {
            // Only the insert of a new product can write nothing: someone
            // else created it after our read. Roll back and decide again.
            return Err(StoreError::Contended);
        }
        self.tx.commit().await?;
        Ok(())
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
