//! Connecting to NATS with the configured authentication and TLS, and
//! noticing what the server refuses once connected.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event, ServerError};
use base64::Engine;
use futures::StreamExt;
use percent_encoding::percent_decode_str;
use tokio::sync::{Notify, watch};

use crate::config::NatsArgs;
use crate::metrics::Metrics;

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
         permissions the README lists under \"NATS permissions\"",
        .0.join("; ")
    )]
    Forbidden(Vec<String>),
}

/// The permission violations the server reported on one connection.
///
/// The server answers a refused subscription or publication with an
/// asynchronous `-ERR`, not with an error of the call that caused it, so
/// a missing permission would otherwise only show as a service that never
/// receives requests, or as requests that time out.
#[derive(Debug, Default)]
pub struct Refusals {
    seen: Mutex<Vec<String>>,
    arrived: Notify,
}

impl Refusals {
    /// Every refusal so far, as the server worded it.
    pub fn all(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }

    fn record(&self, what: String) {
        if let Ok(mut seen) = self.seen.lock()
            && !seen.contains(&what)
        {
            seen.push(what);
        }
        self.arrived.notify_waiters();
    }
}

/// How long the event callback gets to hand over a refusal the server
/// reported before a round trip completed. The refusal is already queued
/// for the callback, which runs as a task of its own; this bounds the wait
/// for that task to be scheduled.
const REFUSAL_HANDOVER: Duration = Duration::from_millis(50);

/// Makes sure the server has taken every subscription and publication made
/// so far on `client`, and fails with what it refused. A message sent to
/// the client's own inbox comes back only after the server has answered
/// everything sent before it, refusals included.
pub async fn confirm(
    client: &Client,
    refusals: &Refusals,
    timeout: Duration,
) -> Result<(), NatsError> {
    let inbox = client.new_inbox();
    let lost = |e: &dyn std::fmt::Display| NatsError::Connect {
        url: "the connected server".to_string(),
        reason: e.to_string(),
    };
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| lost(&e))?;
    client
        .publish(inbox, bytes::Bytes::new())
        .await
        .map_err(|e| lost(&e))?;
    client.flush().await.map_err(|e| lost(&e))?;
    let returned = tokio::time::timeout(timeout, echo.next()).await;
    let _ = echo.unsubscribe().await;
    // Wait for the first refusal, then for the callback to hand over the
    // others the server reported with it.
    let mut wait = match refusals.all().is_empty() {
        true => REFUSAL_HANDOVER,
        false => REFUSAL_HANDOVER / 5,
    };
    while tokio::time::timeout(wait, refusals.arrived.notified())
        .await
        .is_ok()
    {
        wait = REFUSAL_HANDOVER / 5;
    }
    let refused = refusals.all();
    if !refused.is_empty() {
        return Err(NatsError::Forbidden(refused));
    }
    match returned {
        Ok(Some(_)) => Ok(()),
        _ => Err(NatsError::NoEcho(timeout)),
    }
}

/// The state of the NATS connection, as the client's events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    /// Whether the connection is up.
    pub up: bool,
    /// Connections made so far: a change means a new connection, on which
    /// nothing sent on the old one will be answered.
    pub connections: u64,
}

/// Who is told what happens to the connection.
#[derive(Debug, Clone, Default)]
pub struct Observers {
    /// The connection metrics.
    pub metrics: Option<Arc<Metrics>>,
    /// Permission violations the server reports.
    pub refusals: Option<Arc<Refusals>>,
    /// The connection's [`Link`] state, for work that must react the moment
    /// the connection drops or comes back (the outbox relay, shutdown).
    pub link: Option<Arc<watch::Sender<Link>>>,
}

/// Connects, retrying with back-off for up to `--nats-connect-timeout-ms`
/// (services often start in any order), then failing with a clear message.
/// Refused credentials and failed TLS are not retried: waiting does not
/// mend them. Connection events go to `observers`.
pub async fn connect(
    args: &NatsArgs,
    client_name: &str,
    observers: Observers,
) -> Result<Client, NatsError> {
    let deadline = Instant::now() + Duration::from_millis(args.connect_timeout_ms);
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
pub async fn connect_once(args: &NatsArgs, client_name: &str) -> Result<Client, NatsError> {
    connect_with(args, client_name, Observers::default()).await
}

/// The credentials a connection presents, for messages that must say which
/// ones were refused without showing them.
#[derive(Debug)]
enum Presented {
    CredsFile(String),
    Workload,
    Nkey,
    Token,
    UserPassword(String),
    UrlUserPassword(String),
    UrlToken,
    Nothing,
}

impl Presented {
    fn describe(&self) -> (String, &'static str) {
        match self {
            Self::CredsFile(path) => (
                format!("the credentials file {path}"),
                "NATS_CREDS (is its user signed by an account the server trusts?)",
            ),
            Self::Workload => (
                "the workload's JWT and nkey seed".to_string(),
                "NEX_WORKLOAD_NATS_B64_JWT and NEX_WORKLOAD_NATS_NKEY",
            ),
            Self::Nkey => ("an nkey seed".to_string(), "NATS_NKEY"),
            Self::Token => ("a token".to_string(), "NATS_TOKEN"),
            Self::UserPassword(user) => (
                format!("user {user} with a password"),
                "NATS_USER and NATS_PASSWORD",
            ),
            Self::UrlUserPassword(user) => (
                format!("user {user} with the password in the server URL"),
                "the user and password in NATS_URL",
            ),
            Self::UrlToken => (
                "the token in the server URL".to_string(),
                "the token in NATS_URL",
            ),
            Self::Nothing => (
                "no credentials".to_string(),
                "NATS_CREDS, NATS_NKEY, NATS_TOKEN, or NATS_USER and NATS_PASSWORD",
            ),
        }
    }
}

/// A credentials file's text made of a workload's JWT (base64-encoded, as
/// Synadia Cloud passes it; a bare JWT is taken as it is) and seed.
fn workload_credentials(b64_jwt: &str, seed: &str) -> Result<String, NatsError> {
    let packed: String = b64_jwt.chars().filter(|c| !c.is_whitespace()).collect();
    let looks_like_jwt = |text: &str| text.starts_with("eyJ") && text.split('.').count() == 3;
    let jwt = if looks_like_jwt(&packed) {
        packed
    } else {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(&packed).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|text| text.trim().to_string())
            .filter(|text| looks_like_jwt(text))
            .ok_or(NatsError::Workload(
                "NEX_WORKLOAD_NATS_B64_JWT is not a base64-encoded JWT",
            ))?
    };
    let seed = seed.trim();
    if !seed.starts_with("SU") {
        return Err(NatsError::Workload(
            "NEX_WORKLOAD_NATS_NKEY is not a user nkey seed (one starts with SU)",
        ));
    }
    Ok(format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    ))
}

/// Whether a failed connection failed in TLS: rustls reports a refused
/// certificate as an I/O error of the handshake or of the first read.
fn is_tls_failure(error: &async_nats::ConnectError) -> bool {
    if error.kind() == ConnectErrorKind::Tls {
        return true;
    }
    let text = error.to_string().to_lowercase();
    ["certificate", "fatal alert", "handshake"]
        .iter()
        .any(|word| text.contains(word))
}

async fn connect_with(
    args: &NatsArgs,
    client_name: &str,
    observers: Observers,
) -> Result<Client, NatsError> {
    let connections = Arc::new(AtomicU64::new(0));
    let servers_text = args.servers();
    let mut options = ConnectOptions::new()
        .name(client_name)
        .connection_timeout(Duration::from_millis(
            args.connect_timeout_ms.clamp(100, 5000),
        ))
        .event_callback(move |event| {
            let observers = observers.clone();
            let connections = connections.clone();
            async move { on_event(event, &observers, &connections) }
        });
    let mut presented = Presented::Nothing;
    if let Some(path) = args.creds.as_ref().filter(|p| !p.as_os_str().is_empty()) {
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

/// Credentials written into a server URL.
#[derive(Debug, PartialEq, Eq)]
enum UrlCredentials {
    UserPassword(String, String),
    Token(String),
}

/// The user info of the first server URL that has one, percent-decoded.
fn url_credentials(urls: &str) -> Option<UrlCredentials> {
    let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
    urls.split(',').find_map(|u| {
        let parsed = url::Url::parse(u.trim()).ok()?;
        let user = parsed.username();
        if user.is_empty() {
            return None;
        }
        Some(match parsed.password() {
            Some(password) => UrlCredentials::UserPassword(decode(user), decode(password)),
            None => UrlCredentials::Token(decode(user)),
        })
    })
}

/// Logs connection events, keeps the connection metrics, and records
/// permission violations.
fn on_event(event: Event, observers: &Observers, connections: &AtomicU64) {
    let metrics = observers.metrics.as_deref();
    let refusals = observers.refusals.as_deref();
    let connected = |up: bool| {
        if let Some(m) = metrics {
            m.gauges
                .nats_connected
                .store(u64::from(up), Ordering::Relaxed);
        }
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
            if connections.fetch_add(1, Ordering::Relaxed) > 0
                && let Some(m) = metrics
            {
                m.nats_reconnects.add(1, &[]);
            }
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
                 (the README lists them under \"NATS permissions\")"
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

    const JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVIn0.c2ln";
    const SEED: &str = "SUAIO3FHUX5PNV2LQIIP7TZ3N4L7TX3W53MQGEIVYFIGA635OZCKEYHFLM";

    #[test]
    fn workload_jwt_is_taken_base64_encoded_in_any_alphabet_or_bare() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        for given in [
            STANDARD.encode(JWT),
            STANDARD.encode(format!("{JWT}\n")),
            URL_SAFE_NO_PAD.encode(JWT),
            JWT.to_string(),
        ] {
            let text = workload_credentials(&given, SEED).expect("accepted");
            assert!(text.contains(&format!("\n{JWT}\n")), "{given}: {text}");
            assert!(text.contains(&format!("\n{SEED}\n")), "{given}: {text}");
            assert!(ConnectOptions::with_credentials(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn unusable_workload_credentials_are_refused_without_showing_them() {
        for (jwt, seed) in [("not base64!", SEED), (JWT, "SAAnot-a-user-seed")] {
            let error = workload_credentials(jwt, seed)
                .expect_err("refused")
                .to_string();
            assert!(error.contains("NEX_WORKLOAD_NATS_"), "{error}");
            assert!(!error.contains(seed) && !error.contains(jwt), "{error}");
        }
    }
}
