//! Why a benchmark run could not go on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot connect to NATS at {url}: {message}")]
    NatsConnect { url: String, message: String },
    #[error("NATS: {0}")]
    Nats(String),
    #[error("database: {0}")]
    Database(#[from] beaker::store::StoreError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} exited before it was ready; see {}", log.display())]
    Exited { what: String, log: PathBuf },
    #[error("{0}")]
    Harness(String),
    #[error("{what} did not stop cleanly: {message}")]
    Stop { what: String, message: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metrics endpoint: {0}")]
    Metrics(String),
    #[error("rules swap: {0}")]
    Swap(String),
    #[error("bad setting {setting}: {message}")]
    Setting {
        setting: &'static str,
        message: String,
    },
}
