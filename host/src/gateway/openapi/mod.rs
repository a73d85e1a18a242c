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

mod paths;
pub use paths::summary;
mod schemas;

use crate::contract::schema::embedded;
use crate::contract::wire::Endpoint;
use paths::{
    asyncapi_operation, console_operation, events_operation, gateway_response, health_operation,
    info_operation, openapi_operation, publish_operation, stock_operation,
};
use schemas::{
    gateway_error_schema, low_stock_message_schema, nats_message_schema, service_info_schema,
};

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

pub(super) fn schema_ref(name: &str) -> Value {
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
            crate::contract::wire::LOW_STOCK_SUBJECT
        ),
        json!({ "get": events_operation() }),
    );
    paths.insert(
        format!("{}/{{subject}}", super::SUBJECTS_PATH),
        json!({ "put": publish_operation() }),
    );
    paths.insert("/openapi.json".into(), openapi_operation());
    paths.insert("/asyncapi.json".into(), asyncapi_operation());
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
    pretty_bytes(&document())
}

/// A generated document as it is served and checked in: pretty-printed,
/// with a final newline (the AsyncAPI document too).
pub(in crate::gateway) fn pretty_bytes(document: &Value) -> Bytes {
    let mut text = serde_json::to_string_pretty(document).unwrap_or_default();
    text.push('\n');
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
