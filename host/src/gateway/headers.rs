//! HTTP headers and NATS headers: `NatsH-<name>` ↔ `<name>` (names
//! restored to their canonical form), `Idempotency-Key` → `Nats-Msg-Id`,
//! the W3C trace context passed on, and a NATS message as the JSON
//! envelope of the Synadia gateway.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine;
use serde::Serialize;

use super::failure::Failure;

/// HTTP headers with this prefix become NATS headers without it, and NATS
/// reply headers come back with it.
pub const NATS_HEADER_PREFIX: &str = "NatsH-";
/// The HTTP header whose value becomes the NATS `Nats-Msg-Id` header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The NATS header JetStream de-duplicates on.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// The NATS headers for an HTTP request: every `NatsH-` header without its
/// prefix, `Idempotency-Key` as `Nats-Msg-Id`, and the W3C trace context
/// (`traceparent`, `tracestate`) as it is.
pub(super) fn nats_headers(http: &HeaderMap) -> Result<async_nats::HeaderMap, Failure> {
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

/// Whether the caller asked for the JSON envelope.
pub(super) fn wants_envelope(headers: &HeaderMap) -> bool {
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
}
