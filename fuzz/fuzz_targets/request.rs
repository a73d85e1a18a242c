//! Request decoding and validation, fed arbitrary bytes on every endpoint.
//!
//! Whatever arrives, the host answers: `decode_request` never panics; what
//! it refuses gets a 400 whose body is a schema-valid reply of that
//! endpoint; what it accepts respects the bounds the schemas state (so it
//! can never fail later on a database constraint) and decodes again to the
//! same request from its canonical text.
#![no_main]

use std::sync::LazyLock;

use beaker::bounds::BOUNDS;
use beaker::schema::Schemas;
use beaker::service::decode_request;
use beaker::wire::Endpoint;
use libfuzzer_sys::fuzz_target;

static SCHEMAS: LazyLock<Schemas> =
    LazyLock::new(|| Schemas::compile().expect("the embedded schemas compile"));

/// The service's default limit on request bodies.
const MAX_REQUEST_BYTES: usize = 16384;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let endpoint = Endpoint::ALL[usize::from(selector) % Endpoint::ALL.len()];
    match decode_request(&SCHEMAS, endpoint, payload, MAX_REQUEST_BYTES) {
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
            SCHEMAS
                .check_response(endpoint, &body)
                .expect("the refusal is a schema-valid reply");
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
            let again = decode_request(&SCHEMAS, endpoint, canonical.as_bytes(), usize::MAX)
                .expect("the canonical text is accepted too");
            assert_eq!(again.0, request);
            assert_eq!(again.1, canonical);
        }
    }
});
