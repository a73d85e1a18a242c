//! What every HTTP request passes through: the access log (never the
//! query string nor a header: they may carry a token) and, on the
//! messaging routes, the token check.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::failure::{ERROR_HEADER, Failure};
use super::{AppState, TOKEN_QUERY, auth};

/// One line per HTTP request: method, path, status, time. Never the query
/// string (it may carry a token) nor any header.
pub(super) async fn access_log(request: Request, next: Next) -> Response {
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

/// Who a request comes from, as its token says; the handlers that change
/// the rules bucket read it from the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// No token, on a gateway that serves anyone.
    Anonymous,
    /// An ordinary token.
    Client,
    /// An operator token.
    Operator,
}

/// Lets a request through when it carries a configured token (or when the
/// gateway is anonymous), marked with who the caller is; otherwise
/// answers 401 and forwards nothing.
pub(super) async fn authorize(
    State(gw): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, Failure> {
    if gw.config.allow_anonymous {
        request.extensions_mut().insert(Caller::Anonymous);
        return Ok(next.run(request).await);
    }
    let token = presented_token(&request);
    // Both lists are always compared, so the time taken does not say
    // which kind of token was presented.
    let caller = token.as_deref().map(|token| {
        let operator = gw.config.operator_tokens.accepts(token);
        let client = gw.config.tokens.accepts(token);
        match (operator, client) {
            (true, _) => Some(Caller::Operator),
            (false, true) => Some(Caller::Client),
            (false, false) => None,
        }
    });
    match caller {
        Some(Some(caller)) => {
            request.extensions_mut().insert(caller);
            Ok(next.run(request).await)
        }
        Some(None) => Err(Failure::new(
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
pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}
