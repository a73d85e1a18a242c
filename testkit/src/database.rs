//! A fresh database per test on the shared Postgres, dropped when the test
//! ends, and what tests read from it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

/// The server that holds the test databases.
pub fn admin_url() -> String {
    std::env::var("BEAKER_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh database, dropped when the test ends.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn create() -> Result<Self> {
        let name = format!("beaker_test_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url())
            .await
            .context("cannot reach the test Postgres (set BEAKER_TEST_ADMIN_URL)")?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        admin.close().await;
        let base = admin_url();
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => bail!("admin URL {base} has no database part"),
        };
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await?;
        Ok(Self { name, url, pool })
    }

    /// A product's level, or None when it has no row.
    pub async fn level(&self, sku: &str) -> Result<Option<i32>> {
        Ok(
            sqlx::query_scalar("SELECT stock_level FROM inventory WHERE product_sku = $1")
                .bind(sku)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Locks a product's row from another session, as a long transaction
    /// would, until the returned transaction is dropped or ended.
    pub async fn lock_row(&self, sku: &str) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT stock_level FROM inventory WHERE product_sku = $1 FOR UPDATE")
            .bind(sku)
            .fetch_one(&mut *transaction)
            .await?;
        Ok(transaction)
    }

    /// Whether some statement of a `beaker` host waits for a row lock.
    pub async fn host_waits_for_a_lock(&self) -> Result<bool> {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'beaker' \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(waiting > 0)
    }

    /// Σ(level_after − level_before) over a product's ledger.
    pub async fn ledger_sum(&self, sku: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(SUM(level_after - level_before), 0)::bigint \
             FROM stock_movements WHERE product_sku = $1",
        )
        .bind(sku)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn count(&self, table: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop is synchronous; do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url())
                    .await
                {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

impl TestDb {
    /// Outbox rows not yet published.
    pub async fn pending_events(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Waits until every committed event has been published (the relay's
    /// readiness signal is the outbox itself), or fails after `timeout`.
    pub async fn wait_outbox_drained(&self, timeout: Duration) -> Result<()> {
        wait_outbox_drained(&self.pool, timeout).await
    }

    /// The msg_ids of every outbox row, published or not.
    pub async fn outbox_ids(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT msg_id::text FROM outbox ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// Waits until every committed event in the database behind `pool` has
/// been published, or fails after `timeout`.
pub async fn wait_outbox_drained(pool: &PgPool, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(pool)
                .await?;
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{pending} events still unpublished after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
