//! The HTTP gateway: NATS core messaging over HTTP, shaped like the Synadia
//! Cloud HTTP Gateway so that an HTTP caller's code works against either
//! unchanged (only the base URL and the token differ).
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/nats/subjects/{subject}` | request/reply; the reply body raw, or the JSON envelope with `Accept: application/json` |
//! | `PUT /v1/nats/subjects/{subject}` | publish |
//! | `GET /v1/nats/subjects/{subject}` | subscribe: server-sent events, one `msg` event per message |
//! | `GET /openapi.json` | the OpenAPI 3.1 document |
//! | `GET /` | the operator console |
//! | `GET /healthz` | whether the gateway's NATS connection is up |
//!
//! The gateway only forwards: it never touches the database, so an HTTP
//! caller gets exactly the answer a NATS client gets.

pub mod auth;
mod console;
pub mod openapi;
pub mod subject;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::Client;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::auth::Tokens;
use self::subject::AllowList;
use crate::shutdown::stopped;

/// The header that carries the reason of every error the gateway itself
/// answers (as Synadia's gateway does).
pub const ERROR_HEADER: &str = "x-nats-api-gateway-error";
/// HTTP headers with this prefix become NATS headers without it, and NATS
/// reply headers come back with it.
pub const NATS_HEADER_PREFIX: &str = "NatsH-";
/// The HTTP header whose value becomes the NATS `Nats-Msg-Id` header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The NATS header JetStream de-duplicates on.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
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
}

impl GatewayConfig {
    /// A gateway needs tokens, or an explicit choice to serve anyone.
    pub fn check_access(&self) -> Result<(), GatewayError> {
        match (self.tokens.is_empty(), self.allow_anonymous) {
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
        "no gateway tokens are configured: set BEAKER_GATEWAY_TOKENS or \
         BEAKER_GATEWAY_TOKENS_FILE, or pass --gateway-allow-anonymous to \
         serve callers without a token"
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

/// Why `beaker gateway` could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Nats(#[from] crate::nats::NatsError),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error("the stop took longer than its deadline of {0:?} (--shutdown-timeout)")]
    Deadline(Duration),
}

/// `beaker gateway`: the gateway on its own, in front of any number of
/// service instances, until SIGINT or SIGTERM.
pub async fn run(args: crate::config::GatewayCommandArgs) -> Result<(), RunError> {
    let config = args.gateway.config()?;
    let client = crate::nats::connect(
        &args.nats,
        "beaker-gateway",
        crate::nats::Observers::default(),
    )
    .await?;
    let gateway = Gateway::bind(config).await?;
    let addr = gateway.local_addr();
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown_timeout = args.shutdown.timeout();
    let task = tokio::spawn(gateway.serve(client.clone(), stop_rx, shutdown_timeout));
    tracing::info!(
        addr = %addr,
        nats = %crate::nats::redact_nats_urls(args.nats.servers()),
        "ready"
    );
    crate::shutdown::wait_for_signal()
        .await
        .map_err(RunError::Signals)?;
    tracing::info!("shutting down: no new HTTP requests; finishing those in flight");
    let mut deadline = crate::shutdown::Deadline::after(shutdown_timeout);
    let _ = stop_tx.send(true);
    match deadline.step("gateway", task).await {
        Some(Ok(result)) => result?,
        Some(Err(e)) => tracing::error!(error = %e, "gateway task failed"),
        None => {}
    }
    if client.connection_state() == async_nats::connection::State::Connected
        && let Some(Err(e)) = deadline.step("NATS drain", client.drain()).await
    {
        tracing::warn!(error = %e, "cannot drain the NATS connection");
    }
    if !deadline.missed().is_empty() {
        return Err(RunError::Deadline(shutdown_timeout));
    }
    tracing::info!("stopped");
    Ok(())
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
    stop: watch::Receiver<bool>,
    openapi: Bytes,
}

type AppState = Arc<Shared>;

fn router(shared: AppState) -> Router {
    let messaging = Router::new()
        .route(
            &format!("{SUBJECTS_PATH}/{{subject}}"),
            get(subscribe).post(request).put(publish),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), authorize));
    Router::new()
        .route("/", get(console::page))
        .route("/console.js", get(console::script))
        .route("/console.css", get(console::style))
        .route("/openapi.json", get(openapi_document))
        .route("/healthz", get(health))
        .merge(messaging)
        .fallback(not_found)
        .layer(middleware::from_fn(access_log))
        .with_state(shared)
}

/// An error the gateway answers itself (as opposed to a service's reply,
/// which is forwarded as it came).
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorBody {
            message: &self.message,
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(ERROR_HEADER, header_value_lossy(&self.message));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"beaker\""),
            );
        }
        response
    }
}

/// A header value for a message meant for people: control characters
/// become spaces, and anything else a header cannot carry becomes `?`.
fn header_value_lossy(message: &str) -> HeaderValue {
    let clean: String = message
        .chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if c.is_ascii() => c,
            _ => '?',
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("error"))
}

/// One line per HTTP request: method, path, status, time. Never the query
/// string (it may carry a token) nor any header.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match response
        .headers()
        .get(ERROR_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        Some(error) if status.is_server_error() => tracing::warn!(
            %method, path, status = status.as_u16(), elapsed_ms, error, "http request failed"
        ),
        Some(error) => tracing::info!(
            %method, path, status = status.as_u16(), elapsed_ms, error, "http request refused"
        ),
        None => tracing::info!(
            %method, path, status = status.as_u16(), elapsed_ms, "http request"
        ),
    }
    response
}

/// Lets a request through when it carries a configured token (or when the
/// gateway is anonymous); otherwise answers 401 and forwards nothing.
async fn authorize(
    State(gw): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Failure> {
    if gw.config.allow_anonymous {
        return Ok(next.run(request).await);
    }
    let token = presented_token(&request);
    match token {
        Some(token) if gw.config.tokens.accepts(&token) => Ok(next.run(request).await),
        Some(_) => Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "the token is not valid for this gateway",
        )),
        None => Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "missing token: send Authorization: Bearer <token>",
        )),
    }
}

/// The token a request presents: from `Authorization`, or on `GET` (event
/// streams) from `?authorization=`.
fn presented_token(request: &Request) -> Option<String> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(auth::token_from_authorization)
            .map(str::to_string);
    }
    if request.method() != Method::GET {
        return None;
    }
    let value = query_param(request.uri().query(), TOKEN_QUERY)?;
    auth::token_from_authorization(&value).map(str::to_string)
}

/// The first value of a query parameter, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The subject from the path, checked for shape and against an allow-list.
fn checked_subject(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    wildcards: bool,
    allowed: &AllowList,
    verb: &str,
) -> Result<String, Failure> {
    let Path(subject) = path.map_err(|e| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            format!("the subject in the path is not valid: {e}"),
        )
    })?;
    subject::validate(&subject, wildcards).map_err(|e| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            format!("invalid subject {subject:?}: {e}"),
        )
    })?;
    if !allowed.allows(&subject) {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            format!("this gateway does not allow {verb} {subject:?}"),
        ));
    }
    Ok(subject)
}

/// The NATS headers for an HTTP request: every `NatsH-` header without its
/// prefix, `Idempotency-Key` as `Nats-Msg-Id`, and the W3C trace context
/// (`traceparent`, `tracestate`) as it is.
fn nats_headers(http: &HeaderMap) -> Result<async_nats::HeaderMap, Failure> {
    let mut nats = async_nats::HeaderMap::new();
    let prefix = NATS_HEADER_PREFIX.to_ascii_lowercase();
    for (name, value) in http {
        let Some(stripped) = name.as_str().strip_prefix(&prefix) else {
            continue;
        };
        if stripped.is_empty() {
            continue;
        }
        let nats_name = canonical_header_name(stripped);
        let value = header_text(value, &nats_name)?;
        let name: async_nats::header::HeaderName = nats_name.parse().map_err(|_| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("header {nats_name} cannot be sent on NATS"),
            )
        })?;
        nats.append(name, value);
    }
    if let Some(key) = http.get(IDEMPOTENCY_KEY) {
        let value = header_text(key, "Idempotency-Key")?;
        nats.insert(MSG_ID_HEADER, value);
    }
    // W3C trace context travels on: the service continues the HTTP caller's
    // trace. A NatsH- header of the same name, if any, was sent as given.
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = http.get(name)
            && nats.get(canonical_header_name(name).as_str()).is_none()
        {
            nats.insert(name, header_text(value, name)?);
        }
    }
    Ok(nats)
}

fn header_text(value: &HeaderValue, name: &str) -> Result<async_nats::HeaderValue, Failure> {
    value
        .to_str()
        .ok()
        .and_then(|v| v.parse::<async_nats::HeaderValue>().ok())
        .ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("header {name} must be visible ASCII text"),
            )
        })
}

/// `nats-msg-id` → `Nats-Msg-Id`: HTTP header names arrive in lower case,
/// and NATS header names are case-sensitive, so they are restored to the
/// canonical form every NATS client uses (as Go's net/http does).
pub fn canonical_header_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Reads the body, refusing (413) anything over the limit before it is
/// all in memory.
async fn read_body(body: Body, limit: usize, headers: &HeaderMap) -> Result<Bytes, Failure> {
    let too_large = |size: Option<u64>| {
        let size = size
            .map(|s| format!("{s} bytes"))
            .unwrap_or("larger".into());
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {size}; at most {limit} bytes are accepted"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit as u64
    {
        return Err(too_large(Some(length)));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over {
            too_large(None)
        } else {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    })
}

/// `?timeout=` in milliseconds, within 1..=max; the default otherwise.
fn request_timeout(query: Option<&str>, config: &GatewayConfig) -> Result<Duration, Failure> {
    let Some(raw) = query_param(query, "timeout") else {
        return Ok(config.default_timeout);
    };
    let max = config.max_timeout.as_millis() as u64;
    match raw.trim().parse::<u64>() {
        Ok(ms) if (1..=max).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("timeout must be a whole number of milliseconds from 1 to {max}, not {raw:?}"),
        )),
    }
}

/// Whether the caller asked for the JSON envelope.
fn wants_envelope(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// A NATS message as JSON, in the shape of the Synadia gateway's envelope.
///
/// Synadia's OpenAPI document names the headers `headers` (name → value);
/// its TypeScript client reads `header` (name → values). Both are sent, with
/// the same content, so code written for either reading works here.
#[derive(Debug, Serialize)]
pub struct Envelope {
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub header: BTreeMap<String, Vec<String>>,
    /// The payload, base64 (standard alphabet, padded).
    pub data: String,
}

impl Envelope {
    pub fn from_message(message: &async_nats::Message) -> Self {
        let mut headers = BTreeMap::new();
        let mut header = BTreeMap::new();
        if let Some(map) = &message.headers {
            for (name, values) in map.iter() {
                let values: Vec<String> = values.iter().map(|v| v.as_str().to_string()).collect();
                if let Some(first) = values.first() {
                    headers.insert(name.to_string(), first.clone());
                }
                header.insert(name.to_string(), values);
            }
        }
        Self {
            subject: message.subject.to_string(),
            reply: message.reply.as_ref().map(|r| r.to_string()),
            headers,
            header,
            data: base64::engine::general_purpose::STANDARD.encode(&message.payload),
        }
    }
}

/// `POST /v1/nats/subjects/{subject}`: request/reply.
async fn request(
    State(gw): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let subject = checked_subject(path, false, &gw.config.allow_publish, "requests on")?;
    let timeout = request_timeout(query.as_deref(), &gw.config)?;
    let nats = nats_headers(&headers)?;
    let payload = read_body(body, gw.config.max_body_bytes, &headers).await?;
    let request = async_nats::Request::new()
        .payload(payload)
        .headers(nats)
        .timeout(Some(timeout));
    let reply = gw
        .client
        .send_request(subject.clone(), request)
        .await
        .map_err(|e| request_failure(&subject, timeout, e))?;
    if wants_envelope(&headers) {
        let envelope = Envelope::from_message(&reply);
        let body = serde_json::to_vec(&envelope).map_err(|e| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the reply: {e}"),
            )
        })?;
        return Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response());
    }
    Ok(raw_reply(reply))
}

/// The reply body as it came, its NATS headers as `NatsH-` headers.
fn raw_reply(reply: async_nats::Message) -> Response {
    let content_type = if serde_json::from_slice::<serde::de::IgnoredAny>(&reply.payload).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let mut response = Response::new(Body::from(reply.payload));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(map) = &reply.headers {
        for (name, values) in map.iter() {
            let Ok(http_name) = HeaderName::try_from(format!("{NATS_HEADER_PREFIX}{name}")) else {
                tracing::debug!(header = %name, "reply header cannot be an HTTP header; left out");
                continue;
            };
            for value in values {
                match HeaderValue::from_str(value.as_str()) {
                    Ok(value) => {
                        headers.append(http_name.clone(), value);
                    }
                    Err(_) => tracing::debug!(header = %name, "reply header value left out"),
                }
            }
        }
    }
    response
}

fn request_failure(subject: &str, timeout: Duration, error: async_nats::RequestError) -> Failure {
    use async_nats::RequestErrorKind as Kind;
    match error.kind() {
        Kind::NoResponders => Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no responders are available for {subject}"),
        ),
        Kind::TimedOut => Failure::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no reply on {subject} within {} ms", timeout.as_millis()),
        ),
        Kind::MaxPayloadExceeded => Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the message exceeds the NATS server's maximum payload: {error}"),
        ),
        Kind::InvalidSubject => Failure::new(
            StatusCode::BAD_REQUEST,
            format!("invalid subject {subject:?}"),
        ),
        Kind::Other => Failure::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot send the request on NATS: {error}"),
        ),
    }
}

/// `PUT /v1/nats/subjects/{subject}`: publish, optionally with a reply
/// subject (`?reply=`), which must be an inbox ([`subject::is_inbox`]).
async fn publish(
    State(gw): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let subject = checked_subject(path, false, &gw.config.allow_publish, "publishing to")?;
    let reply = match query_param(query.as_deref(), "reply").filter(|r| !r.is_empty()) {
        None => None,
        Some(reply) => {
            if !subject::is_inbox(&reply) {
                return Err(Failure::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "reply subject {reply:?} is not an inbox (_INBOX. then tokens of \
                         letters, digits, _ and -)"
                    ),
                ));
            }
            Some(reply)
        }
    };
    let nats = nats_headers(&headers)?;
    let payload = read_body(body, gw.config.max_body_bytes, &headers).await?;
    let published = match reply {
        Some(reply) => {
            gw.client
                .publish_with_reply_and_headers(subject.clone(), reply, nats, payload)
                .await
        }
        None => {
            gw.client
                .publish_with_headers(subject.clone(), nats, payload)
                .await
        }
    };
    published.map_err(|e| match e.kind() {
        async_nats::client::PublishErrorKind::MaxPayloadExceeded => Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the message exceeds the NATS server's maximum payload: {e}"),
        ),
        _ => Failure::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot publish on NATS: {e}"),
        ),
    })?;
    // A 200 means the NATS server has the message, not merely our buffer.
    let timeout = request_timeout(query.as_deref(), &gw.config)?;
    match tokio::time::timeout(timeout, gw.client.flush()).await {
        Ok(Ok(())) => Ok(StatusCode::OK.into_response()),
        Ok(Err(e)) => Err(Failure::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot publish on NATS: {e}"),
        )),
        Err(_) => Err(Failure::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the NATS server did not confirm the publish within {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

/// `GET /v1/nats/subjects/{subject}`: subscribe, as server-sent events.
/// Each message is a `msg` event whose data is the JSON envelope; when the
/// gateway stops, a `closed` event ends the stream. The NATS subscription
/// is in place before the response starts.
async fn subscribe(
    State(gw): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let subject = checked_subject(path, true, &gw.config.allow_subscribe, "subscribing to")?;
    let queue = query_param(query.as_deref(), "queue").filter(|q| !q.is_empty());
    if let Some(queue) = &queue
        && queue.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "the queue group contains whitespace or a control character",
        ));
    }
    let heartbeat = match query_param(query.as_deref(), "idleHeartbeat") {
        None => gw.config.heartbeat,
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(ms) if (100..=3_600_000).contains(&ms) => Duration::from_millis(ms),
            _ => {
                return Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!("idleHeartbeat must be milliseconds from 100 to 3600000, not {raw:?}"),
                ));
            }
        },
    };
    let subscribed = match queue {
        Some(queue) => gw.client.queue_subscribe(subject.clone(), queue).await,
        None => gw.client.subscribe(subject.clone()).await,
    };
    let subscriber = subscribed.map_err(|e| {
        Failure::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot subscribe on NATS: {e}"),
        )
    })?;
    // The subscription is on the wire before the caller hears "open". (The
    // client offers no round trip to wait for the server to have read it:
    // a message the caller causes in the same instant can still come first.)
    if let Err(e) = gw.client.flush().await {
        return Err(Failure::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot subscribe on NATS: {e}"),
        ));
    }
    tracing::debug!(subject, "event stream opened");
    let stop = gw.stop.clone();
    let events = futures::stream::unfold(Some((subscriber, stop)), |state| async move {
        let (mut subscriber, mut stop) = state?;
        tokio::select! {
            () = stopped(&mut stop) => Some((closed_event("the gateway is stopping"), None)),
            next = subscriber.next() => match next {
                Some(message) => Some((message_event(&message), Some((subscriber, stop)))),
                None => Some((closed_event("the subscription ended"), None)),
            },
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response())
}

fn message_event(message: &async_nats::Message) -> Result<Event, Infallible> {
    let envelope = Envelope::from_message(message);
    let data = serde_json::to_string(&envelope).unwrap_or_else(|_| "{}".to_string());
    Ok(Event::default().event("msg").data(data))
}

fn closed_event(reason: &str) -> Result<Event, Infallible> {
    Ok(Event::default().event("closed").data(reason))
}

async fn openapi_document(State(gw): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        gw.openapi.clone(),
    )
        .into_response()
}

/// `GET /healthz`: 200 while the NATS connection is up, 503 otherwise.
async fn health(State(gw): State<AppState>) -> Response {
    let state = gw.client.connection_state();
    let connected = matches!(state, async_nats::connection::State::Connected);
    let body = serde_json::json!({ "nats": state.to_string() }).to_string();
    let status = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {method} {}; messaging is under {SUBJECTS_PATH}/{{subject}}",
            uri.path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_restored_to_canonical_form() {
        assert_eq!(canonical_header_name("nats-msg-id"), "Nats-Msg-Id");
        assert_eq!(canonical_header_name("hello-world"), "Hello-World");
        assert_eq!(canonical_header_name("x"), "X");
        assert_eq!(canonical_header_name("TRACEPARENT"), "Traceparent");
    }

    #[test]
    fn prefixed_headers_and_idempotency_key_become_nats_headers() {
        let mut http = HeaderMap::new();
        http.insert("natsh-hello-world", HeaderValue::from_static("Hi"));
        http.append("natsh-multi", HeaderValue::from_static("a"));
        http.append("natsh-multi", HeaderValue::from_static("b"));
        http.insert("idempotency-key", HeaderValue::from_static("k-1"));
        http.insert("x-other", HeaderValue::from_static("ignored"));
        let nats = nats_headers(&http).expect("valid");
        assert_eq!(nats.get("Hello-World").map(|v| v.as_str()), Some("Hi"));
        assert_eq!(nats.get(MSG_ID_HEADER).map(|v| v.as_str()), Some("k-1"));
        let multi: Vec<&str> = nats.get_all("Multi").map(|v| v.as_str()).collect();
        assert_eq!(multi, vec!["a", "b"]);
        assert!(nats.get("X-Other").is_none());
        assert!(nats.get("Authorization").is_none());
    }

    #[test]
    fn accept_selects_the_envelope() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            h
        };
        assert!(wants_envelope(&with("application/json")));
        assert!(wants_envelope(&with("text/plain, Application/JSON; q=0.9")));
        assert!(!wants_envelope(&with("*/*")));
        assert!(!wants_envelope(&HeaderMap::new()));
    }

    #[test]
    fn error_messages_fit_in_a_header() {
        assert_eq!(header_value_lossy("a\nb"), "a b");
        assert_eq!(header_value_lossy("sku ü"), "sku ?");
    }
}
