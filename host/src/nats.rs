//! Connecting to NATS with the configured authentication and TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event};
use percent_encoding::percent_decode_str;

use crate::config::NatsArgs;
use crate::metrics::Metrics;

/// Why the connection could not be made.
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
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// Connects, retrying with back-off for up to `--nats-connect-timeout-ms`
/// (services often start in any order), then failing with a clear message.
pub async fn connect(
    args: &NatsArgs,
    client_name: &str,
    metrics: Option<Arc<Metrics>>,
) -> Result<Client, NatsError> {
    let deadline = Instant::now() + Duration::from_millis(args.connect_timeout_ms);
    let mut pause = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match connect_with(args, client_name, metrics.clone()).await {
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
    connect_with(args, client_name, None).await
}

async fn connect_with(
    args: &NatsArgs,
    client_name: &str,
    metrics: Option<Arc<Metrics>>,
) -> Result<Client, NatsError> {
    let connections = Arc::new(AtomicU64::new(0));
    let mut options = ConnectOptions::new()
        .name(client_name)
        .connection_timeout(Duration::from_millis(
            args.connect_timeout_ms.clamp(100, 5000),
        ))
        .event_callback(move |event| {
            let metrics = metrics.clone();
            let connections = connections.clone();
            async move { on_event(event, metrics.as_deref(), &connections) }
        });
    if let Some(path) = &args.creds {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| NatsError::Credentials {
                    path: path.display().to_string(),
                    source,
                })?;
    }
    if let Some(seed) = &args.nkey {
        options = options.nkey(seed.clone());
    }
    if let Some(token) = &args.token {
        options = options.token(token.clone());
    }
    match (&args.user, &args.password) {
        (Some(user), Some(password)) => {
            options = options.user_and_password(user.clone(), password.clone());
        }
        (None, None) => match url_credentials(&args.url) {
            // The NATS client ignores user info in server URLs; honour it
            // here, as other NATS clients do (`nats://user:pass@host`,
            // `nats://token@host`). Explicit options win.
            Some(UrlCredentials::UserPassword(user, password)) => {
                options = options.user_and_password(user, password);
            }
            Some(UrlCredentials::Token(token)) if args.token.is_none() => {
                options = options.token(token);
            }
            _ => {}
        },
        _ => return Err(NatsError::UserWithoutPassword),
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
    let servers: Vec<&str> = args.url.split(',').map(str::trim).collect();
    let redacted = redact_nats_urls(&args.url);
    options
        .connect(servers)
        .await
        .map_err(|e| NatsError::Connect {
            url: redacted,
            reason: e.to_string(),
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

/// Logs connection events and keeps the connection metrics.
fn on_event(event: Event, metrics: Option<&Metrics>, connections: &AtomicU64) {
    let connected = |up: u64| {
        if let Some(m) = metrics {
            m.gauges.nats_connected.store(up, Ordering::Relaxed);
        }
    };
    match event {
        Event::Connected => {
            connected(1);
            if connections.fetch_add(1, Ordering::Relaxed) > 0
                && let Some(m) = metrics
            {
                m.nats_reconnects.add(1, &[]);
            }
            tracing::info!("NATS connection (re-)established")
        }
        Event::Disconnected => {
            connected(0);
            tracing::warn!("NATS connection lost; reconnecting")
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
