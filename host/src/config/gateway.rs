//! The HTTP gateway's settings, for `beaker gateway` and `beaker serve
//! --gateway`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::nats::NatsArgs;
use super::service::ShutdownArgs;
use crate::gateway::auth::Tokens;
use crate::gateway::subject::AllowList;
use crate::gateway::{GatewayConfig, GatewayError};

/// Everything `beaker gateway` needs.
#[derive(Debug, Clone, Args)]
pub struct GatewayCommandArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// The rules bucket the console reads and operators change (`beaker
    /// serve --gateway` takes it from its own --rules-bucket).
    #[arg(
        long = "rules-bucket",
        env = "BEAKER_RULES_BUCKET",
        default_value = "beaker-rules",
        help_heading = "Gateway"
    )]
    pub rules_bucket: String,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
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
    /// Operator tokens, comma-separated: accepted everywhere a token is, and
    /// the only ones that may promote or roll back the rules
    /// (POST /v1/rules/promote, /v1/rules/rollback; the console's buttons).
    #[arg(
        long = "gateway-operator-tokens",
        env = "BEAKER_GATEWAY_OPERATOR_TOKENS",
        hide_env_values = true,
        value_name = "TOKENS"
    )]
    pub operator_tokens: Option<String>,
    /// File with one operator token per line (as --gateway-tokens-file).
    #[arg(
        long = "gateway-operator-tokens-file",
        env = "BEAKER_GATEWAY_OPERATOR_TOKENS_FILE",
        value_name = "FILE"
    )]
    pub operator_tokens_file: Option<PathBuf>,
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
        default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub timeout_ms: u64,
    /// The longest ?timeout= a caller may ask for, in milliseconds.
    #[arg(
        long = "gateway-max-timeout-ms",
        env = "BEAKER_GATEWAY_MAX_TIMEOUT_MS",
        default_value_t = 30000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_timeout_ms: u64,
    /// Interval of the keep-alive comments on event streams, in milliseconds (at least 100).
    #[arg(
        long = "gateway-heartbeat-ms",
        env = "BEAKER_GATEWAY_HEARTBEAT_MS",
        default_value_t = 30000,
        value_parser = clap::value_parser!(u64).range(100..)
    )]
    pub heartbeat_ms: u64,
    /// How long GET /v1/instances waits for every instance's discovery
    /// answer, in milliseconds.
    #[arg(
        long = "gateway-discovery-window-ms",
        env = "BEAKER_GATEWAY_DISCOVERY_WINDOW_MS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(10..=10_000)
    )]
    pub discovery_window_ms: u64,
}

impl GatewayArgs {
    /// The gateway's configuration, with the rules bucket it reads and
    /// changes (empty: none).
    pub fn config(&self, rules_bucket: &str) -> Result<GatewayConfig, GatewayError> {
        let mut config = GatewayConfig::try_from(self)?;
        config.rules_bucket = Some(rules_bucket.trim().to_string()).filter(|b| !b.is_empty());
        Ok(config)
    }
}

impl TryFrom<&GatewayArgs> for GatewayConfig {
    type Error = GatewayError;

    /// Resolves the tokens and subject lists; every mistake is reported
    /// here, before anything listens. A default timeout longer than the
    /// longest allowed is cut to it.
    fn try_from(args: &GatewayArgs) -> Result<Self, GatewayError> {
        let tokens = Tokens::load(args.tokens.as_deref(), args.tokens_file.as_deref())?;
        let operator_tokens = Tokens::load(
            args.operator_tokens.as_deref(),
            args.operator_tokens_file.as_deref(),
        )?;
        let list = |setting: &'static str, text: &str| {
            AllowList::parse(text).map_err(|(entry, reason)| GatewayError::Pattern {
                setting,
                entry,
                reason,
            })
        };
        let max_timeout = Duration::from_millis(args.max_timeout_ms);
        let config = GatewayConfig {
            addr: args.addr.clone(),
            tokens,
            operator_tokens,
            allow_anonymous: args.allow_anonymous,
            allow_publish: list("BEAKER_GATEWAY_ALLOW_PUBLISH", &args.allow_publish)?,
            allow_subscribe: list("BEAKER_GATEWAY_ALLOW_SUBSCRIBE", &args.allow_subscribe)?,
            max_body_bytes: args.max_body_bytes,
            default_timeout: Duration::from_millis(args.timeout_ms).min(max_timeout),
            max_timeout,
            heartbeat: Duration::from_millis(args.heartbeat_ms),
            service: crate::startup::SERVICE_NAME.to_string(),
            discovery_window: Duration::from_millis(args.discovery_window_ms),
            rules_bucket: None,
        };
        config.check_access()?;
        Ok(config)
    }
}
