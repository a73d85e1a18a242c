//! The document's messages: each endpoint's request and reply, the
//! low-stock event, and the NATS headers each carries. Payloads are the
//! components made from `schemas/`; the examples are written by the wire
//! format's own code ([`Reply::body_text`]), so they are the bytes the
//! service sends.

use serde_json::{Map, Value, json};

use crate::contract::schema::Schemas;
use crate::contract::wire::{
    ERROR_CODE_HEADER, ERROR_HEADER, Endpoint, ErrorCode, HistoryMovement, HistoryPage,
    IDEMPOTENCY_HEADER, LowStockEvent, Reply, RulesRef, TIMEOUT_HEADER, True,
};
use crate::gateway::openapi::schema_ref;
use crate::inventory::decode_request;

/// The header the outbox relay adds to every event: the request that
/// caused it, as in the ledger.
pub(super) const REQUEST_ID_HEADER: &str = "Beaker-Request-Id";

/// The key of an endpoint's message in `components/messages`.
pub(super) fn request_key(endpoint: Endpoint) -> String {
    format!("stock-{}.request", endpoint.name())
}

pub(super) fn reply_key(endpoint: Endpoint) -> String {
    format!("stock-{}.reply", endpoint.name())
}

pub(super) const LOW_STOCK_KEY: &str = "low-stock.event";

/// W3C trace context: read from a request, written into its events so a
/// consumer continues the request's trace.
fn trace_headers() -> [(&'static str, Value); 2] {
    [
        (
            "traceparent",
            json!({
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C trace context. On a request: the caller's span, which the request's span continues (a new trace starts without it). On an event: the request's span."
            }),
        ),
        (
            "tracestate",
            json!({ "type": "string", "description": "W3C trace state, passed on with `traceparent`." }),
        ),
    ]
}

fn headers_schema(title: &str, description: &str, properties: Map<String, Value>) -> Value {
    json!({
        "title": title,
        "description": description,
        "type": "object",
        "properties": properties,
        "additionalProperties": { "type": "string" }
    })
}

/// The header schemas, as components.
pub(super) fn header_schemas() -> Map<String, Value> {
    let mut request = Map::new();
    request.insert(
        IDEMPOTENCY_HEADER.into(),
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": "^[!-~]+$",
            "description": "Idempotency key of an add or remove: the change is applied at most once, and a retry with the same key gets the stored reply byte for byte (for BEAKER_IDEMPOTENCY_TTL, 24 h by default). The same key with another request is refused with 409. `stock.get` ignores it."
        }),
    );
    request.insert(
        TIMEOUT_HEADER.into(),
        json!({
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "How long the caller waits for the reply, in milliseconds: a request that cannot get a slot sooner is answered 503 then (never later than BEAKER_MAX_WAIT, 2 s by default)."
        }),
    );
    request.extend(trace_headers().map(|(k, v)| (k.to_string(), v)));

    let mut reply = Map::new();
    reply.insert(
        ERROR_HEADER.into(),
        json!({
            "type": "string",
            "description": "Present on a failure only: the body's `error` (control characters as spaces)."
        }),
    );
    reply.insert(
        ERROR_CODE_HEADER.into(),
        json!({
            "type": "string",
            "enum": error_codes(),
            "description": "Present on a failure only: 400 the request is malformed or out of bounds, 404 the product is unknown, 409 a business rule refused the change (or an idempotency key was reused for another request), 500 the service failed and changed nothing, 503 a dependency is down or the instance is saturated (try again)."
        }),
    );

    let mut event = Map::new();
    event.insert(
        IDEMPOTENCY_HEADER.into(),
        json!({
            "type": "string",
            "format": "uuid",
            "description": "The event's id. JetStream drops a second copy within the stream's duplicate window; a consumer may also remember it."
        }),
    );
    event.insert(
        REQUEST_ID_HEADER.into(),
        json!({
            "type": "string",
            "format": "uuid",
            "description": "The request whose committed change caused the event (its ledger row carries the same id)."
        }),
    );
    event.extend(trace_headers().map(|(k, v)| (k.to_string(), v)));

    let mut schemas = Map::new();
    schemas.insert(
        "request-headers".into(),
        headers_schema(
            "request-headers",
            "NATS headers the service reads on a request; all optional.",
            request,
        ),
    );
    schemas.insert(
        "reply-headers".into(),
        headers_schema(
            "reply-headers",
            "NATS headers of a reply: the NATS micro error headers, on a failure only (a success has no headers).",
            reply,
        ),
    );
    let mut event_headers = headers_schema(
        "event-headers",
        "NATS headers of every event; `traceparent` and `tracestate` when the request had a trace.",
        event,
    );
    event_headers["required"] = json!([IDEMPOTENCY_HEADER, REQUEST_ID_HEADER]);
    schemas.insert("event-headers".into(), event_headers);
    schemas
}

fn error_codes() -> Vec<String> {
    [
        ErrorCode::BadRequest,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ]
    .iter()
    .map(|code| code.code().to_string())
    .collect()
}

/// A reply's body as the service sends it, as JSON.
fn body(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body_text()).unwrap_or(Value::Null)
}

fn success(level: u32) -> Value {
    json!({
        "name": "success",
        "summary": "The request succeeded: no headers.",
        "payload": body(&Reply::Ok { sku: "widget-1".into(), level })
    })
}

fn failure(name: &str, code: ErrorCode, message: &str) -> Value {
    json!({
        "name": name,
        "summary": format!("A failure ({}): the same message in the body and the header.", code.code()),
        "headers": {
            ERROR_HEADER: message,
            ERROR_CODE_HEADER: code.code().to_string()
        },
        "payload": body(&Reply::error(code, message))
    })
}

/// A `stock.history` page as the service sends it: the newest movement,
/// and where the next page starts.
fn history_page() -> Value {
    let page = HistoryPage {
        ok: True,
        sku: "widget-1".into(),
        movements: vec![HistoryMovement {
            id: 42,
            operation: "remove".into(),
            quantity: 20,
            level_after: 0,
            rules: RulesRef {
                name: "beaker-default-rules".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            request_id: "0193a1c2-7b4e-7c3d-9f10-2b6f1e0d4a55".into(),
            at: "2026-12-05T09:30:00.123Z".into(),
        }],
        next_before: Some(42),
    };
    json!({
        "name": "success",
        "summary": "One page of movements, newest first; `next-before` is there when older ones remain.",
        "payload": body(&Reply::History(Box::new(page)))
    })
}

/// The request and reply examples of an endpoint.
fn examples(endpoint: Endpoint) -> (Value, Vec<Value>) {
    // The service's own answer to an empty body.
    let bad = Schemas::compile()
        .ok()
        .and_then(|schemas| decode_request(&schemas, endpoint, b"", usize::MAX).err())
        .and_then(|reply| reply.failure().map(|(_, m)| m.to_string()))
        .map_or(Value::Null, |message| {
            failure("empty-body", ErrorCode::BadRequest, &message)
        });
    match endpoint {
        Endpoint::Add => (
            json!({ "product-sku": "widget-1", "quantity": 15 }),
            vec![success(15), bad],
        ),
        Endpoint::Remove => (
            json!({ "product-sku": "widget-1", "quantity": 20 }),
            vec![
                success(0),
                failure(
                    "not-enough-stock",
                    ErrorCode::Conflict,
                    "cannot remove 20 units of widget-1: only 15 in stock",
                ),
                bad,
            ],
        ),
        Endpoint::Get => (json!({ "product-sku": "widget-1" }), vec![success(15), bad]),
        Endpoint::History => (
            json!({ "product-sku": "widget-1", "limit": 1 }),
            vec![history_page(), bad],
        ),
    }
}

/// The components/messages of the document.
pub(super) fn messages() -> Map<String, Value> {
    let mut messages = Map::new();
    for endpoint in Endpoint::ALL {
        let name = endpoint.name();
        let (request, mut replies) = examples(endpoint);
        replies.retain(|example| !example.is_null());
        messages.insert(
            request_key(endpoint),
            json!({
                "name": request_key(endpoint),
                "title": format!("{} request", endpoint.subject()),
                "contentType": "application/json",
                "headers": schema_ref("request-headers"),
                "payload": schema_ref(&format!("stock-{name}.request")),
                "examples": [ { "name": "request", "payload": request } ]
            }),
        );
        messages.insert(
            reply_key(endpoint),
            json!({
                "name": reply_key(endpoint),
                "title": format!("{} reply", endpoint.subject()),
                "summary": "Every request gets one: `{\"ok\":true,…}`, or `{\"ok\":false,\"error\":…}` with the error headers.",
                "contentType": "application/json",
                "headers": schema_ref("reply-headers"),
                "payload": schema_ref(&format!("stock-{name}.response")),
                "examples": replies
            }),
        );
    }
    let event = LowStockEvent {
        sku: "widget-1".into(),
        level: 4,
    };
    messages.insert(
        LOW_STOCK_KEY.into(),
        json!({
            "name": LOW_STOCK_KEY,
            "title": "Low stock",
            "summary": "A committed remove left a product with fewer than 10 units (the default rules).",
            "contentType": "application/json",
            "headers": schema_ref("event-headers"),
            "payload": schema_ref("low-stock.event"),
            "examples": [{
                "name": "low-stock",
                "headers": {
                    IDEMPOTENCY_HEADER: "01970b4e-6d3c-7b2a-9f10-4c5d6e7f8a9b",
                    REQUEST_ID_HEADER: "01970b4e-6d2f-7c11-8e00-1a2b3c4d5e6f",
                    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                },
                "payload": serde_json::to_value(&event).unwrap_or(Value::Null)
            }]
        }),
    );
    messages
}
