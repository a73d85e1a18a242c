//! The OpenAPI 3.1 document of the gateway, generated from the JSON Schemas
//! in `schemas/` (embedded in the binary), never typed out a second time.
//!
//! Each schema file becomes a component named after the file
//! (`stock-add.request.json` → `#/components/schemas/stock-add.request`);
//! the only changes are mechanical: `$schema` and `$id` are dropped (the
//! document's dialect is the same JSON Schema 2020-12) and relative `$ref`s
//! between files become references to the components.
//!
//! `beaker openapi` prints the document; `docs/openapi.json` is a copy
//! (`make openapi` refreshes it, and a test fails when it is stale).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::schema::embedded;
use crate::wire::Endpoint;

/// Component name of a schema file: the file name without `.json`.
pub fn component_name(file: &str) -> &str {
    file.strip_suffix(".json").unwrap_or(file)
}

/// A schema file as a component: without `$schema` and `$id`, with its
/// references to sibling files pointing at their components.
pub fn component_from_schema(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("$id");
    }
    rewrite_refs(&mut schema);
    schema
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "$ref"
                    && let Value::String(target) = child
                    && !target.starts_with('#')
                {
                    *target = format!("#/components/schemas/{}", component_name(target));
                    continue;
                }
                rewrite_refs(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The document, as a JSON value.
pub fn document() -> Value {
    let mut schemas = Map::new();
    for (file, text) in embedded::ALL {
        // The embedded schemas are checked by unit tests; a defect here
        // would show as an empty component, never as a panic.
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        schemas.insert(
            component_name(file).to_string(),
            component_from_schema(&value),
        );
    }
    schemas.insert("GatewayError".into(), gateway_error_schema());
    schemas.insert("NatsMessage".into(), nats_message_schema());
    schemas.insert("LowStockMessage".into(), low_stock_message_schema());
    schemas.insert("ServiceInfo".into(), service_info_schema());
    schemas.insert(
        "Health".into(),
        json!({
            "title": "Health",
            "type": "object",
            "properties": {
                "nats": { "enum": ["connected", "disconnected", "pending"] }
            },
            "required": ["nats"],
            "additionalProperties": false
        }),
    );

    let mut paths = Map::new();
    for endpoint in Endpoint::ALL {
        paths.insert(
            format!("{}/{}", super::SUBJECTS_PATH, endpoint.subject()),
            json!({ "post": stock_operation(endpoint) }),
        );
    }
    paths.insert(
        format!("{}/$SRV.INFO.beaker", super::SUBJECTS_PATH),
        json!({ "post": info_operation() }),
    );
    paths.insert(
        format!(
            "{}/{}",
            super::SUBJECTS_PATH,
            crate::wire::LOW_STOCK_SUBJECT
        ),
        json!({ "get": events_operation() }),
    );
    paths.insert(
        format!("{}/{{subject}}", super::SUBJECTS_PATH),
        json!({ "put": publish_operation() }),
    );
    paths.insert("/openapi.json".into(), openapi_operation());
    paths.insert("/healthz".into(), health_operation());
    paths.insert("/".into(), console_operation());

    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Beaker inventory over HTTP",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Add, remove and look up product stock through a NATS HTTP gateway.",
            "description": concat!(
                "Beaker answers NATS requests on `stock.add`, `stock.remove` and `stock.get`. ",
                "Over HTTP it is reached through a gateway shaped like the Synadia Cloud HTTP ",
                "Gateway: in production Synadia's (`https://api.ngs.global`), locally Beaker's own ",
                "(`beaker gateway`, or `beaker serve --gateway`). The same request works against ",
                "both; only the base URL and the token differ.\n\n",
                "A request is `POST /v1/nats/subjects/{subject}` with the JSON body the service ",
                "expects. The gateway answers 200 with the service's reply whenever the service ",
                "replied, successful or not: a refused request is a 200 whose body is ",
                "`{\"ok\":false,\"error\":...}` and whose `NatsH-Nats-Service-Error-Code` header ",
                "carries the service's code (400, 404, 409, 500 or 503). Error statuses (4xx, 5xx) ",
                "come from the gateway itself and carry their reason in the ",
                "`x-nats-api-gateway-error` header.\n\n",
                "HTTP headers prefixed `NatsH-` are sent as NATS headers without the prefix, and ",
                "the reply's NATS headers come back prefixed the same way. `Idempotency-Key` is ",
                "sent as the NATS header `Nats-Msg-Id`."
            ),
            "license": { "name": "MIT", "identifier": "MIT" }
        },
        "servers": [
            {
                "url": "/",
                "description": "The gateway serving this document (Beaker's own gateway listens on http://127.0.0.1:8080 by default)."
            },
            {
                "url": "https://api.ngs.global",
                "description": "Synadia Cloud HTTP Gateway (use a token issued for a NATS user of the account running Beaker)."
            }
        ],
        "security": [ { "bearerAuth": [] } ],
        "tags": [
            { "name": "stock", "description": "The inventory service's endpoints, as NATS subjects." },
            { "name": "messaging", "description": "NATS core messaging: publish and subscribe." },
            { "name": "gateway", "description": "The local gateway's own pages." }
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A gateway token: `Authorization: Bearer <token>`. Locally the tokens come from BEAKER_GATEWAY_TOKENS or BEAKER_GATEWAY_TOKENS_FILE; on Synadia Cloud a token is issued per NATS user. Event streams (GET), which browsers open without headers, may pass it as `?authorization=<token>`."
                }
            },
            "parameters": {
                "timeout": {
                    "name": "timeout",
                    "in": "query",
                    "required": false,
                    "description": "How long to wait for the reply, in milliseconds (default 2000; Beaker's gateway accepts at most BEAKER_GATEWAY_MAX_TIMEOUT_MS, 30000 by default).",
                    "schema": { "type": "integer", "minimum": 1, "maximum": 30000, "default": 2000 }
                },
                "idempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": false,
                    "description": "Sent on NATS as the `Nats-Msg-Id` header. (Any header named `NatsH-<name>` is sent as the NATS header `<name>`.)",
                    "schema": { "type": "string", "minLength": 1, "pattern": "^[!-~]+$" }
                }
            },
            "headers": {
                "GatewayError": {
                    "description": "Why the gateway refused or failed the request.",
                    "schema": { "type": "string" }
                },
                "ServiceError": {
                    "description": "The reply's NATS header `Nats-Service-Error`: present when the service refused or failed the request; the same message as the body's `error`.",
                    "schema": { "type": "string" }
                },
                "ServiceErrorCode": {
                    "description": "The reply's NATS header `Nats-Service-Error-Code`: 400 bad request, 404 unknown product, 409 business rule, 500 internal, 503 unavailable (try again).",
                    "schema": { "type": "string", "enum": ["400", "404", "409", "500", "503"] }
                }
            },
            "responses": {
                "BadRequest": gateway_response("The gateway refused the request: an invalid subject, timeout or header."),
                "Unauthorized": gateway_response("No token, or a token this gateway does not accept. Nothing was forwarded."),
                "Forbidden": gateway_response("The subject is not one this gateway allows. Nothing was forwarded."),
                "PayloadTooLarge": gateway_response("The body is larger than the gateway accepts. Nothing was forwarded."),
                "BadGateway": gateway_response("The gateway cannot reach NATS."),
                "NoResponders": gateway_response("No service is listening on the subject."),
                "Timeout": gateway_response("No reply came within the timeout. The request may still have been applied.")
            },
            "schemas": schemas
        }
    })
}

/// The document as pretty-printed bytes with a final newline: exactly
/// what `GET /openapi.json` serves and `docs/openapi.json` holds.
pub fn document_bytes() -> Bytes {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    Bytes::from(text)
}

fn gateway_response(description: &str) -> Value {
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

fn error_responses(codes: &[(&str, &str)]) -> Map<String, Value> {
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

fn stock_operation(endpoint: Endpoint) -> Value {
    let name = endpoint.name();
    let (summary, description) = match endpoint {
        Endpoint::Add => (
            "Add units of a product",
            "Adds `quantity` units to the product's stock; a product never stocked starts at 0. The reply carries the level after the add.",
        ),
        Endpoint::Remove => (
            "Remove units of a product",
            "Removes `quantity` units. An unknown product is refused (404); a remove that would take the level below 0 is refused (409) and changes nothing. When the level drops below 10, a low-stock event is published on `events.low_stock`.",
        ),
        Endpoint::Get => (
            "Look up a product's stock level",
            "The current level; 0 for a product never stocked. Writes nothing.",
        ),
    };
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

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn info_operation() -> Value {
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

fn events_operation() -> Value {
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

fn publish_operation() -> Value {
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

fn openapi_operation() -> Value {
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

fn health_operation() -> Value {
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

fn console_operation() -> Value {
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

fn gateway_error_schema() -> Value {
    json!({
        "title": "GatewayError",
        "description": "An error answered by the gateway itself; the same text is in the `x-nats-api-gateway-error` header.",
        "type": "object",
        "properties": { "message": { "type": "string" } },
        "required": ["message"],
        "additionalProperties": false
    })
}

fn nats_message_schema() -> Value {
    json!({
        "title": "NatsMessage",
        "description": "A NATS message, as the gateway's JSON envelope. `headers` maps each header to its first value (as Synadia's OpenAPI document describes it); `header` maps each header to all its values (as Synadia's client library reads it).",
        "type": "object",
        "properties": {
            "subject": { "type": "string", "description": "The message's subject (for a reply: the requester's inbox)." },
            "reply": { "type": "string", "description": "The message's reply subject, when it has one." },
            "headers": { "type": "object", "additionalProperties": { "type": "string" } },
            "header": {
                "type": "object",
                "additionalProperties": { "type": "array", "items": { "type": "string" } }
            },
            "data": {
                "type": "string",
                "contentEncoding": "base64",
                "description": "The payload, base64 (standard alphabet, padded)."
            }
        },
        "required": ["subject", "headers", "header", "data"],
        "additionalProperties": false
    })
}

fn low_stock_message_schema() -> Value {
    json!({
        "title": "LowStockMessage",
        "description": "A message from `events.low_stock` as a `msg` event's data: the envelope, whose `data` is a low-stock event in JSON, base64.",
        "allOf": [ schema_ref("NatsMessage") ],
        "properties": {
            "subject": { "const": crate::wire::LOW_STOCK_SUBJECT },
            "data": {
                "contentMediaType": "application/json",
                "contentSchema": schema_ref("low-stock.event")
            }
        }
    })
}

fn service_info_schema() -> Value {
    json!({
        "title": "ServiceInfo",
        "description": "The NATS micro INFO reply (io.nats.micro.v1.info_response); its metadata names the rules serving requests.",
        "type": "object",
        "properties": {
            "type": { "const": "io.nats.micro.v1.info_response" },
            "name": { "type": "string" },
            "id": { "type": "string" },
            "version": { "type": "string" },
            "description": { "type": "string" },
            "metadata": {
                "type": "object",
                "properties": {
                    "rules_name": { "type": "string" },
                    "rules_version": { "type": "string" },
                    "rules_digest": { "type": "string", "description": "SHA-256 of the rules component, hex." },
                    "rules_since": { "type": "string", "format": "date-time" }
                },
                "additionalProperties": { "type": "string" }
            },
            "endpoints": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "subject": { "type": "string" },
                        "queue_group": { "type": "string" }
                    }
                }
            }
        },
        "required": ["type", "name", "id", "version", "metadata", "endpoints"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves_inside_the_document() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for reference in refs {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{reference} is not local"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{reference} does not resolve"
            );
        }
    }

    #[test]
    fn schema_files_become_components_unchanged_but_for_references() {
        let doc = document();
        let component = &doc["components"]["schemas"]["stock-add.request"];
        assert_eq!(
            component["properties"]["product-sku"]["$ref"],
            "#/components/schemas/product-sku"
        );
        assert!(component.get("$id").is_none());
        assert!(component.get("$schema").is_none());
        assert_eq!(component["additionalProperties"], false);
    }

    fn collect_refs(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref"
                        && let Some(target) = child.as_str()
                    {
                        into.push(target.to_string());
                    }
                    collect_refs(child, into);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect_refs(i, into)),
            _ => {}
        }
    }
}
