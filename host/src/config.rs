//! Configuration: environment first, with flags that mirror every variable.
//! `beaker <command> --help` documents both.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::gateway::auth::Tokens;
use crate::gateway::subject::AllowList;
use crate::gateway::{GatewayConfig, GatewayError};
use crate::rules::{EngineOptions, SandboxLimits};
use crate::store::DbConfig;

/// Where the default rules component lands after `make build`.
pub const DEFAULT_RULES_PATH: &str = "target/wasm32-wasip2/release/beaker_rules.wasm";

/// How to reach NATS, and as whom.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "NATS")]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated [default: NEX_WORKLOAD_NATS_SERVERS
    /// if set, else nats://127.0.0.1:4222].
    #[arg(
        id = "nats_url",
        long = "nats-url",
        env = "NATS_URL",
        value_name = "URLS"
    )]
    pub url: Option<String>,
    /// Credentials file (JWT and nkey seed), as issued by an account operator.
    #[arg(long = "nats-creds", env = "NATS_CREDS", value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// Nkey seed (starts with `SU`) to authenticate with.
    #[arg(
        long = "nats-nkey",
        env = "NATS_NKEY",
        hide_env_values = true,
        value_name = "SEED"
    )]
    pub nkey: Option<String>,
    /// Token to authenticate with.
    #[arg(long = "nats-token", env = "NATS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// User name to authenticate with (with --nats-password).
    #[arg(long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// Password to authenticate with (with --nats-user).
    #[arg(long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// CA certificate (PEM) to verify the server's TLS certificate with.
    #[arg(long = "nats-tls-ca", env = "NATS_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (with --nats-tls-key).
    #[arg(long = "nats-tls-cert", env = "NATS_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS (with --nats-tls-cert).
    #[arg(long = "nats-tls-key", env = "NATS_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Refuse to connect without TLS.
    #[arg(long = "nats-tls-required", env = "NATS_TLS_REQUIRED")]
    pub tls_required: bool,
    /// Server URL(s) a Synadia Cloud workload is given; used when
    /// NATS_URL is not set.
    #[arg(
        long = "workload-nats-servers",
        env = "NEX_WORKLOAD_NATS_SERVERS",
        value_name = "URLS"
    )]
    pub workload_servers: Option<String>,
    /// The workload user's JWT, base64-encoded, as Synadia Cloud gives it;
    /// with NEX_WORKLOAD_NATS_NKEY it makes a credentials file in memory,
    /// used when no other NATS credentials are set.
    #[arg(
        long = "workload-nats-jwt",
        env = "NEX_WORKLOAD_NATS_B64_JWT",
        hide_env_values = true,
        value_name = "BASE64"
    )]
    pub workload_jwt: Option<String>,
    /// The workload user's nkey seed (with NEX_WORKLOAD_NATS_B64_JWT).
    #[arg(
        long = "workload-nats-nkey",
        env = "NEX_WORKLOAD_NATS_NKEY",
        hide_env_values = true,
        value_name = "SEED"
    )]
    pub workload_nkey: Option<String>,
    /// How long to wait for the NATS connection, in milliseconds.
    #[arg(
        long = "nats-connect-timeout-ms",
        env = "NATS_CONNECT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub connect_timeout_ms: u64,
}

/// Where NATS is when nothing says otherwise: a local server.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// A setting given as an empty string counts as not given, as in a shell
/// script's `NATS_URL=` or a compose file's `NATS_URL: ""`.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl NatsArgs {
    /// The server URL(s): NATS_URL, else the workload's servers, else the
    /// local default.
    pub fn servers(&self) -> &str {
        given(&self.url)
            .or_else(|| given(&self.workload_servers))
            .unwrap_or(DEFAULT_NATS_URL)
    }

    /// Whether credentials other than the workload's were given; those win.
    pub fn has_own_credentials(&self) -> bool {
        self.creds
            .as_ref()
            .is_some_and(|p| !p.as_os_str().is_empty())
            || given(&self.nkey).is_some()
            || given(&self.token).is_some()
            || given(&self.user).is_some()
    }
}

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
        default_value_t = 16
    )]
    pub max_connections: u32,
    /// How long a request waits for a free connection before it gets a 503, in milliseconds.
    #[arg(
        long = "db-acquire-timeout-ms",
        env = "BEAKER_DB_ACQUIRE_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub acquire_timeout_ms: u64,
    /// The longest any statement may run, in milliseconds.
    #[arg(
        long = "db-statement-timeout-ms",
        env = "BEAKER_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub statement_timeout_ms: u64,
}

impl DbArgs {
    pub fn config(&self) -> DbConfig {
        DbConfig {
            url: self.url.clone(),
            max_connections: self.max_connections.max(1),
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
        }
    }
}

/// The rules component and its sandbox.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rules")]
pub struct RulesArgs {
    /// Path to the rules component (.wasm).
    #[arg(long = "rules", env = "BEAKER_RULES", default_value = DEFAULT_RULES_PATH, value_name = "FILE")]
    pub path: PathBuf,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Swap to the rules file whenever it changes.
    #[arg(long = "rules-watch", env = "BEAKER_RULES_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,
    /// How often the rules file is checked for changes.
    #[arg(long = "rules-watch-interval", env = "BEAKER_RULES_WATCH_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub watch_interval: Duration,
    /// NATS Object Store bucket the rules are deployed through (empty: none).
    #[arg(
        long = "rules-bucket",
        env = "BEAKER_RULES_BUCKET",
        default_value = "beaker-rules"
    )]
    pub bucket: String,
}

impl RulesArgs {
    pub fn sandbox(&self, max_instances: u32) -> SandboxLimits {
        self.sandbox.limits(max_instances)
    }
}

/// The rules sandbox alone, for commands that run rules offline.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sandbox")]
pub struct SandboxArgs {
    /// Memory cap of one rules instance, in MiB.
    #[arg(
        long = "rules-memory-mib",
        env = "BEAKER_RULES_MEMORY_MIB",
        default_value_t = 8
    )]
    pub memory_mib: u32,
    /// Deadline of one rules call, in milliseconds.
    #[arg(
        long = "rules-deadline-ms",
        env = "BEAKER_RULES_DEADLINE_MS",
        default_value_t = 50
    )]
    pub deadline_ms: u64,
    /// Where compiled rules components are kept between runs, keyed by
    /// their content and the compiler's settings, so that a host starts
    /// and swaps without compiling a component it has seen (default
    /// $XDG_CACHE_HOME/beaker or ~/.cache/beaker; empty: no cache).
    #[arg(
        long = "rules-cache-dir",
        env = "BEAKER_RULES_CACHE_DIR",
        value_name = "DIR"
    )]
    pub cache_dir: Option<PathBuf>,
}

impl SandboxArgs {
    /// How the rules engine is built: the cache directory resolved.
    pub fn engine_options(&self) -> EngineOptions {
        let cache_dir = match &self.cache_dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(dir.clone()),
            None => std::env::var_os("XDG_CACHE_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .filter(|d| !d.is_empty())
                        .map(|home| PathBuf::from(home).join(".cache"))
                })
                .map(|base| base.join("beaker")),
        };
        EngineOptions {
            cache_dir,
            ..EngineOptions::default()
        }
    }

    pub fn limits(&self, max_instances: u32) -> SandboxLimits {
        SandboxLimits {
            max_memory_bytes: usize::try_from(self.memory_mib.max(1))
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
            deadline: Duration::from_millis(self.deadline_ms.max(1)),
            max_instances: max_instances.saturating_add(8),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging, shared by every command.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log format. The level is set with RUST_LOG (default `info`).
    #[arg(long = "log-format", env = "BEAKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub format: LogFormat,
}

/// Everything `beaker serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub events: EventsArgs,
    /// Also run the HTTP gateway (see `beaker gateway --help`) in this process.
    #[arg(long = "gateway", env = "BEAKER_GATEWAY", help_heading = "Gateway")]
    pub gateway_enabled: bool,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// Everything `beaker gateway` needs.
#[derive(Debug, Clone, Args)]
pub struct GatewayCommandArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
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

/// The HTTP gateway: NATS messaging over HTTP, shaped like the Synadia
/// Cloud HTTP Gateway.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Gateway")]
pub struct GatewayArgs {
    /// Address the gateway listens on (port 0: any free port, logged at start).
    #[arg(
        long = "gateway-addr",
        env = "BEAKER_GATEWAY_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: String,
    /// Tokens callers must present (Authorization: Bearer <token>), comma-separated.
    #[arg(
        long = "gateway-tokens",
        env = "BEAKER_GATEWAY_TOKENS",
        hide_env_values = true,
        value_name = "TOKENS"
    )]
    pub tokens: Option<String>,
    /// File with one token per line (blank lines and lines starting with # are ignored).
    #[arg(
        long = "gateway-tokens-file",
        env = "BEAKER_GATEWAY_TOKENS_FILE",
        value_name = "FILE"
    )]
    pub tokens_file: Option<PathBuf>,
    /// Serve callers without a token. Only when no tokens are configured;
    /// without tokens and without this flag the gateway refuses to start.
    #[arg(
        long = "gateway-allow-anonymous",
        env = "BEAKER_GATEWAY_ALLOW_ANONYMOUS"
    )]
    pub allow_anonymous: bool,
    /// Subjects callers may request on and publish to, comma-separated; NATS wildcards allowed.
    #[arg(
        long = "gateway-allow-publish",
        env = "BEAKER_GATEWAY_ALLOW_PUBLISH",
        default_value = "stock.*,$SRV.INFO.beaker",
        value_name = "SUBJECTS"
    )]
    pub allow_publish: String,
    /// Subjects callers may subscribe to (event streams), comma-separated; NATS wildcards allowed.
    #[arg(
        long = "gateway-allow-subscribe",
        env = "BEAKER_GATEWAY_ALLOW_SUBSCRIBE",
        default_value = "events.low_stock",
        value_name = "SUBJECTS"
    )]
    pub allow_subscribe: String,
    /// Largest request body accepted, in bytes; larger ones get a 413.
    #[arg(
        long = "gateway-max-body-bytes",
        env = "BEAKER_GATEWAY_MAX_BODY_BYTES",
        default_value_t = 1024 * 1024
    )]
    pub max_body_bytes: usize,
    /// How long a request waits for its reply when the caller gives no ?timeout=, in milliseconds.
    #[arg(
        long = "gateway-timeout-ms",
        env = "BEAKER_GATEWAY_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub timeout_ms: u64,
    /// The longest ?timeout= a caller may ask for, in milliseconds.
    #[arg(
        long = "gateway-max-timeout-ms",
        env = "BEAKER_GATEWAY_MAX_TIMEOUT_MS",
        default_value_t = 30000
    )]
    pub max_timeout_ms: u64,
    /// Interval of the keep-alive comments on event streams, in milliseconds.
    #[arg(
        long = "gateway-heartbeat-ms",
        env = "BEAKER_GATEWAY_HEARTBEAT_MS",
        default_value_t = 30000
    )]
    pub heartbeat_ms: u64,
}

impl GatewayArgs {
    /// Resolves the tokens and subject lists; every mistake is reported here,
    /// before anything listens.
    pub fn config(&self) -> Result<GatewayConfig, GatewayError> {
        let tokens = Tokens::load(self.tokens.as_deref(), self.tokens_file.as_deref())?;
        let list = |setting: &'static str, text: &str| {
            AllowList::parse(text).map_err(|(entry, reason)| GatewayError::Pattern {
                setting,
                entry,
                reason,
            })
        };
        let max_timeout = Duration::from_millis(self.max_timeout_ms.max(1));
        let config = GatewayConfig {
            addr: self.addr.clone(),
            tokens,
            allow_anonymous: self.allow_anonymous,
            allow_publish: list("BEAKER_GATEWAY_ALLOW_PUBLISH", &self.allow_publish)?,
            allow_subscribe: list("BEAKER_GATEWAY_ALLOW_SUBSCRIBE", &self.allow_subscribe)?,
            max_body_bytes: self.max_body_bytes,
            default_timeout: Duration::from_millis(self.timeout_ms.max(1)).min(max_timeout),
            max_timeout,
            heartbeat: Duration::from_millis(self.heartbeat_ms.max(100)),
        };
        config.check_access()?;
        Ok(config)
    }
}

/// Storage of the events stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamStorage {
    File,
    Memory,
}

/// The events stream and the outbox relay.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Events")]
pub struct EventsArgs {
    /// Name of the JetStream stream that keeps events (created or updated at start).
    #[arg(
        long = "events-stream",
        env = "BEAKER_EVENTS_STREAM",
        default_value = "BEAKER_EVENTS"
    )]
    pub stream: String,
    /// Subjects the stream captures, comma-separated.
    #[arg(
        long = "events-subjects",
        env = "BEAKER_EVENTS_SUBJECTS",
        default_value = "events.>",
        value_delimiter = ','
    )]
    pub subjects: Vec<String>,
    /// Stream storage.
    #[arg(long = "events-storage", env = "BEAKER_EVENTS_STORAGE", value_enum, default_value_t = StreamStorage::File)]
    pub storage: StreamStorage,
    /// How long the stream keeps an event (e.g. 7d, 12h).
    #[arg(long = "events-max-age", env = "BEAKER_EVENTS_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub max_age: Duration,
    /// Largest size of the stream in bytes; -1 for no limit (oldest events go first).
    #[arg(long = "events-max-bytes", env = "BEAKER_EVENTS_MAX_BYTES", default_value_t = -1, allow_negative_numbers = true)]
    pub max_bytes: i64,
    /// Window in which JetStream drops a second copy of an event (same Nats-Msg-Id).
    #[arg(long = "events-duplicate-window", env = "BEAKER_EVENTS_DUPLICATE_WINDOW", default_value = "2h", value_parser = humantime::parse_duration)]
    pub duplicate_window: Duration,
    /// Stream replicas (1 on a single server; 3 on a cluster).
    #[arg(
        long = "events-replicas",
        env = "BEAKER_EVENTS_REPLICAS",
        default_value_t = 1
    )]
    pub replicas: usize,
    /// Run the outbox relay in this instance (turn off to run relays elsewhere).
    #[arg(long = "outbox-relay", env = "BEAKER_OUTBOX_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub relay: bool,
    /// How often the relay looks for events it was not woken for.
    #[arg(long = "outbox-poll-interval", env = "BEAKER_OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// The longest one relay round (claim, publish, acknowledgements,
    /// marking) may take; past it the round is abandoned, its events
    /// released, and it is retried.
    #[arg(long = "outbox-round-timeout", env = "BEAKER_OUTBOX_ROUND_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub round_timeout: Duration,
    /// A relay connected to NATS that has published nothing for this long
    /// while events wait is reported as stalled (a warning, the metric
    /// beaker_outbox_relay_stalled, /readyz).
    #[arg(long = "outbox-stall-after", env = "BEAKER_OUTBOX_STALL_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub stall_after: Duration,
    /// Events the relay claims and publishes per round.
    #[arg(
        long = "outbox-batch-size",
        env = "BEAKER_OUTBOX_BATCH_SIZE",
        default_value_t = 256
    )]
    pub batch_size: u32,
    /// How long published events stay in the outbox table.
    #[arg(long = "outbox-retention", env = "BEAKER_OUTBOX_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// How long a reply stays stored under its idempotency key (Nats-Msg-Id).
    #[arg(long = "idempotency-ttl", env = "BEAKER_IDEMPOTENCY_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_ttl: Duration,
    /// How often expired idempotency keys and old outbox rows are deleted.
    #[arg(long = "housekeeping-interval", env = "BEAKER_HOUSEKEEPING_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub housekeeping_interval: Duration,
}

/// How the service takes requests.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Service")]
pub struct ServiceArgs {
    /// NATS queue group the endpoints join; instances in one group share the load.
    #[arg(long = "queue-group", env = "BEAKER_QUEUE_GROUP", default_value = "q")]
    pub queue_group: String,
    /// Requests processed at once; more get an immediate 503 rather than waiting in a queue.
    #[arg(
        long = "max-in-flight",
        env = "BEAKER_MAX_IN_FLIGHT",
        default_value_t = 256
    )]
    pub max_in_flight: u32,
    /// Largest request body accepted, in bytes.
    #[arg(
        long = "max-request-bytes",
        env = "BEAKER_MAX_REQUEST_BYTES",
        default_value_t = 16384
    )]
    pub max_request_bytes: usize,
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
    pub fn settings(&self) -> Option<crate::service::GroupCommitSettings> {
        self.enabled.then(|| crate::service::GroupCommitSettings {
            max_size: self.max_size as usize,
            max_wait: Duration::from_micros(self.wait_us),
            workers: self.workers as usize,
        })
    }
}
