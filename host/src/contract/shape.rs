//! The request and reply schemas, applied to typed values instead of JSON
//! trees, on the request path.
//!
//! **Requests.** A well-formed request is decoded straight into its type
//! and its values checked against the schemas' bounds
//! ([`decode_valid`]); anything else — a field missing or unknown, a
//! number written `5.0`, a duplicate key, a bound crossed — is left to the
//! JSON Schema, which then says precisely what is wrong. The fuzz target
//! `request` and its short run in `make test` hold the two paths to the
//! same result for any bytes.
//!
//! **Replies.** Every reply must match its response schema before it
//! leaves the host.
//! A reply is built from a Rust type whose JSON form is fixed
//! (`{"ok":true,"product-sku":…,"quantity":…}` or
//! `{"ok":false,"error":…}`), so only its values can stray: the SKU, the
//! level, the message. Checking those against the schemas' bounds is the
//! same check as validating the serialised body with the JSON Schema, at
//! a fraction of the cost (no serialising, parsing and walking the schema
//! per request). The tests below hold the two to exactly the same answers
//! over the edges of every bound and thousands of random replies, for
//! every endpoint; a schema that changes without this module fails them.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use super::bounds::BOUNDS;
use super::wire::{Endpoint, Reply, StockRequest};

/// A request as a well-formed client writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain<'a> {
    #[serde(rename = "product-sku", borrow)]
    sku: Cow<'a, str>,
    #[serde(default, deserialize_with = "present")]
    quantity: Option<u64>,
}

/// A quantity that is there: `null` is not absent (the schema refuses it).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    u64::deserialize(deserializer).map(Some)
}

/// The request in `text` and its canonical JSON text (keys sorted, no
/// spaces), when the schema of `endpoint` certainly accepts it; `None`
/// when unsure, and the JSON Schema must judge.
pub fn decode_valid(endpoint: Endpoint, text: &str) -> Option<(StockRequest, String)> {
    // serde would also take a struct written as an array: only an object
    // is a request.
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return None;
    }
    let plain: Plain<'_> = serde_json::from_str(text).ok()?;
    if !valid_sku(&plain.sku) {
        return None;
    }
    let quantity = match (endpoint, plain.quantity) {
        (Endpoint::Get, None) => None,
        (Endpoint::Add | Endpoint::Remove, Some(q)) => Some(
            u32::try_from(q)
                .ok()
                .filter(|q| (BOUNDS.min_quantity..=BOUNDS.max_quantity).contains(q))?,
        ),
        _ => return None,
    };
    // A valid SKU needs no escaping.
    let canonical = match quantity {
        None => format!(r#"{{"product-sku":"{}"}}"#, plain.sku),
        Some(q) => format!(r#"{{"product-sku":"{}","quantity":{q}}}"#, plain.sku),
    };
    let request = StockRequest {
        sku: plain.sku.into_owned(),
        quantity,
    };
    Some((request, canonical))
}

/// Whether `sku` is a valid product SKU (`product-sku.json`).
pub fn valid_sku(sku: &str) -> bool {
    !sku.is_empty()
        && sku.len() <= BOUNDS.max_sku_len
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `Ok` when the body `reply` sends matches the response schema of every
/// endpoint (they share one shape); otherwise what does not. A stored reply
/// sent again was checked when it was first sent.
pub fn check_reply(reply: &Reply) -> Result<(), String> {
    match reply {
        Reply::Ok { sku, level } => {
            if !valid_sku(sku) {
                return Err(format!("/product-sku: {sku:?} is not a valid SKU"));
            }
            if *level > BOUNDS.max_stock_level {
                return Err(format!(
                    "/quantity: {level} is above the highest stock level, {}",
                    BOUNDS.max_stock_level
                ));
            }
            Ok(())
        }
        Reply::Err { message, .. } if message.is_empty() => {
            Err("/error: the message is empty".into())
        }
        // A history page is checked against its JSON Schema where it is
        // built (off the hot path, and too varied for a cheap check).
        Reply::Err { .. } | Reply::Replay { .. } | Reply::History(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::schema::Schemas;
    use crate::contract::wire::ErrorCode;

    #[test]
    fn well_formed_requests_decode_without_the_schema() {
        let add = decode_valid(
            Endpoint::Add,
            r#" { "quantity" : 5, "product-sku":"a-1" } "#,
        );
        assert_eq!(
            add,
            Some((
                StockRequest {
                    sku: "a-1".into(),
                    quantity: Some(5)
                },
                r#"{"product-sku":"a-1","quantity":5}"#.to_string()
            ))
        );
        let get = decode_valid(Endpoint::Get, r#"{"product-sku":"\u0061"}"#);
        assert_eq!(
            get.map(|(r, c)| (r.sku, c)),
            Some(("a".into(), r#"{"product-sku":"a"}"#.into()))
        );
    }

    #[test]
    fn anything_unusual_is_left_to_the_schema() {
        for (endpoint, text) in [
            (Endpoint::Add, r#"{"product-sku":"a","quantity":5.0}"#),
            (Endpoint::Add, r#"{"product-sku":"a","quantity":0}"#),
            (Endpoint::Add, r#"{"product-sku":"a","quantity":null}"#),
            (Endpoint::Add, r#"{"product-sku":"a"}"#),
            (
                Endpoint::Add,
                r#"{"product-sku":"a","quantity":1,"quantity":2}"#,
            ),
            (Endpoint::Add, r#"{"product-sku":"a b","quantity":1}"#),
            (
                Endpoint::Remove,
                r#"{"product-sku":"a","quantity":1,"x":1}"#,
            ),
            (Endpoint::Get, r#"{"product-sku":"a","quantity":1}"#),
            (Endpoint::Get, r#"{"product-sku":"a","quantity":null}"#),
            (Endpoint::Get, r#"["a"]"#),
        ] {
            assert_eq!(decode_valid(endpoint, text), None, "{endpoint:?} {text}");
        }
    }

    /// The cheap check and the JSON Schema agree on `reply`, for every
    /// endpoint.
    fn agree(schemas: &Schemas, reply: &Reply) {
        let body: serde_json::Value =
            serde_json::from_str(&reply.body_text()).expect("a reply body is JSON");
        for endpoint in Endpoint::STOCK {
            let schema = schemas.check_response(endpoint, &body);
            assert_eq!(
                check_reply(reply).is_ok(),
                schema.is_ok(),
                "{endpoint:?} {reply:?}: cheap {:?}, schema {schema:?}",
                check_reply(reply)
            );
        }
    }

    fn ok(sku: &str, level: u32) -> Reply {
        Reply::Ok {
            sku: sku.to_string(),
            level,
        }
    }

    #[test]
    fn the_edges_of_every_bound_are_judged_as_the_schema_judges_them() {
        let schemas = Schemas::compile().expect("the embedded schemas compile");
        let longest = "a".repeat(BOUNDS.max_sku_len);
        let too_long = "a".repeat(BOUNDS.max_sku_len + 1);
        let max = BOUNDS.max_stock_level;
        for sku in [
            "a",
            "Z",
            "0",
            "_",
            "-",
            "widget-42",
            &longest,
            &too_long,
            "",
            " ",
            "a b",
            "é",
            "a.b",
            "a/b",
            "a\n",
            "\u{0}",
            "ä-1",
        ] {
            for level in [0, 1, max - 1, max, max + 1, u32::MAX] {
                agree(&schemas, &ok(sku, level));
            }
        }
        for message in ["", "x", "the service is busy; try again shortly", "\n"] {
            agree(&schemas, &Reply::error(ErrorCode::Conflict, message));
        }
    }

    #[test]
    fn random_replies_are_judged_as_the_schema_judges_them() {
        let schemas = Schemas::compile().expect("the embedded schemas compile");
        let mut rng = fastrand::Rng::with_seed(0xbeac);
        // Mostly valid characters, now and then not, so that both answers
        // are common.
        let valid: Vec<char> = "abcXYZ019_-".chars().collect();
        let invalid: Vec<char> = " .é/\u{7f}\"\\".chars().collect();
        for _ in 0..5_000 {
            let len = rng.usize(0..=BOUNDS.max_sku_len + 2);
            let sku: String = (0..len)
                .map(|_| match rng.u8(..50) {
                    0 => invalid[rng.usize(..invalid.len())],
                    _ => valid[rng.usize(..valid.len())],
                })
                .collect();
            let level = match rng.u8(..4) {
                0 => rng.u32(..),
                _ => rng.u32(BOUNDS.max_stock_level - 2..=BOUNDS.max_stock_level + 2),
            };
            agree(&schemas, &ok(&sku, level));
        }
    }
}
