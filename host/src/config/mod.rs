//! Configuration: environment first, with flags that mirror every variable
//! (`beaker <command> --help` documents both). This module and `cli` are
//! the only ones that know clap: each settings type is checked here, once,
//! into the plain settings the module that uses it defines, and a value
//! out of range stops the start with a message naming the variable.

mod db;
mod events;
mod gateway;
mod nats;
mod rules;
mod service;

use std::time::Duration;

use clap::{Args, ValueEnum};

pub use self::db::DbArgs;
pub use self::events::{EventsArgs, StreamStorage};
pub use self::gateway::{GatewayArgs, GatewayCommandArgs};
pub use self::nats::{DEFAULT_NATS_URL, NatsArgs};
pub use self::rules::{BucketReplicasArgs, DEFAULT_RULES_PATH, RulesArgs, SandboxArgs};
pub use self::service::{GroupCommitArgs, ServiceArgs, ShutdownArgs};
use crate::gateway::GatewayError;
use crate::observe::telemetry::LogFormat;
use crate::service::AdmissionSettings;
use crate::startup::{EventsSettings, GatewaySettings, ServeSettings, ServiceSettings};

/// A setting that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting} is {value:?}; it must be at least {min:?}")]
    TooShort {
        setting: &'static str,
        value: Duration,
        min: Duration,
    },
    #[error("{setting} is {value:?}; it must be at most {max:?}")]
    TooLong {
        setting: &'static str,
        value: Duration,
        max: Duration,
    },
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// `value`, if it is at least `min`.
fn at_least(
    setting: &'static str,
    value: Duration,
    min: Duration,
) -> Result<Duration, ConfigError> {
    match value >= min {
        true => Ok(value),
        false => Err(ConfigError::TooShort {
            setting,
            value,
            min,
        }),
    }
}

/// `value`, if it is at most `max`.
fn at_most(setting: &'static str, value: Duration, max: Duration) -> Result<Duration, ConfigError> {
    match value <= max {
        true => Ok(value),
        false => Err(ConfigError::TooLong {
            setting,
            value,
            max,
        }),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable on a terminal, JSON otherwise.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Auto => LogFormat::Auto,
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// Logging, shared by every command.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log format. The level is set with RUST_LOG (default `info`).
    #[arg(long = "log-format", env = "BEAKER_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Auto, global = true)]
    pub format: LogFormatArg,
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

impl TryFrom<&ServeArgs> for ServeSettings {
    type Error = ConfigError;

    fn try_from(args: &ServeArgs) -> Result<Self, ConfigError> {
        let service = &args.service;
        let events = EventsSettings::try_from(&args.events)?;
        Ok(ServeSettings {
            nats: (&args.nats).into(),
            db: (&args.db).into(),
            migrate: !service.skip_migrations,
            rules: args.rules.settings(service.max_in_flight)?,
            service: ServiceSettings {
                queue_group: service.queue_group.clone(),
                max_in_flight: service.max_in_flight,
                admission: AdmissionSettings {
                    max_in_flight: service.max_in_flight,
                    max_waiting: service.max_waiting,
                    max_wait: at_most(
                        "BEAKER_MAX_WAIT",
                        service.max_wait,
                        Duration::from_secs(60),
                    )?,
                },
                max_request_bytes: service.max_request_bytes as usize,
                idempotency_ttl: events.idempotency_ttl,
                group_commit: service.group_commit.settings(),
            },
            metrics_addr: Some(service.metrics_addr.trim().to_string()).filter(|a| !a.is_empty()),
            events,
            gateway: match args.gateway_enabled {
                true => Some(args.gateway.config(&args.rules.bucket)?),
                false => None,
            },
            shutdown_timeout: service.shutdown.timeout(),
        })
    }
}

impl TryFrom<&GatewayCommandArgs> for GatewaySettings {
    type Error = ConfigError;

    fn try_from(args: &GatewayCommandArgs) -> Result<Self, ConfigError> {
        Ok(GatewaySettings {
            nats: (&args.nats).into(),
            gateway: args.gateway.config(&args.rules_bucket)?,
            shutdown_timeout: args.shutdown.timeout(),
        })
    }
}
