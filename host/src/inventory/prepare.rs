//! What a request needs before the database: decoding (size, UTF-8,
//! JSON, the schema), the idempotency key and its fingerprint.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use super::Inventory;
use crate::contract::schema::Schemas;
use crate::contract::wire::{Endpoint, ErrorCode, IDEMPOTENCY_HEADER, Reply, StockRequest};
use crate::propagation::RequestTrace;
use crate::rules::{self, Operation, Rules};
use crate::store::{IdempotencyKey, Movement, RulesStamp};

/// The longest idempotency key accepted.
const MAX_KEY_LEN: usize = 255;

/// An add or remove to apply, the same on every attempt and whether it
/// is applied alone or in a group.
#[derive(Debug, Clone)]
pub struct PendingChange {
    /// The rules active when the request arrived: they decide it.
    pub(super) rules: Arc<Rules>,
    pub(super) ask: rules::Request,
    pub(super) operation: &'static str,
    pub(super) quantity: u32,
    pub(super) key: Option<IdempotencyKey>,
    pub(super) request_id: Uuid,
    /// The request's span, parent of the transaction that applies it.
    pub(super) span: tracing::Span,
    /// Its trace: for the ledger row and the events' headers.
    pub(super) trace: RequestTrace,
}

impl PendingChange {
    /// The ledger row of this change applied with `level_after`, stamped
    /// with the rules that decided it.
    pub(super) fn movement(&self, level_after: u32) -> Movement {
        Movement {
            operation: self.operation,
            quantity: self.quantity,
            level_after,
            rules: RulesStamp {
                name: self.rules.name.clone(),
                version: self.rules.version.clone(),
                digest: self.rules.digest.to_string(),
            },
            request_id: self.request_id,
            trace_id: Some(self.trace.trace_id()),
        }
    }
}

/// A request, once checked.
pub(super) enum Prepared {
    /// Nothing to execute: the reply says what is wrong.
    Answer(Reply),
    Get(StockRequest),
    /// A `stock.history` page: a request of its own shape, decoded there.
    History,
    Change(Box<PendingChange>),
}

impl Inventory {
    /// Everything about a request that needs no database: decoding, the
    /// schema, the idempotency key.
    pub(super) fn prepare(
        &self,
        endpoint: Endpoint,
        payload: &[u8],
        key: Option<&str>,
        request_id: Uuid,
        trace: RequestTrace,
        rules: &Arc<Rules>,
    ) -> Prepared {
        if endpoint == Endpoint::History {
            return Prepared::History;
        }
        let decoded = tracing::debug_span!("validate").in_scope(|| self.decode(endpoint, payload));
        let (request, canonical) = match decoded {
            Ok(decoded) => decoded,
            Err(reply) => return Prepared::Answer(reply),
        };
        if crate::propagation::spans_exported() {
            tracing::Span::current().set_attribute("beaker.sku", request.sku.clone());
        }
        let (operation, quantity) = match (endpoint, request.quantity) {
            // A get changes nothing, so it is idempotent without a key.
            (Endpoint::Get, _) => return Prepared::Get(request),
            (Endpoint::History, _) => return Prepared::History,
            (_, None) => {
                return Prepared::Answer(Reply::error(
                    ErrorCode::BadRequest,
                    "quantity is required",
                ));
            }
            (Endpoint::Add, Some(quantity)) => (Operation::Add(quantity), quantity),
            (Endpoint::Remove, Some(quantity)) => (Operation::Remove(quantity), quantity),
        };
        let key = match key
            .map(|k| idempotency_key(k, endpoint, &canonical, self.limits.idempotency_ttl))
        {
            None => None,
            Some(Ok(key)) => Some(key),
            Some(Err(reply)) => return Prepared::Answer(reply),
        };
        Prepared::Change(Box::new(PendingChange {
            rules: rules.clone(),
            ask: rules::Request {
                sku: request.sku,
                operation,
            },
            operation: endpoint.name(),
            quantity,
            key,
            request_id,
            span: tracing::Span::current(),
            trace,
        }))
    }

    fn decode(&self, endpoint: Endpoint, payload: &[u8]) -> Result<(StockRequest, String), Reply> {
        decode_request(
            &self.schemas,
            endpoint,
            payload,
            self.limits.max_request_bytes,
        )
    }
}

/// Checks a caller's idempotency key and fingerprints the request.
fn idempotency_key(
    key: &str,
    endpoint: Endpoint,
    canonical: &str,
    ttl: Duration,
) -> Result<IdempotencyKey, Reply> {
    let valid =
        !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(Reply::error(
            ErrorCode::BadRequest,
            format!(
                "the {IDEMPOTENCY_HEADER} header (idempotency key) must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ),
        ));
    }
    let mut hasher = Sha256::new();
    hasher.update(endpoint.subject().as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    let request_hash = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(IdempotencyKey {
        key: key.to_string(),
        endpoint: endpoint.name(),
        request_hash,
        ttl,
    })
}

/// Turns raw bytes into a schema-valid request (and its canonical JSON
/// text), or the reply that says precisely what is wrong with them. Never
/// panics, whatever the bytes: the fuzz target `request` holds it to that.
pub fn decode_request(
    schemas: &Schemas,
    endpoint: Endpoint,
    payload: &[u8],
    max_request_bytes: usize,
) -> Result<(StockRequest, String), Reply> {
    let text = payload_text(endpoint, payload, max_request_bytes)?;
    // The common case, a well-formed request, needs no JSON tree.
    if let Some(decoded) = crate::contract::shape::decode_valid(endpoint, text) {
        return Ok(decoded);
    }
    decode_by_schema(schemas, endpoint, text)
}

/// The request body as text, once its size, emptiness and encoding are
/// checked: what every endpoint checks first, with the same messages.
pub(super) fn payload_text(
    endpoint: Endpoint,
    payload: &[u8],
    max_request_bytes: usize,
) -> Result<&str, Reply> {
    let bad = |message: String| Reply::error(ErrorCode::BadRequest, message);
    if payload.len() > max_request_bytes {
        return Err(bad(format!(
            "request body is {} bytes; at most {max_request_bytes} are accepted",
            payload.len()
        )));
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(format!(
            "request body is empty: send a JSON object such as {}",
            example(endpoint)
        )));
    }
    std::str::from_utf8(payload).map_err(|e| {
        bad(format!(
            "request body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })
}

/// Decoding with the JSON Schema alone, for what the fast path is not
/// sure of (and for `stock.history`, which has none): this says precisely
/// what is wrong. Public as the reference the fast path is held to (the
/// `request` fuzz property).
pub fn decode_by_schema<T: serde::de::DeserializeOwned>(
    schemas: &Schemas,
    endpoint: Endpoint,
    text: &str,
) -> Result<(T, String), Reply> {
    let bad = |message: String| Reply::error(ErrorCode::BadRequest, message);
    let value: Value = serde_json::from_str(text)
        .map_err(|e| bad(format!("request body is not valid JSON: {e}")))?;
    schemas
        .check_request(endpoint, &value)
        .map_err(|e| bad(format!("invalid {} request: {e}", endpoint.subject())))?;
    // Keys sort, so this text is the same for the same request.
    let canonical = value.to_string();
    let request = serde_json::from_value(value).map_err(|e| {
        // The schema and the type agree, so this is a defect.
        Reply::error(
            ErrorCode::Internal,
            format!("cannot decode a schema-valid request: {e}"),
        )
    })?;
    Ok((request, canonical))
}

fn example(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Get => r#"{"product-sku":"widget-1"}"#,
        Endpoint::History => r#"{"product-sku":"widget-1","limit":20}"#,
        _ => r#"{"product-sku":"widget-1","quantity":5}"#,
    }
}
