//! Database settings.

use std::time::Duration;

use clap::Args;

use crate::store::DbConfig;

/// Which Postgres database, and how to use it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DbArgs {
    /// Postgres URL. The database is created if it does not exist.
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/beaker",
        hide_env_values = true
    )]
    pub url: String,
    /// Most connections the pool opens.
    #[arg(
        long = "db-max-connections",
        env = "BEAKER_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub max_connections: u32,
    /// How long a request waits for a free connection before it gets a 503, in milliseconds.
    #[arg(
        long = "db-acquire-timeout-ms",
        env = "BEAKER_DB_ACQUIRE_TIMEOUT_MS",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub acquire_timeout_ms: u64,
    /// The longest any statement may run, in milliseconds.
    #[arg(
        long = "db-statement-timeout-ms",
        env = "BEAKER_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub statement_timeout_ms: u64,
}

impl From<&DbArgs> for DbConfig {
    fn from(args: &DbArgs) -> Self {
        DbConfig {
            url: args.url.clone(),
            max_connections: args.max_connections,
            acquire_timeout: Duration::from_millis(args.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(args.statement_timeout_ms),
        }
    }
}

impl DbConfig {
    /// A one-off command's pool (`beaker ledger`): two connections and
    /// short bounds, enough for a query or two.
    pub fn for_client(url: String) -> Self {
        DbConfig {
            url,
            max_connections: 2,
            acquire_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
        }
    }
}
