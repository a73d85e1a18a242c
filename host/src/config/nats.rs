//! NATS settings: where the servers are and how to authenticate.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::nats::NatsSettings;

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
fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl NatsArgs {
    /// The server URL(s): NATS_URL, else the workload's servers, else the
    /// local default.
    pub fn servers(&self) -> String {
        given(&self.url)
            .or_else(|| given(&self.workload_servers))
            .unwrap_or_else(|| DEFAULT_NATS_URL.to_string())
    }
}

impl From<&NatsArgs> for NatsSettings {
    fn from(args: &NatsArgs) -> Self {
        let path = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        NatsSettings {
            servers: args.servers(),
            creds: path(&args.creds),
            nkey: given(&args.nkey),
            // A token is taken as given (it may legitimately hold spaces
            // at its ends only by mistake, which the server will say).
            token: args.token.clone().filter(|t| !t.is_empty()),
            user: args.user.clone(),
            password: args.password.clone(),
            tls_ca: path(&args.tls_ca),
            tls_cert: path(&args.tls_cert),
            tls_key: path(&args.tls_key),
            tls_required: args.tls_required,
            workload_jwt: given(&args.workload_jwt),
            workload_nkey: given(&args.workload_nkey),
            connect_timeout: Duration::from_millis(args.connect_timeout_ms),
        }
    }
}
