//! The wire format shared with the reference service: subjects, JSON
//! bodies and the NATS micro error headers.

use serde::{Deserialize, Serialize};

/// Subject of the low-stock event.
pub const LOW_STOCK_SUBJECT: &str = "events.low_stock";
/// The NATS micro header carrying a failed request's description.
pub const ERROR_HEADER: &str = "Nats-Service-Error";
/// The NATS micro header carrying a failed request's numeric code.
pub const ERROR_CODE_HEADER: &str = "Nats-Service-Error-Code";

/// The service's endpoints, under the group `stock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Add,
    Remove,
    Get,
    /// A product's ledger, newest first, paged: Beaker's own, beside the
    /// three the reference service has.
    History,
}

impl Endpoint {
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Add,
        Endpoint::Remove,
        Endpoint::Get,
        Endpoint::History,
    ];
    /// The reference service's endpoints: one request shape (a SKU and, to
    /// change the level, a quantity) and one reply shape.
    pub const STOCK: [Endpoint; 3] = [Endpoint::Add, Endpoint::Remove, Endpoint::Get];

    /// The endpoint's name in `$SRV.INFO` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Add => "add",
            Endpoint::Remove => "remove",
            Endpoint::Get => "get",
            Endpoint::History => "history",
        }
    }

    /// The endpoint's subject relative to the service's subject prefix.
    pub fn subject(self) -> &'static str {
        match self {
            Endpoint::Add => "stock.add",
            Endpoint::Remove => "stock.remove",
            Endpoint::Get => "stock.get",
            Endpoint::History => "stock.history",
        }
    }
}

/// A decoded, schema-valid request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StockRequest {
    #[serde(rename = "product-sku")]
    pub sku: String,
    /// Absent on `stock.get`.
    #[serde(default, deserialize_with = "whole_number")]
    pub quantity: Option<u32>,
}

/// A number as JSON Schema counts integers: `5` and `5.0` alike (the
/// schema accepts both, so the service must too). Never negative here.
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
    T::Error: std::fmt::Display,
{
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(whole) = number.as_u64() {
        return T::try_from(whole).map(Some).map_err(D::Error::custom);
    }
    match number.as_f64() {
        // Every f64 this large is whole; `as` saturates, and the bounds of
        // the schema (checked first) keep the values far below that.
        Some(f) if f.fract() == 0.0 && f >= 0.0 => {
            T::try_from(f as u64).map(Some).map_err(D::Error::custom)
        }
        _ => Err(D::Error::custom(format!(
            "{number} is not a whole number of units"
        ))),
    }
}

/// The body of every reply: success or failure, as the reference sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Body {
    Success {
        ok: True,
        #[serde(rename = "product-sku")]
        sku: String,
        quantity: u32,
    },
    Failure {
        ok: False,
        error: String,
    },
}

/// Serializes as `true` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "bool", into = "bool")]
pub struct True;
/// Serializes as `false` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "bool", into = "bool")]
pub struct False;

impl From<True> for bool {
    fn from(_: True) -> bool {
        true
    }
}
impl From<False> for bool {
    fn from(_: False) -> bool {
        false
    }
}
impl TryFrom<bool> for True {
    type Error = &'static str;
    fn try_from(b: bool) -> Result<Self, Self::Error> {
        if b { Ok(True) } else { Err("expected true") }
    }
}
impl TryFrom<bool> for False {
    type Error = &'static str;
    fn try_from(b: bool) -> Result<Self, Self::Error> {
        if b { Err("expected false") } else { Ok(False) }
    }
}

/// A decoded, schema-valid `stock.history` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    #[serde(rename = "product-sku")]
    pub sku: String,
    /// The most movements in one page (the schema's default when absent).
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<u32>,
    /// Only movements older than this movement id.
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub before: Option<i64>,
}

/// The movements a `stock.history` page holds when the request says not.
pub const HISTORY_DEFAULT_LIMIT: u32 = 20;

/// One page of a product's ledger, newest first: the success body of
/// `stock.history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub ok: True,
    #[serde(rename = "product-sku")]
    pub sku: String,
    pub movements: Vec<HistoryMovement>,
    /// What to send as `before` for the next page; absent on the last.
    #[serde(
        rename = "next-before",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_before: Option<i64>,
}

/// One movement of a product, as `stock.history` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HistoryMovement {
    pub id: i64,
    pub operation: String,
    pub quantity: u32,
    pub level_after: u32,
    pub rules: RulesRef,
    pub request_id: String,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
}

/// The rules that decided a movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesRef {
    pub name: String,
    pub version: String,
}

/// The low-stock event's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LowStockEvent {
    #[serde(rename = "product-sku")]
    pub sku: String,
    #[serde(rename = "stock-level")]
    pub level: u32,
}

/// The machine-readable outcome of a failed request, sent in
/// `Nats-Service-Error-Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or out of bounds.
    BadRequest,
    /// The product is not known.
    NotFound,
    /// A business rule refused the change.
    Conflict,
    /// The service failed; the caller did nothing wrong.
    Internal,
    /// A dependency (the database) is unavailable or the service is
    /// saturated; retrying later may succeed.
    Unavailable,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The code for a number, if it is one of ours.
    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            400 => Some(ErrorCode::BadRequest),
            404 => Some(ErrorCode::NotFound),
            409 => Some(ErrorCode::Conflict),
            500 => Some(ErrorCode::Internal),
            503 => Some(ErrorCode::Unavailable),
            _ => None,
        }
    }

    /// The short status text used when a message cannot be a header.
    pub fn status(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "Bad Request",
            ErrorCode::NotFound => "Not Found",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::Internal => "Internal Server Error",
            ErrorCode::Unavailable => "Service Unavailable",
        }
    }

    /// Whether the caller caused it (logged at info) or the system (error).
    pub fn is_callers(self) -> bool {
        matches!(
            self,
            ErrorCode::BadRequest | ErrorCode::NotFound | ErrorCode::Conflict
        )
    }

    /// The outcome label used in logs and metrics.
    pub fn outcome(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// What a request is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok {
        sku: String,
        level: u32,
    },
    Err {
        code: ErrorCode,
        message: String,
    },
    /// A reply stored under an idempotency key, sent again byte for byte.
    Replay {
        body: String,
        error: Option<(u16, String)>,
    },
    /// A page of a product's ledger (`stock.history`).
    History(Box<HistoryPage>),
}

/// The header name that carries a request's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Nats-Msg-Id";

/// The header in which a caller may say how long it waits for the reply,
/// in milliseconds: a request that cannot get a slot sooner is answered 503
/// then, rather than after its caller has given up. The HTTP gateway sends
/// its own timeout.
pub const TIMEOUT_HEADER: &str = "Beaker-Timeout-Ms";

impl Reply {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Reply::Err {
            code,
            message: message.into(),
        }
    }

    /// The body as JSON text, exactly as it is sent.
    pub fn body_text(&self) -> String {
        let body = match self {
            Reply::Ok { sku, level } => Body::Success {
                ok: True,
                sku: sku.clone(),
                quantity: *level,
            },
            Reply::Err { message, .. } => Body::Failure {
                ok: False,
                error: message.clone(),
            },
            Reply::Replay { body, .. } => return body.clone(),
            Reply::History(page) => {
                return serde_json::to_string(page)
                    .unwrap_or_else(|_| r#"{"ok":false,"error":"internal error"}"#.to_string());
            }
        };
        serde_json::to_string(&body)
            .unwrap_or_else(|_| r#"{"ok":false,"error":"internal error"}"#.to_string())
    }

    /// The numeric code and message of a failed reply.
    pub fn failure(&self) -> Option<(u16, &str)> {
        match self {
            Reply::Ok { .. } | Reply::History(_) => None,
            Reply::Err { code, message } => Some((code.code(), message.as_str())),
            Reply::Replay { error, .. } => error.as_ref().map(|(c, m)| (*c, m.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_whole_numbers_however_written() {
        let parse = |text: &str| serde_json::from_str::<StockRequest>(text).map(|r| r.quantity);
        assert_eq!(
            parse(r#"{"product-sku":"a","quantity":5}"#).ok(),
            Some(Some(5))
        );
        assert_eq!(
            parse(r#"{"product-sku":"a","quantity":5.0}"#).ok(),
            Some(Some(5))
        );
        assert_eq!(
            parse(r#"{"product-sku":"a","quantity":5e2}"#).ok(),
            Some(Some(500))
        );
        assert_eq!(parse(r#"{"product-sku":"a"}"#).ok(), Some(None));
        assert!(parse(r#"{"product-sku":"a","quantity":5.5}"#).is_err());
        assert!(parse(r#"{"product-sku":"a","quantity":-1.0}"#).is_err());
        assert!(parse(r#"{"product-sku":"a","quantity":4294967296}"#).is_err());
    }

    #[test]
    fn history_numbers_are_whole_numbers_however_written() {
        let parse =
            |text: &str| serde_json::from_str::<HistoryRequest>(text).map(|r| (r.limit, r.before));
        assert_eq!(
            parse(r#"{"product-sku":"a","limit":5.0,"before":7e1}"#).ok(),
            Some((Some(5), Some(70)))
        );
        assert_eq!(parse(r#"{"product-sku":"a"}"#).ok(), Some((None, None)));
        assert!(parse(r#"{"product-sku":"a","limit":2.5}"#).is_err());
    }

    #[test]
    fn bodies_serialize_as_the_reference_does() {
        let ok = Reply::Ok {
            sku: "a-1".into(),
            level: 7,
        };
        assert_eq!(
            ok.body_text(),
            r#"{"ok":true,"product-sku":"a-1","quantity":7}"#
        );
        let err = Reply::error(ErrorCode::Conflict, "no");
        assert_eq!(err.body_text(), r#"{"ok":false,"error":"no"}"#);
    }

    #[test]
    fn bodies_parse_back() {
        let parsed: Body =
            serde_json::from_str(r#"{"ok":false,"error":"x"}"#).expect("failure parses");
        assert_eq!(
            parsed,
            Body::Failure {
                ok: False,
                error: "x".into()
            }
        );
        let parsed: Body = serde_json::from_str(r#"{"ok":true,"product-sku":"a","quantity":1}"#)
            .expect("success parses");
        assert!(matches!(parsed, Body::Success { quantity: 1, .. }));
    }
}
