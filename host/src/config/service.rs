//! How the service takes requests, and how it stops.

use std::time::Duration;

use clap::Args;

use crate::inventory::GroupCommitSettings;

/// How the service takes requests.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Service")]
pub struct ServiceArgs {
    /// NATS queue group the endpoints join; instances in one group share the load.
    #[arg(long = "queue-group", env = "BEAKER_QUEUE_GROUP", default_value = "q")]
    pub queue_group: String,
    /// Requests processed at once; more wait for a slot (see --max-wait and
    /// --max-waiting).
    #[arg(
        long = "max-in-flight",
        env = "BEAKER_MAX_IN_FLIGHT",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=65_536)
    )]
    pub max_in_flight: u32,
    /// Requests waiting for a slot at once; beyond, an immediate 503 (0: no
    /// waiting at all).
    #[arg(
        long = "max-waiting",
        env = "BEAKER_MAX_WAITING",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u32).range(0..=1_048_576)
    )]
    pub max_waiting: u32,
    /// Longest a request waits for a slot before its 503; a caller's
    /// Beaker-Timeout-Ms header shortens it.
    #[arg(
        long = "max-wait",
        env = "BEAKER_MAX_WAIT",
        default_value = "2s",
        value_parser = humantime::parse_duration
    )]
    pub max_wait: Duration,
    /// Largest request body accepted, in bytes.
    #[arg(
        long = "max-request-bytes",
        env = "BEAKER_MAX_REQUEST_BYTES",
        default_value_t = 16384,
        value_parser = clap::value_parser!(u32).range(1..=16_777_216)
    )]
    pub max_request_bytes: u32,
    /// Address of the metrics and health endpoint (/metrics, /healthz, /readyz); empty: none.
    #[arg(
        long = "metrics-addr",
        env = "BEAKER_METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_addr: String,
    /// Do not run database migrations at start.
    #[arg(long = "skip-migrations", env = "BEAKER_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    #[command(flatten)]
    pub group_commit: GroupCommitArgs,
}

/// Group commit: adds and removes in flight together share one transaction.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Group commit")]
pub struct GroupCommitArgs {
    /// Apply the adds and removes in flight at one moment in one
    /// transaction (one commit for many requests); false: one transaction
    /// per request.
    #[arg(
        long = "group-commit",
        env = "BEAKER_GROUP_COMMIT",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub enabled: bool,
    /// Most requests in one group.
    #[arg(
        long = "group-commit-max",
        env = "BEAKER_GROUP_COMMIT_MAX",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=1024)
    )]
    pub max_size: u32,
    /// How long a group waits for more requests once it has one, in
    /// microseconds (below 1000); 0 takes what is waiting.
    #[arg(
        long = "group-commit-wait-us",
        env = "BEAKER_GROUP_COMMIT_WAIT_US",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..1000)
    )]
    pub wait_us: u64,
    /// Groups applied at once, each on a database connection of its own;
    /// each product belongs to one of them.
    #[arg(
        long = "group-commit-workers",
        env = "BEAKER_GROUP_COMMIT_WORKERS",
        default_value_t = 2,
        value_parser = clap::value_parser!(u32).range(1..=64)
    )]
    pub workers: u32,
}

impl GroupCommitArgs {
    /// The settings, or `None` when group commit is off.
    pub fn settings(&self) -> Option<GroupCommitSettings> {
        self.enabled.then(|| GroupCommitSettings {
            max_size: self.max_size as usize,
            max_wait: Duration::from_micros(self.wait_us),
            workers: self.workers as usize,
        })
    }
}

/// How long a stop may take.
#[derive(Debug, Clone, Args)]
pub struct ShutdownArgs {
    /// On SIGTERM or SIGINT, how long the whole stop may take: answering
    /// the requests in flight, publishing the last events, closing the
    /// connections. Past it the process logs what it abandoned and exits
    /// with status 1. Keep it under the orchestrator's grace period.
    #[arg(
        id = "shutdown_timeout",
        long = "shutdown-timeout",
        env = "BEAKER_SHUTDOWN_TIMEOUT",
        default_value = "10s",
        value_parser = humantime::parse_duration
    )]
    pub timeout: Duration,
    /// The same in milliseconds (the earlier name, still honoured).
    #[arg(
        id = "shutdown_timeout_ms",
        long = "shutdown-timeout-ms",
        env = "BEAKER_SHUTDOWN_TIMEOUT_MS",
        hide = true
    )]
    pub timeout_ms: Option<u64>,
}

impl ShutdownArgs {
    /// The deadline of a stop; the earlier millisecond setting wins when
    /// it is given, with a warning that names the new one.
    pub fn timeout(&self) -> Duration {
        match self.timeout_ms {
            Some(ms) => {
                tracing::warn!(
                    "BEAKER_SHUTDOWN_TIMEOUT_MS (--shutdown-timeout-ms) is deprecated: \
                     use BEAKER_SHUTDOWN_TIMEOUT (--shutdown-timeout), e.g. 10s"
                );
                Duration::from_millis(ms)
            }
            None => self.timeout,
        }
    }
}
