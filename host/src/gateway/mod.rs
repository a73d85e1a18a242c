//! The HTTP gateway: NATS core messaging over HTTP, shaped like the Synadia
//! Cloud HTTP Gateway so that an HTTP caller's code works against either
//! unchanged (only the base URL and the token differ).
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/nats/subjects/{subject}` | request/reply; the reply body raw, or the JSON envelope with `Accept: application/json` |
//! | `PUT /v1/nats/subjects/{subject}` | publish |
//! | `GET /v1/nats/subjects/{subject}` | subscribe: server-sent events, one `msg` event per message |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of these routes |
//! | `GET /asyncapi.json` | the AsyncAPI 3.0 document of the NATS service behind them |
//! | `GET /v1/instances` | every running instance's `$SRV.STATS` reply ([`operations`]) |
//! | `GET /v1/rules` | the rules bucket's deployments |
//! | `POST /v1/rules/promote`, `/v1/rules/rollback` | change them; operator tokens only |
//! | `GET /` | the operator console (and its scripts and style) |
//! | `GET /healthz` | whether the gateway's NATS connection is up |
//!
//! The gateway only forwards: it never touches the database, so an HTTP
//! caller gets exactly the answer a NATS client gets. The operator routes
//! read discovery and the rules bucket, over NATS too.

pub mod asyncapi;
pub mod auth;
mod console;
mod failure;
mod handlers;
mod headers;
mod middleware;
pub mod openapi;
mod operations;
mod sse;
pub mod subject;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use axum::Router;
use axum::routing::{get, post};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::auth::Tokens;
use self::subject::AllowList;
use crate::shutdown::stopped;

pub use failure::ERROR_HEADER;
pub use headers::{
    Envelope, IDEMPOTENCY_KEY, MSG_ID_HEADER, NATS_HEADER_PREFIX, canonical_header_name,
};

/// The query parameter that carries the token where a header cannot be
/// set (a browser's `EventSource`), on `GET` only.
pub const TOKEN_QUERY: &str = "authorization";

/// The base path of the messaging routes.
pub const SUBJECTS_PATH: &str = "/v1/nats/subjects";

/// Everything the gateway needs to know, resolved from the command line.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to listen on; port 0 picks a free one (logged at start).
    pub addr: String,
    pub tokens: Tokens,
    /// Tokens that may also change what the rules bucket names (promote,
    /// rollback); they are accepted everywhere an ordinary token is.
    pub operator_tokens: Tokens,
    /// Serve callers without a token when no tokens are configured.
    pub allow_anonymous: bool,
    /// Subjects callers may request on or publish to.
    pub allow_publish: AllowList,
    /// Subjects callers may subscribe to.
    pub allow_subscribe: AllowList,
    pub max_body_bytes: usize,
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    /// Default interval of the keep-alive comments on event streams.
    pub heartbeat: Duration,
    /// The NATS micro service whose instances `/v1/instances` lists.
    pub service: String,
    /// How long `/v1/instances` gathers discovery answers: how many
    /// instances run is unknown, so only a bounded wait can end it.
    pub discovery_window: Duration,
    /// The rules bucket `/v1/rules` reads and operators change; `None`
    /// when rules are not deployed through a bucket.
    pub rules_bucket: Option<String>,
}

impl GatewayConfig {
    /// A gateway needs tokens, or an explicit choice to serve anyone.
    pub fn check_access(&self) -> Result<(), GatewayError> {
        let no_tokens = self.tokens.is_empty() && self.operator_tokens.is_empty();
        match (no_tokens, self.allow_anonymous) {
            (true, false) => Err(GatewayError::NoTokens),
            (false, true) => Err(GatewayError::AnonymousWithTokens),
            _ => Ok(()),
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Tokens(#[from] auth::TokenError),
    #[error(
        "no gateway tokens are configured: set BEAKER_GATEWAY_TOKENS, \
         BEAKER_GATEWAY_TOKENS_FILE or their BEAKER_GATEWAY_OPERATOR_TOKENS \
         counterparts, or pass --gateway-allow-anonymous to serve callers \
         without a token"
    )]
    NoTokens,
    #[error(
        "--gateway-allow-anonymous cannot be combined with gateway tokens: \
         choose one"
    )]
    AnonymousWithTokens,
    #[error("invalid subject pattern {entry:?} in {setting}: {reason}")]
    Pattern {
        setting: &'static str,
        entry: String,
        reason: subject::SubjectError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the gateway stopped: {0}")]
    Serve(std::io::Error),
}

/// A gateway bound to its address, not yet serving.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    addr: SocketAddr,
    config: GatewayConfig,
}

impl Gateway {
    /// Checks the configuration and binds the listening socket, so that a
    /// wrong address or a missing token fails the start, not the first call.
    pub async fn bind(config: GatewayConfig) -> Result<Self, GatewayError> {
        config.check_access()?;
        let listener =
            TcpListener::bind(&config.addr)
                .await
                .map_err(|source| GatewayError::Bind {
                    addr: config.addr.clone(),
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
        if config.allow_anonymous {
            tracing::warn!(
                "the gateway serves callers without a token (--gateway-allow-anonymous)"
            );
        }
        tracing::info!(
            addr = %addr,
            tokens = config.tokens.len(),
            operator_tokens = config.operator_tokens.len(),
            allow_publish = %config.allow_publish,
            allow_subscribe = %config.allow_subscribe,
            max_body_bytes = config.max_body_bytes,
            default_timeout_ms = config.default_timeout.as_millis() as u64,
            "gateway listening"
        );
        Ok(Self {
            listener,
            addr,
            config,
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` turns true; then stops accepting, ends every
    /// event stream with a `closed` event, and waits (at most
    /// `shutdown_timeout`) for the requests in flight.
    pub async fn serve(
        self,
        client: Client,
        stop: watch::Receiver<bool>,
        shutdown_timeout: Duration,
    ) -> Result<(), GatewayError> {
        let shared = Arc::new(Shared {
            client,
            config: self.config,
            stop: stop.clone(),
            openapi: openapi::document_bytes(),
            asyncapi: asyncapi::document_bytes(),
        });
        let app = router(shared);
        let mut signal = stop.clone();
        let mut deadline = stop;
        let server = axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { stopped(&mut signal).await });
        let server = tokio::spawn(async move { server.await });
        // Once stopping, give the requests in flight a bounded time.
        tokio::select! {
            result = server => match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(GatewayError::Serve(e)),
                Err(e) => return Err(GatewayError::Serve(std::io::Error::other(e))),
            },
            () = async {
                stopped(&mut deadline).await;
                tokio::time::sleep(shutdown_timeout).await;
            } => {
                tracing::warn!(
                    timeout_ms = shutdown_timeout.as_millis() as u64,
                    "gateway requests still in flight at the shutdown timeout"
                );
            }
        }
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// State shared by every request.
struct Shared {
    client: Client,
    config: GatewayConfig,
    /// Turns true when the gateway stops: event streams end with it.
    stop: watch::Receiver<bool>,
    openapi: Bytes,
    asyncapi: Bytes,
}

type AppState = Arc<Shared>;

fn router(shared: AppState) -> Router {
    let messaging = Router::new()
        .route(
            &format!("{SUBJECTS_PATH}/{{subject}}"),
            get(sse::subscribe)
                .post(handlers::request)
                .put(handlers::publish),
        )
        .route("/v1/instances", get(operations::instances))
        .route("/v1/rules", get(operations::rules))
        .route("/v1/rules/promote", post(operations::promote))
        .route("/v1/rules/rollback", post(operations::rollback))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            middleware::authorize,
        ));
    let mut router = Router::new();
    for &(path, body, content_type) in console::ASSETS {
        router = router.route(
            path,
            get(move || async move { console::asset(body, content_type) }),
        );
    }
    router
        .route("/openapi.json", get(handlers::openapi_document))
        .route("/asyncapi.json", get(handlers::asyncapi_document))
        .route("/healthz", get(handlers::health))
        .merge(messaging)
        .fallback(failure::not_found)
        .layer(axum::middleware::from_fn(middleware::access_log))
        .with_state(shared)
}
