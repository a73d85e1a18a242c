//! The messaging handlers: request/reply (`POST`) and publish (`PUT`) on
//! a subject, and the small routes beside them.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::failure::Failure;
use super::headers::{Envelope, NATS_HEADER_PREFIX, nats_headers, wants_envelope};
use super::middleware::query_param;
use super::subject::{self, AllowList};
use super::{AppState, GatewayConfig};

/// The subject from the path, checked for shape and against an allow-list.
pub(super) fn checked_subject(
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
pub(super) fn request_timeout(
    query: Option<&str>,
    config: &GatewayConfig,
) -> Result<Duration, Failure> {
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

/// `POST /v1/nats/subjects/{subject}`: request/reply.
pub(super) async fn request(
    State(gw): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let subject = checked_subject(path, false, &gw.config.allow_publish, "requests on")?;
    let timeout = request_timeout(query.as_deref(), &gw.config)?;
    let mut nats = nats_headers(&headers)?;
    // The gateway gives up after `timeout`: the service need not make the
    // request wait for a slot any longer than that.
    nats.insert(
        crate::contract::wire::TIMEOUT_HEADER,
        timeout.as_millis().to_string().as_str(),
    );
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
pub(super) async fn publish(
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

/// `GET /openapi.json`: like the console, public (the routes it
/// describes are not).
pub(super) async fn openapi_document(State(gw): State<AppState>) -> Response {
    json_document(gw.openapi.clone())
}

/// `GET /asyncapi.json`: public, as `/openapi.json` is.
pub(super) async fn asyncapi_document(State(gw): State<AppState>) -> Response {
    json_document(gw.asyncapi.clone())
}

fn json_document(document: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document,
    )
        .into_response()
}

/// `GET /healthz`: 200 while the NATS connection is up, 503 otherwise.
pub(super) async fn health(State(gw): State<AppState>) -> Response {
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
