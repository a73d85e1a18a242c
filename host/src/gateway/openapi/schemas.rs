//! The schemas the gateway adds to those of `schemas/`: its own error,
//! the JSON envelope of a NATS message, the events and the micro INFO
//! reply as they arrive through it.

use serde_json::{Value, json};

use super::schema_ref;

pub(super) fn gateway_error_schema() -> Value {
    json!({
        "title": "GatewayError",
        "description": "An error answered by the gateway itself; the same text is in the `x-nats-api-gateway-error` header.",
        "type": "object",
        "properties": { "message": { "type": "string" } },
        "required": ["message"],
        "additionalProperties": false
    })
}

pub(super) fn nats_message_schema() -> Value {
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

pub(super) fn low_stock_message_schema() -> Value {
    json!({
        "title": "LowStockMessage",
        "description": "A message from `events.low_stock` as a `msg` event's data: the envelope, whose `data` is a low-stock event in JSON, base64.",
        "allOf": [ schema_ref("NatsMessage") ],
        "properties": {
            "subject": { "const": crate::contract::wire::LOW_STOCK_SUBJECT },
            "data": {
                "contentMediaType": "application/json",
                "contentSchema": schema_ref("low-stock.event")
            }
        }
    })
}

pub(super) fn service_info_schema() -> Value {
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
