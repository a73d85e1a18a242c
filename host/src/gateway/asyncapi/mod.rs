//! The AsyncAPI 3.0 document of the NATS side: the `stock.*` request/reply
//! endpoints and the low-stock events with their JetStream stream. Like
//! the OpenAPI document it is generated from the JSON Schemas in
//! `schemas/`, made into components the same way
//! ([`super::openapi::component_from_schema`]), so the two never disagree
//! about a payload.
//!
//! It describes the service as an application: it *receives* requests
//! (and replies on the requester's inbox) and *sends* events. AsyncAPI's
//! NATS bindings know only an operation's queue group; what a consumer
//! needs to know about the stream is in the low-stock channel's
//! `x-jetstream` extension, and a test holds it to the stream a running
//! host creates.
//!
//! `beaker asyncapi` prints it, the gateway serves it at `/asyncapi.json`,
//! and `docs/asyncapi.json` is a copy (`make asyncapi` refreshes it, and a
//! test fails when it is stale).

use bytes::Bytes;
use serde_json::{Map, Value, json};

mod messages;

use super::openapi::{component_from_schema, component_name};
use crate::contract::schema::embedded;
use crate::contract::wire::{Endpoint, IDEMPOTENCY_HEADER, LOW_STOCK_SUBJECT};
use messages::{LOW_STOCK_KEY, header_schemas, reply_key, request_key};

/// The queue group the endpoints join unless BEAKER_QUEUE_GROUP says
/// otherwise.
const QUEUE_GROUP: &str = "q";

/// The events stream as a host creates it with its default settings.
fn jetstream() -> Value {
    json!({
        "stream": "BEAKER_EVENTS",
        "subjects": ["events.>"],
        "retention": "limits",
        "discard": "old",
        "storage": "file",
        "maxAge": "7d",
        "duplicateWindow": "2h",
        "replicas": 1,
        "deduplicationHeader": IDEMPOTENCY_HEADER,
        "settings": "BEAKER_EVENTS_STREAM, BEAKER_EVENTS_SUBJECTS, BEAKER_EVENTS_STORAGE, BEAKER_EVENTS_MAX_AGE, BEAKER_EVENTS_MAX_BYTES, BEAKER_EVENTS_DUPLICATE_WINDOW, BEAKER_EVENTS_REPLICAS"
    })
}

/// `stock.add` → `stockAdd`: the id of an endpoint's channel and operation.
fn id(endpoint: Endpoint) -> String {
    let name = endpoint.name();
    let mut chars = name.chars();
    let capitalized = chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default();
    format!("stock{capitalized}")
}

fn message_ref(key: &str) -> Value {
    json!({ "$ref": format!("#/components/messages/{key}") })
}

fn channels() -> Map<String, Value> {
    let mut channels = Map::new();
    for endpoint in Endpoint::ALL {
        let id = id(endpoint);
        channels.insert(
            id.clone(),
            json!({
                "address": endpoint.subject(),
                "title": endpoint.subject(),
                "description": format!("Requests on `{}`, served by every instance in the queue group.", endpoint.subject()),
                "messages": { "request": message_ref(&request_key(endpoint)) }
            }),
        );
        channels.insert(
            format!("{id}Reply"),
            json!({
                "address": null,
                "title": format!("{} reply", endpoint.subject()),
                "description": "The requester's inbox: the request's reply subject, chosen by the client.",
                "messages": { "reply": message_ref(&reply_key(endpoint)) }
            }),
        );
    }
    channels.insert(
        "lowStock".into(),
        json!({
            "address": LOW_STOCK_SUBJECT,
            "title": LOW_STOCK_SUBJECT,
            "description": concat!(
                "Low-stock events, kept in the JetStream stream `BEAKER_EVENTS` (subjects `events.>`, ",
                "limits retention, discard old, file storage, kept 7 days, duplicate window 2 hours, ",
                "1 replica; each setting is a BEAKER_EVENTS_* variable, see `x-jetstream`). ",
                "An event is published if and only if its change committed, at least once, with its id in ",
                "`Nats-Msg-Id`: JetStream keeps one copy per id within the duplicate window, so a consumer ",
                "reading the stream (a durable consumer catches up after being offline) sees each once. ",
                "Subscribing to the subject with core NATS sees only events published while subscribed."
            ),
            "messages": { "lowStock": message_ref(LOW_STOCK_KEY) },
            "x-jetstream": jetstream()
        }),
    );
    channels
}

fn operations() -> Map<String, Value> {
    let mut operations = Map::new();
    for endpoint in Endpoint::ALL {
        let id = id(endpoint);
        let (summary, description) = crate::gateway::openapi::summary(endpoint);
        operations.insert(
            id.clone(),
            json!({
                "action": "receive",
                "channel": { "$ref": format!("#/channels/{id}") },
                "title": endpoint.subject(),
                "summary": summary,
                "description": description,
                "tags": [ { "name": "stock" } ],
                "messages": [ { "$ref": format!("#/channels/{id}/messages/request") } ],
                "reply": {
                    "channel": { "$ref": format!("#/channels/{id}Reply") },
                    "messages": [ { "$ref": format!("#/channels/{id}Reply/messages/reply") } ]
                },
                "bindings": { "nats": { "queue": QUEUE_GROUP, "bindingVersion": "0.1.0" } }
            }),
        );
    }
    operations.insert(
        "publishLowStock".into(),
        json!({
            "action": "send",
            "channel": { "$ref": "#/channels/lowStock" },
            "title": LOW_STOCK_SUBJECT,
            "summary": "Publish a low-stock event after a committed change",
            "description": "The outbox relay publishes each event to JetStream and waits for the stream's acknowledgement; an event not acknowledged is published again, with the same `Nats-Msg-Id`.",
            "tags": [ { "name": "events" } ],
            "messages": [ { "$ref": "#/channels/lowStock/messages/lowStock" } ]
        }),
    );
    operations
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
    schemas.extend(header_schemas());

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Beaker inventory over NATS",
            "version": env!("CARGO_PKG_VERSION"),
            "description": concat!(
                "Beaker is a NATS micro service named `beaker`: it answers requests on `stock.add`, ",
                "`stock.remove` and `stock.get` (the endpoints of its group `stock`, in the queue group ",
                "`q` by default, so any number of instances share the load) and publishes low-stock ",
                "events on `events.low_stock` into the JetStream stream `BEAKER_EVENTS`. It also answers ",
                "the NATS micro discovery subjects `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`.\n\n",
                "Bodies are JSON. Every request gets exactly one reply: `{\"ok\":true,...}` on success, ",
                "`{\"ok\":false,\"error\":...}` on failure with the NATS micro headers `Nats-Service-Error` ",
                "and `Nats-Service-Error-Code`. Payload schemas are those of `schemas/` (JSON Schema, with ",
                "cross-file references made into references to components)."
            ),
            "license": { "name": "MIT" },
            "tags": [
                { "name": "stock", "description": "The inventory service's endpoints." },
                { "name": "events", "description": "Events kept in JetStream." }
            ]
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "title": "Local NATS",
                "description": "The NATS server `make run` uses (NATS_URL), with JetStream enabled."
            },
            "synadia": {
                "host": "connect.ngs.global",
                "protocol": "nats",
                "title": "Synadia Cloud",
                "description": "Synadia Cloud over TLS (`tls://connect.ngs.global`), with a NATS user's credentials file (NATS_CREDS)."
            }
        },
        "channels": channels(),
        "operations": operations(),
        "components": {
            "schemas": schemas,
            "messages": messages::messages()
        }
    })
}

/// The document as pretty-printed bytes with a final newline: exactly
/// what `GET /asyncapi.json` serves and `docs/asyncapi.json` holds.
pub fn document_bytes() -> Bytes {
    crate::gateway::openapi::pretty_bytes(&document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation's messages and reply are the channel's, as AsyncAPI
    /// 3 requires, and every reference resolves.
    #[test]
    fn operations_use_their_channels_messages_and_references_resolve() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 20, "{refs:?}");
        for reference in refs {
            let pointer = reference.strip_prefix('#').unwrap_or("not local");
            assert!(
                doc.pointer(pointer).is_some(),
                "{reference} does not resolve"
            );
        }
        let add = &doc["operations"]["stockAdd"];
        assert_eq!(add["channel"]["$ref"], "#/channels/stockAdd");
        assert_eq!(doc["channels"]["stockAdd"]["address"], "stock.add");
        assert_eq!(
            doc["components"]["messages"]["stock-add.reply"]["payload"]["$ref"],
            "#/components/schemas/stock-add.response"
        );
    }

    fn collect_refs(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match (key.as_str(), child.as_str()) {
                        ("$ref", Some(target)) => into.push(target.to_string()),
                        _ => collect_refs(child, into),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect_refs(i, into)),
            _ => {}
        }
    }
}
