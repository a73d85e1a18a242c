//! The property of the `request` fuzz target: request decoding and
//! validation, fed arbitrary bytes on any endpoint.
//!
//! Whatever arrives, the host answers: `decode_request` never panics; what
//! it refuses gets a 400 whose body is a schema-valid reply of that
//! endpoint; what it accepts respects the bounds the schemas state (so it
//! can never fail later on a database constraint) and decodes again to the
//! same request from its canonical text. And whatever the bytes, the
//! result (the request and its canonical text, or the exact refusal) is
//! the one the JSON Schema alone gives: the fast path for well-formed
//! requests changes nothing but the cost.
//!
//! Shared, as source, by `fuzz/fuzz_targets/request.rs` (`make fuzz`) and by
//! the short random run of `make test` (`tests/tests/e2e/properties.rs`).
//! It panics on a violation: that is how both report one.

use beaker::contract::bounds::BOUNDS;
use beaker::contract::schema::Schemas;
use beaker::contract::wire::Endpoint;
use beaker::inventory::{decode_by_schema, decode_request};

/// The service's default limit on request bodies.
pub const MAX_REQUEST_BYTES: usize = 16384;

/// Checks one input: its first byte picks the endpoint, the rest is the
/// payload. True when the request was accepted.
pub fn check(schemas: &Schemas, data: &[u8]) -> bool {
    let Some((&selector, payload)) = data.split_first() else {
        return false;
    };
    let endpoint = Endpoint::STOCK[usize::from(selector) % Endpoint::STOCK.len()];
    let decoded = decode_request(schemas, endpoint, payload, MAX_REQUEST_BYTES);
    // Past the size, emptiness and UTF-8 checks, the schema is the judge.
    if payload.len() <= MAX_REQUEST_BYTES
        && let Ok(text) = std::str::from_utf8(payload)
        && !payload.iter().all(u8::is_ascii_whitespace)
    {
        assert_eq!(
            decoded,
            decode_by_schema(schemas, endpoint, text),
            "{endpoint:?} {text:?}: the fast path and the schema disagree"
        );
    }
    match decoded {
        Err(reply) => {
            let (code, _) = reply.failure().expect("a refusal is a failure");
            assert_eq!(
                code,
                400,
                "only the caller's mistakes: {}",
                reply.body_text()
            );
            let body: serde_json::Value =
                serde_json::from_str(&reply.body_text()).expect("the reply is JSON");
            schemas
                .check_response(endpoint, &body)
                .expect("the refusal is a schema-valid reply");
            false
        }
        Ok((request, canonical)) => {
            let sku = &request.sku;
            assert!(
                !sku.is_empty() && sku.len() <= BOUNDS.max_sku_len,
                "{sku:?}"
            );
            assert!(
                sku.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{sku:?}"
            );
            match (endpoint, request.quantity) {
                (Endpoint::Get, _) => {}
                (_, Some(q)) => assert!(
                    (BOUNDS.min_quantity..=BOUNDS.max_quantity).contains(&q),
                    "quantity {q}"
                ),
                (_, None) => panic!("a change without a quantity was accepted"),
            }
            let again = decode_request(schemas, endpoint, canonical.as_bytes(), usize::MAX)
                .expect("the canonical text is accepted too");
            assert_eq!(again.0, request);
            assert_eq!(again.1, canonical);
            true
        }
    }
}
