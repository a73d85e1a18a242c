//! Connecting to NATS with the configured authentication and TLS, and
//! following the connection afterwards: its state ([`Link`]) for the parts
//! that must react when it drops or comes back, and the permission
//! violations the server reports ([`refusals`]).

mod credentials;
pub mod link;
pub mod refusals;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event, ServerError};
use tokio::sync::watch;

use credentials::{
    Presented, UrlCredentials, is_tls_failure, url_credentials, workload_credentials,
};
pub use link::Link;
pub use refusals::{Refusals, confirm};

/// How to reach NATS, and as whom: resolved from the configuration (an
/// empty setting counts as not given). Its `Debug` never shows a secret.
#[derive(Clone, Default)]
pub struct NatsSettings {
    /// Server URL(s), comma-separated.
    pub servers: String,
    pub creds: Option<PathBuf>,
    pub nkey: Option<String>,
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_required: bool,
    /// A Synadia Cloud workload's JWT (base64) and nkey seed.
    pub workload_jwt: Option<String>,
    pub workload_nkey: Option<String>,
    /// How long to keep trying to reach a server at start.
    pub connect_timeout: Duration,
}

impl NatsSettings {
    /// Whether credentials other than the workload's were given; those win.
    pub fn has_own_credentials(&self) -> bool {
        self.creds.is_some()
            || self.nkey.is_some()
            || self.token.is_some()
            || self.user.as_deref().is_some_and(|u| !u.trim().is_empty())
    }
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let given = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("NatsSettings")
            .field("servers", &redact_nats_urls(&self.servers))
            .field("creds", &self.creds)
            .field("nkey", &given(&self.nkey))
            .field("token", &given(&self.token))
            .field("user", &self.user)
            .field("password", &given(&self.password))
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_required", &self.tls_required)
            .field("workload_jwt", &given(&self.workload_jwt))
            .field("workload_nkey", &given(&self.workload_nkey))
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// Why the connection could not be made, or what the server refused.
/// No variant carries a secret: a credential is named by the setting that
/// holds it, never shown.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot read NATS credentials file {path}: {source}")]
    Credentials {
        path: String,
        source: std::io::Error,
    },
    #[error("--nats-user and --nats-password must be given together")]
    UserWithoutPassword,
    #[error("--nats-tls-cert and --nats-tls-key must be given together")]
    CertWithoutKey,
    #[error("the Synadia Cloud workload credentials are unusable: {0}")]
    Workload(&'static str),
    #[error(
        "cannot authenticate to NATS at {url}: {reason}; it presented {presented}: check {settings}"
    )]
    Refused {
        url: String,
        reason: String,
        presented: String,
        settings: &'static str,
    },
    #[error(
        "TLS with NATS at {url} failed: {reason}; check NATS_TLS_CA (the CA that signed the \
         server's certificate) and, if the server asks for a client certificate, \
         NATS_TLS_CERT and NATS_TLS_KEY"
    )]
    Tls { url: String, reason: String },
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error(
        "NATS did not deliver a message this instance sent to its own inbox within {0:?}: \
         its user may lack permission to publish or subscribe to _INBOX.>"
    )]
    NoEcho(Duration),
    #[error(
        "the NATS server refused what the service needs: {}; give its NATS user the \
         permissions listed in docs/operations.md#nats-permissions",
        .0.join("; ")
    )]
    Forbidden(Vec<String>),
}

/// Who is told what happens to the connection.
#[derive(Debug, Clone, Default)]
pub struct Observers {
    /// Permission violations the server reports.
    pub refusals: Option<Arc<Refusals>>,
    /// The connection's [`Link`] state, for work that must react the moment
    /// the connection drops or comes back (the outbox relay, shutdown).
    pub link: Option<Arc<watch::Sender<Link>>>,
}

/// Connects, retrying with back-off for up to the connect timeout
/// (services often start in any order), then failing with a clear message.
/// Refused credentials and failed TLS are not retried: waiting does not
/// mend them. Connection events go to `observers`.
pub async fn connect(
    args: &NatsSettings,
    client_name: &str,
    observers: Observers,
) -> Result<Client, NatsError> {
    let deadline = Instant::now() + args.connect_timeout;
    let mut pause = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match connect_with(args, client_name, observers.clone()).await {
            Ok(client) => return Ok(client),
            Err(NatsError::Connect { url, reason }) if Instant::now() + pause < deadline => {
                if !warned {
                    tracing::warn!(%url, %reason, "NATS is not reachable yet; retrying");
                    warned = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One attempt, for the client commands: fails at once when NATS is not
/// there.
pub async fn connect_once(args: &NatsSettings, client_name: &str) -> Result<Client, NatsError> {
    connect_with(args, client_name, Observers::default()).await
}

async fn connect_with(
    args: &NatsSettings,
    client_name: &str,
    observers: Observers,
) -> Result<Client, NatsError> {
    let servers_text = args.servers.as_str();
    let mut options = ConnectOptions::new()
        .name(client_name)
        .connection_timeout(
            args.connect_timeout
                .clamp(Duration::from_millis(100), Duration::from_secs(5)),
        )
        .event_callback(move |event| {
            let observers = observers.clone();
            async move { on_event(event, &observers) }
        });
    let mut presented = Presented::Nothing;
    if let Some(path) = args.creds.as_ref() {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| NatsError::Credentials {
                    path: path.display().to_string(),
                    source,
                })?;
        presented = Presented::CredsFile(path.display().to_string());
    }
    if let Some(seed) = args.nkey.as_ref().filter(|s| !s.trim().is_empty()) {
        options = options.nkey(seed.trim().to_string());
        presented = Presented::Nkey;
    }
    if let Some(token) = args.token.as_ref().filter(|t| !t.is_empty()) {
        options = options.token(token.clone());
        presented = Presented::Token;
    }
    let url_credentials = url_credentials(servers_text);
    match (&args.user, &args.password) {
        (Some(user), Some(password)) => {
            options = options.user_and_password(user.clone(), password.clone());
            presented = Presented::UserPassword(user.clone());
        }
        (None, None) => match &url_credentials {
            // The NATS client ignores user info in server URLs; honour it
            // here, as other NATS clients do (`nats://user:pass@host`,
            // `nats://token@host`). Explicit options win.
            Some(UrlCredentials::UserPassword(user, password)) => {
                options = options.user_and_password(user.clone(), password.clone());
                presented = Presented::UrlUserPassword(user.clone());
            }
            Some(UrlCredentials::Token(token)) if args.token.is_none() => {
                options = options.token(token.clone());
                presented = Presented::UrlToken;
            }
            _ => {}
        },
        _ => return Err(NatsError::UserWithoutPassword),
    }
    // Synadia Cloud's workload variables, when nothing else says who we are.
    let workload_jwt = args
        .workload_jwt
        .as_deref()
        .filter(|v| !v.trim().is_empty());
    let workload_seed = args
        .workload_nkey
        .as_deref()
        .filter(|v| !v.trim().is_empty());
    if !args.has_own_credentials() && url_credentials.is_none() {
        match (workload_jwt, workload_seed) {
            (Some(jwt), Some(seed)) => {
                let text = workload_credentials(jwt, seed)?;
                options = options.credentials(&text).map_err(|_| {
                    NatsError::Workload(
                        "NEX_WORKLOAD_NATS_NKEY is not a valid nkey seed, or the JWT is malformed",
                    )
                })?;
                presented = Presented::Workload;
            }
            (None, None) => {}
            _ => {
                return Err(NatsError::Workload(
                    "NEX_WORKLOAD_NATS_B64_JWT and NEX_WORKLOAD_NATS_NKEY must be given together",
                ));
            }
        }
    }
    if let Some(ca) = &args.tls_ca {
        options = options.add_root_certificates(ca.clone());
    }
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => return Err(NatsError::CertWithoutKey),
    }
    if args.tls_required {
        options = options.require_tls(true);
    }
    let servers: Vec<&str> = servers_text.split(',').map(str::trim).collect();
    let url = redact_nats_urls(servers_text);
    options.connect(servers).await.map_err(|e| match e.kind() {
        kind @ (ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication) => {
            let (presented, settings) = presented.describe();
            let reason = match kind {
                ConnectErrorKind::AuthorizationViolation => {
                    "the server refused it (authorization violation)"
                }
                _ => "its key cannot sign the server's challenge (not a valid seed?)",
            };
            NatsError::Refused {
                url,
                reason: reason.to_string(),
                presented,
                settings,
            }
        }
        _ if is_tls_failure(&e) => NatsError::Tls {
            url,
            reason: e.to_string(),
        },
        _ => NatsError::Connect {
            url,
            reason: e.to_string(),
        },
    })
}

/// Logs connection events, keeps the [`Link`] state, and records
/// permission violations.
fn on_event(event: Event, observers: &Observers) {
    let refusals = observers.refusals.as_deref();
    let connected = |up: bool| {
        if let Some(link) = &observers.link {
            link.send_modify(|link| {
                link.up = up;
                if up {
                    link.connections += 1;
                }
            });
        }
    };
    match event {
        Event::Connected => {
            tracing::info!("NATS connection (re-)established");
            connected(true);
        }
        Event::Disconnected => {
            tracing::warn!("NATS connection lost; reconnecting");
            connected(false);
        }
        Event::ServerError(ServerError::Other(text))
            if text.to_lowercase().contains("permissions violation") =>
        {
            tracing::error!(
                refused = %text,
                "NATS refused an operation: the service's NATS user lacks a permission \
                 (docs/operations.md#nats-permissions lists them)"
            );
            if let Some(refusals) = refusals {
                refusals.record(text);
            }
        }
        Event::ServerError(e) => tracing::error!(error = %e, "NATS server error"),
        Event::ClientError(e) => tracing::error!(error = %e, "NATS client error"),
        Event::SlowConsumer(sid) => {
            tracing::warn!(subscription = sid, "NATS slow consumer: messages dropped")
        }
        other => tracing::info!(event = %other, "NATS event"),
    }
}

/// The server list with any user info in the URLs removed, for logs.
pub fn redact_nats_urls(urls: &str) -> String {
    urls.split(',')
        .map(|u| {
            let u = u.trim();
            match u.rsplit_once('@') {
                Some((scheme_and_user, host)) => match scheme_and_user.split_once("://") {
                    Some((scheme, _)) => format!("{scheme}://***@{host}"),
                    None => format!("***@{host}"),
                },
                None => u.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_used() {
        assert_eq!(
            url_credentials("nats://h0:4222, nats://alice:s3%40cret@h1:4222"),
            Some(UrlCredentials::UserPassword(
                "alice".into(),
                "s3@cret".into()
            ))
        );
        assert_eq!(
            url_credentials("tls://tok3n@h2:4222"),
            Some(UrlCredentials::Token("tok3n".into()))
        );
        assert_eq!(url_credentials("nats://127.0.0.1:4222"), None);
    }

    #[test]
    fn user_info_never_reaches_logs() {
        assert_eq!(
            redact_nats_urls("nats://alice:s3cret@h1:4222, tls://tok3n@h2:4222"),
            "nats://***@h1:4222,tls://***@h2:4222"
        );
        assert_eq!(
            redact_nats_urls("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
    }
}
