//! The document's operations: the messaging routes on each service
//! subject, and the gateway's own routes.

use serde_json::{Map, Value, json};

use super::schema_ref;
use crate::contract::wire::Endpoint;

pub(super) fn gateway_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {
            "x-nats-api-gateway-error": { "$ref": "#/components/headers/GatewayError" }
        },
        "content": {
            "application/json": { "schema": schema_ref("GatewayError") }
        }
    })
}

pub(super) fn error_responses(codes: &[(&str, &str)]) -> Map<String, Value> {
    codes
        .iter()
        .map(|(code, name)| {
            (
                (*code).to_string(),
                json!({ "$ref": format!("#/components/responses/{name}") }),
            )
        })
        .collect()
}

/// What an endpoint does, in a line and a paragraph: the summary and
/// description both the OpenAPI and the AsyncAPI document give it.
pub fn summary(endpoint: Endpoint) -> (&'static str, &'static str) {
    match endpoint {
        Endpoint::Add => (
            "Add units of a product",
            "Adds `quantity` units to the product's stock; a product never stocked starts at 0. The reply carries the level after the add.",
        ),
        Endpoint::Remove => (
            "Remove units of a product",
            "Removes `quantity` units. An unknown product is refused (404); a remove that would take the level below 0 is refused (409) and changes nothing. When the level drops below 10, a low-stock event follows on `events.low_stock` once the change has committed.",
        ),
        Endpoint::Get => (
            "Look up a product's stock level",
            "The current level; 0 for a product never stocked. Writes nothing.",
        ),
        Endpoint::History => (
            "A product's movements, newest first",
            "The product's ledger one page at a time (`limit`, at most 100; `before`, the previous page's `next-before`): each movement's operation, quantity, level after it, the rules that decided it, its request id and time. A product never stocked has none. Writes nothing.",
        ),
    }
}

pub(super) fn stock_operation(endpoint: Endpoint) -> Value {
    let name = endpoint.name();
    let (summary, description) = summary(endpoint);
    let mut responses = error_responses(&[
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("413", "PayloadTooLarge"),
        ("502", "BadGateway"),
        ("503", "NoResponders"),
        ("504", "Timeout"),
    ]);
    responses.insert(
        "200".into(),
        json!({
            "description": "The service replied. Without `Accept: application/json` the body is the reply as the service sent it (success or failure, see the `NatsH-Nats-Service-Error-Code` header); with it, the gateway's envelope (`NatsMessage`) whose base64 `data` is that reply.",
            "headers": {
                "NatsH-Nats-Service-Error": { "$ref": "#/components/headers/ServiceError" },
                "NatsH-Nats-Service-Error-Code": { "$ref": "#/components/headers/ServiceErrorCode" }
            },
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            schema_ref(&format!("stock-{name}.response")),
                            schema_ref("NatsMessage")
                        ]
                    }
                }
            }
        }),
    );
    json!({
        "operationId": format!("stock{}", capitalized(name)),
        "tags": ["stock"],
        "summary": summary,
        "description": format!("Request/reply on the NATS subject `{}`. {description}", endpoint.subject()),
        "parameters": [
            { "$ref": "#/components/parameters/timeout" },
            { "$ref": "#/components/parameters/idempotencyKey" }
        ],
        "requestBody": {
            "required": true,
            "content": {
                "application/json": { "schema": schema_ref(&format!("stock-{name}.request")) }
            }
        },
        "responses": responses
    })
}

pub(super) fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

pub(super) fn info_operation() -> Value {
    let mut responses = error_responses(&[
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("502", "BadGateway"),
        ("503", "NoResponders"),
        ("504", "Timeout"),
    ]);
    responses.insert(
        "200".into(),
        json!({
            "description": "One instance's NATS micro INFO reply (with several instances, the first to answer).",
            "content": {
                "application/json": {
                    "schema": { "oneOf": [schema_ref("ServiceInfo"), schema_ref("NatsMessage")] }
                }
            }
        }),
    );
    json!({
        "operationId": "serviceInfo",
        "tags": ["stock"],
        "summary": "Describe the service and its active rules",
        "description": "NATS micro discovery (`$SRV.INFO.beaker`): the service's name, version, endpoints and, in `metadata`, the rules serving requests (`rules_name`, `rules_version`, `rules_digest`, `rules_since`). The body is empty.",
        "parameters": [ { "$ref": "#/components/parameters/timeout" } ],
        "responses": responses
    })
}

pub(super) fn events_operation() -> Value {
    json!({
        "operationId": "lowStockEvents",
        "tags": ["messaging"],
        "summary": "Receive low-stock events as they happen",
        "description": "Subscribes to `events.low_stock` and streams server-sent events: every message is an event named `msg` whose data is a `LowStockMessage` (the envelope, with the event's JSON base64 in `data`). Comment lines keep the connection alive; when the gateway stops, an event named `closed` ends the stream. The subscription is in place when the response starts.",
        "parameters": [
            {
                "name": "authorization",
                "in": "query",
                "required": false,
                "description": "The token, for clients that cannot send a header (a browser's EventSource).",
                "schema": { "type": "string" }
            },
            {
                "name": "queue",
                "in": "query",
                "required": false,
                "description": "A NATS queue group: streams in one group share the messages.",
                "schema": { "type": "string", "minLength": 1 }
            },
            {
                "name": "idleHeartbeat",
                "in": "query",
                "required": false,
                "description": "Interval of the keep-alive comments, in milliseconds (default 30000).",
                "schema": { "type": "integer", "minimum": 100, "maximum": 3600000 }
            }
        ],
        "responses": {
            "200": {
                "description": "An endless stream of server-sent events.",
                "content": { "text/event-stream": { "schema": { "type": "string" } } }
            },
            "400": { "$ref": "#/components/responses/BadRequest" },
            "401": { "$ref": "#/components/responses/Unauthorized" },
            "403": { "$ref": "#/components/responses/Forbidden" },
            "502": { "$ref": "#/components/responses/BadGateway" }
        }
    })
}

pub(super) fn publish_operation() -> Value {
    let mut responses = error_responses(&[
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("413", "PayloadTooLarge"),
        ("502", "BadGateway"),
        ("504", "Timeout"),
    ]);
    responses.insert(
        "200".into(),
        json!({ "description": "The NATS server received the message." }),
    );
    json!({
        "operationId": "publish",
        "tags": ["messaging"],
        "summary": "Publish a message",
        "description": "Publishes the body on the subject, without waiting for any reply. A service endpoint acts on a published request as on any other (a `stock.add` adds), but its reply goes nowhere unless `reply` names an inbox the caller listens on.",
        "parameters": [
            {
                "name": "subject",
                "in": "path",
                "required": true,
                "description": "The NATS subject; it must be allowed by the gateway (Beaker's default: `stock.*` and `$SRV.INFO.beaker`). The gateway accepts any NATS subject without wildcards (no whitespace, no empty token); the pattern shows the portable form.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 256,
                    "pattern": "^[A-Za-z0-9_$-]+(\\.[A-Za-z0-9_$-]+)*$",
                    "examples": ["stock.add"]
                }
            },
            {
                "name": "reply",
                "in": "query",
                "required": false,
                "description": "Reply subject for the message. Beaker's gateway accepts only inboxes: `_INBOX.` followed by tokens of letters, digits, `_` and `-`.",
                "schema": {
                    "type": "string",
                    "maxLength": 256,
                    "pattern": "^_INBOX(\\.[A-Za-z0-9_-]+)+$",
                    "examples": ["_INBOX.caller.1"]
                }
            },
            { "$ref": "#/components/parameters/idempotencyKey" }
        ],
        "requestBody": {
            "required": false,
            "content": {
                "application/octet-stream": { "schema": { "type": "string", "format": "binary" } }
            }
        },
        "responses": responses
    })
}

pub(super) fn openapi_operation() -> Value {
    json!({
        "get": {
            "operationId": "openapi",
            "tags": ["gateway"],
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document.",
                    "content": { "application/json": { "schema": { "type": "object" } } }
                }
            }
        }
    })
}

pub(super) fn asyncapi_operation() -> Value {
    json!({
        "get": {
            "operationId": "asyncapi",
            "tags": ["gateway"],
            "summary": "The AsyncAPI 3.0 document of the NATS side",
            "description": "The `stock.*` request/reply endpoints and the low-stock events with their JetStream stream, as NATS clients see them.",
            "security": [],
            "responses": {
                "200": {
                    "description": "The AsyncAPI 3.0 document.",
                    "content": { "application/json": { "schema": { "type": "object" } } }
                }
            }
        }
    })
}

pub(super) fn health_operation() -> Value {
    json!({
        "get": {
            "operationId": "health",
            "tags": ["gateway"],
            "summary": "Whether the gateway's NATS connection is up",
            "security": [],
            "responses": {
                "200": {
                    "description": "Connected to NATS.",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } }
                },
                "503": {
                    "description": "Not connected to NATS (reconnecting).",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } }
                }
            }
        }
    })
}

pub(super) fn console_operation() -> Value {
    json!({
        "get": {
            "operationId": "console",
            "tags": ["gateway"],
            "summary": "The operator console (a web page)",
            "security": [],
            "responses": {
                "200": {
                    "description": "The page; it asks for a token and calls the messaging routes like any client.",
                    "content": { "text/html": { "schema": { "type": "string" } } }
                }
            }
        }
    })
}
