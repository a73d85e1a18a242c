//! JSON Schema validation of every request, response and event, with the
//! schemas in `schemas/` compiled once at start.
//!
//! Requests are checked before anything else happens so that a caller's
//! mistake gets a precise message; responses and events are checked before
//! they leave the host so that what we send always matches what we
//! document.

use jsonschema::{Registry, Resource, Validator};
use serde_json::Value;

use crate::contract::wire::Endpoint;

/// The schema files, embedded so the binary needs no files at run time.
pub mod embedded {
    pub const PRODUCT_SKU: &str = include_str!("../../../schemas/product-sku.json");
    pub const QUANTITY: &str = include_str!("../../../schemas/quantity.json");
    pub const STOCK_LEVEL: &str = include_str!("../../../schemas/stock-level.json");
    pub const STOCK_ADD_REQUEST: &str = include_str!("../../../schemas/stock-add.request.json");
    pub const STOCK_ADD_RESPONSE: &str = include_str!("../../../schemas/stock-add.response.json");
    pub const STOCK_REMOVE_REQUEST: &str =
        include_str!("../../../schemas/stock-remove.request.json");
    pub const STOCK_REMOVE_RESPONSE: &str =
        include_str!("../../../schemas/stock-remove.response.json");
    pub const STOCK_GET_REQUEST: &str = include_str!("../../../schemas/stock-get.request.json");
    pub const STOCK_GET_RESPONSE: &str = include_str!("../../../schemas/stock-get.response.json");
    pub const STOCK_HISTORY_REQUEST: &str =
        include_str!("../../../schemas/stock-history.request.json");
    pub const STOCK_HISTORY_RESPONSE: &str =
        include_str!("../../../schemas/stock-history.response.json");
    pub const LOW_STOCK_EVENT: &str = include_str!("../../../schemas/low-stock.event.json");

    /// Every schema with its file name, in a stable order.
    pub const ALL: [(&str, &str); 12] = [
        ("product-sku.json", PRODUCT_SKU),
        ("quantity.json", QUANTITY),
        ("stock-level.json", STOCK_LEVEL),
        ("stock-add.request.json", STOCK_ADD_REQUEST),
        ("stock-add.response.json", STOCK_ADD_RESPONSE),
        ("stock-remove.request.json", STOCK_REMOVE_REQUEST),
        ("stock-remove.response.json", STOCK_REMOVE_RESPONSE),
        ("stock-get.request.json", STOCK_GET_REQUEST),
        ("stock-get.response.json", STOCK_GET_RESPONSE),
        ("stock-history.request.json", STOCK_HISTORY_REQUEST),
        ("stock-history.response.json", STOCK_HISTORY_RESPONSE),
        ("low-stock.event.json", LOW_STOCK_EVENT),
    ];
}

/// The base of every schema's `$id`; `$ref`s between them are relative.
pub const SCHEMA_BASE: &str = "https://beaker.invalid/schemas/";

/// Why the schemas could not be compiled. Only a build defect causes this.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {name} is not JSON: {source}")]
    NotJson {
        name: &'static str,
        source: serde_json::Error,
    },
    #[error("schema {name} does not compile: {message}")]
    Invalid { name: &'static str, message: String },
}

/// The longest validation message we pass on: a message quotes the
/// offending value, which may be a megabyte long.
const MAX_MESSAGE_CHARS: usize = 240;

/// Compiled validators for every document the service reads or writes.
pub struct Schemas {
    add_request: Validator,
    add_response: Validator,
    remove_request: Validator,
    remove_response: Validator,
    get_request: Validator,
    get_response: Validator,
    history_request: Validator,
    history_response: Validator,
    low_stock_event: Validator,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas").finish_non_exhaustive()
    }
}

impl Schemas {
    /// Compiles every schema; references between them resolve offline.
    pub fn compile() -> Result<Self, SchemaError> {
        let mut documents = Vec::with_capacity(embedded::ALL.len());
        for (name, text) in embedded::ALL {
            let value: Value = serde_json::from_str(text)
                .map_err(|source| SchemaError::NotJson { name, source })?;
            documents.push((name, value));
        }
        let registry = Registry::new()
            .extend(documents.iter().map(|(name, value)| {
                (
                    format!("{SCHEMA_BASE}{name}"),
                    Resource::from_contents(value.clone()),
                )
            }))
            .and_then(|builder| builder.prepare())
            .map_err(|e| SchemaError::Invalid {
                name: "registry",
                message: e.to_string(),
            })?;
        let build = |name: &'static str| -> Result<Validator, SchemaError> {
            let (_, schema) =
                documents
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or(SchemaError::Invalid {
                        name,
                        message: "missing".into(),
                    })?;
            jsonschema::options()
                .with_registry(&registry)
                .build(schema)
                .map_err(|e| SchemaError::Invalid {
                    name,
                    message: e.to_string(),
                })
        };
        Ok(Self {
            add_request: build("stock-add.request.json")?,
            add_response: build("stock-add.response.json")?,
            remove_request: build("stock-remove.request.json")?,
            remove_response: build("stock-remove.response.json")?,
            get_request: build("stock-get.request.json")?,
            get_response: build("stock-get.response.json")?,
            history_request: build("stock-history.request.json")?,
            history_response: build("stock-history.response.json")?,
            low_stock_event: build("low-stock.event.json")?,
        })
    }

    /// Checks a request; the error is a message for the caller.
    pub fn check_request(&self, endpoint: Endpoint, request: &Value) -> Result<(), String> {
        let validator = match endpoint {
            Endpoint::Add => &self.add_request,
            Endpoint::Remove => &self.remove_request,
            Endpoint::Get => &self.get_request,
            Endpoint::History => &self.history_request,
        };
        first_error(validator, request)
    }

    /// Checks a response before it is sent.
    pub fn check_response(&self, endpoint: Endpoint, response: &Value) -> Result<(), String> {
        let validator = match endpoint {
            Endpoint::Add => &self.add_response,
            Endpoint::Remove => &self.remove_response,
            Endpoint::Get => &self.get_response,
            Endpoint::History => &self.history_response,
        };
        first_error(validator, response)
    }

    /// Checks a low-stock event before it is stored for publication.
    pub fn check_low_stock_event(&self, event: &Value) -> Result<(), String> {
        first_error(&self.low_stock_event, event)
    }
}

/// The first validation error as `"/path: message"`, shortened for callers.
fn first_error(validator: &Validator, instance: &Value) -> Result<(), String> {
    match validator.iter_errors(instance).next() {
        None => Ok(()),
        Some(error) => {
            let path = error.instance_path().to_string();
            let message = if path.is_empty() {
                error.to_string()
            } else {
                format!("{path}: {error}")
            };
            Err(shorten(&message))
        }
    }
}

/// Cuts a message to [`MAX_MESSAGE_CHARS`] characters on a char boundary.
pub fn shorten(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message.to_string(),
        Some((cut, _)) => format!("{}…", &message[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contract::bounds::BOUNDS;

    fn schemas() -> Schemas {
        Schemas::compile().expect("embedded schemas compile")
    }

    #[test]
    fn accepts_the_reference_services_requests() {
        let s = schemas();
        let add = json!({"product-sku": "widget-1", "quantity": 5});
        assert_eq!(s.check_request(Endpoint::Add, &add), Ok(()));
        assert_eq!(s.check_request(Endpoint::Remove, &add), Ok(()));
        assert_eq!(
            s.check_request(Endpoint::Get, &json!({"product-sku": "Widget_1"})),
            Ok(())
        );
    }

    #[test]
    fn sku_bounds_match_the_stated_maximum() {
        let s = schemas();
        let longest = "a".repeat(BOUNDS.max_sku_len);
        let too_long = "a".repeat(BOUNDS.max_sku_len + 1);
        assert_eq!(
            s.check_request(Endpoint::Get, &json!({"product-sku": longest})),
            Ok(())
        );
        let err = s
            .check_request(Endpoint::Get, &json!({"product-sku": too_long}))
            .expect_err("51 characters is too long");
        assert!(err.contains("/product-sku"), "{err}");
        for bad in ["", "has space", "ünï", "semi;colon", "dot.ted"] {
            assert!(
                s.check_request(Endpoint::Get, &json!({"product-sku": bad}))
                    .is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn quantity_bounds_match_the_stated_range() {
        let s = schemas();
        let with = |q: Value| json!({"product-sku": "a", "quantity": q});
        assert!(
            s.check_request(Endpoint::Add, &with(json!(BOUNDS.min_quantity)))
                .is_ok()
        );
        assert!(
            s.check_request(Endpoint::Add, &with(json!(BOUNDS.max_quantity)))
                .is_ok()
        );
        for bad in [
            json!(0),
            json!(-1),
            json!(BOUNDS.max_quantity + 1),
            json!(1.5),
            json!("5"),
            json!(null),
        ] {
            assert!(
                s.check_request(Endpoint::Remove, &with(bad.clone()))
                    .is_err(),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn refuses_extra_and_missing_fields() {
        let s = schemas();
        let err = s
            .check_request(
                Endpoint::Add,
                &json!({"product-sku": "a", "quantity": 1, "price": 3}),
            )
            .expect_err("extra field");
        assert!(err.contains("price"), "{err}");
        let err = s
            .check_request(Endpoint::Add, &json!({"product-sku": "a"}))
            .expect_err("missing field");
        assert!(err.contains("quantity"), "{err}");
        assert!(s.check_request(Endpoint::Get, &json!([])).is_err());
    }

    #[test]
    fn long_values_are_cut_from_messages() {
        let s = schemas();
        let err = s
            .check_request(Endpoint::Get, &json!({"product-sku": "x".repeat(100_000)}))
            .expect_err("too long");
        assert!(
            err.chars().count() <= MAX_MESSAGE_CHARS + 1,
            "{}",
            err.len()
        );
    }

    #[test]
    fn responses_follow_the_documented_shapes() {
        let s = schemas();
        for endpoint in [Endpoint::Add, Endpoint::Remove, Endpoint::Get] {
            assert!(
                s.check_response(
                    endpoint,
                    &json!({"ok": true, "product-sku": "a", "quantity": 0})
                )
                .is_ok()
            );
            assert!(
                s.check_response(endpoint, &json!({"ok": false, "error": "no"}))
                    .is_ok()
            );
            assert!(
                s.check_response(endpoint, &json!({"ok": false, "error": "no", "code": 400}))
                    .is_err()
            );
            assert!(
                s.check_response(
                    endpoint,
                    &json!({"ok": true, "product-sku": "a", "quantity": -1})
                )
                .is_err()
            );
        }
    }

    #[test]
    fn low_stock_events_are_checked() {
        let s = schemas();
        assert!(
            s.check_low_stock_event(&json!({"product-sku": "a", "stock-level": 3}))
                .is_ok()
        );
        assert!(
            s.check_low_stock_event(&json!({"product-sku": "a", "stock-level": -3}))
                .is_err()
        );
    }
}
