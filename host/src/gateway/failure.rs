//! Errors the gateway answers itself (as opposed to a service's reply,
//! which is forwarded as it came): a status, a JSON body with the
//! message, and the reason in `x-nats-api-gateway-error`, as Synadia's
//! gateway does.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::SUBJECTS_PATH;

/// The header that carries the reason of every error the gateway itself
/// answers (as Synadia's gateway does).
pub const ERROR_HEADER: &str = "x-nats-api-gateway-error";

/// An error the gateway answers itself (as opposed to a service's reply,
/// which is forwarded as it came).
#[derive(Debug)]
pub(super) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
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
pub(super) fn header_value_lossy(message: &str) -> HeaderValue {
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

pub(super) async fn not_found(method: Method, uri: axum::http::Uri) -> Failure {
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
    fn error_messages_fit_in_a_header() {
        assert_eq!(header_value_lossy("a\nb"), "a b");
        assert_eq!(header_value_lossy("sku ü"), "sku ?");
    }
}
