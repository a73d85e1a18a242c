//! One request of the load: what it asks for, planned from a seed before
//! the load starts, sent with its trace context and key, and what came of
//! each attempt at it.

use std::time::Duration;

use async_nats::{HeaderMap, RequestErrorKind};

use crate::campaign::Seed;
use crate::client::answer_from;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Get,
}

impl Op {
    pub fn subject(self) -> &'static str {
        match self {
            Op::Add => "stock.add",
            Op::Remove => "stock.remove",
            Op::Get => "stock.get",
        }
    }

    pub(crate) fn ledger_name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Get => "get",
        }
    }
}

/// One request, decided before the load starts.
#[derive(Debug, Clone)]
pub struct Planned {
    pub op: Op,
    pub sku: String,
    pub quantity: u32,
    /// Idempotency key (`Nats-Msg-Id`), on a share of the requests.
    pub key: Option<String>,
    /// The trace id its `traceparent` carries: how the ledger names it.
    pub trace_id: String,
}

impl Planned {
    pub fn new(op: Op, sku: &str, quantity: u32, key: Option<String>) -> Self {
        Self {
            op,
            sku: sku.to_string(),
            quantity,
            key,
            trace_id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    fn payload(&self) -> String {
        match self.op {
            Op::Get => serde_json::json!({"product-sku": self.sku}).to_string(),
            _ => {
                serde_json::json!({"product-sku": self.sku, "quantity": self.quantity}).to_string()
            }
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        // Any non-zero span id: the caller's span, which nobody exports.
        headers.insert(
            "traceparent",
            format!("00-{}-{}-01", self.trace_id, &self.trace_id[..16]).as_str(),
        );
        if let Some(key) = &self.key {
            headers.insert("Nats-Msg-Id", key.as_str());
        }
        headers
    }

    /// The change to the level if it is applied.
    pub fn delta(&self) -> i64 {
        match self.op {
            Op::Add => i64::from(self.quantity),
            Op::Remove => -i64::from(self.quantity),
            Op::Get => 0,
        }
    }
}

/// What came of one attempt at a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A successful reply, with the level it reports.
    Ok { level: i64, body: String },
    /// An error reply (`Nats-Service-Error-Code`; 0 when it had none).
    Refused { code: u16, body: String },
    /// Nobody was subscribed: NATS said so at once. Never delivered.
    NoResponders,
    /// No answer within the client's timeout, or the connection failed:
    /// the request may or may not have been applied.
    Lost { reason: String },
}

impl Outcome {
    pub(crate) fn answered(&self) -> bool {
        matches!(self, Outcome::Ok { .. } | Outcome::Refused { .. })
    }

    /// Worth retrying: the service said "later", or said nothing.
    pub(crate) fn retryable(&self) -> bool {
        matches!(
            self,
            Outcome::Refused { code: 503, .. } | Outcome::NoResponders | Outcome::Lost { .. }
        )
    }
}

/// A deterministic plan: `requests` adds, removes and gets spread over
/// `skus`; every `keyed_every`-th request, if it is a change, carries an
/// idempotency key.
pub fn plan(skus: &[&str], requests: usize, keyed_every: usize, seed: u64) -> Vec<Planned> {
    let mut rng = Seed::new(seed);
    let run = uuid::Uuid::new_v4().simple().to_string();
    (0..requests)
        .map(|i| {
            let sku = skus[rng.between(0, skus.len() as u64 - 1) as usize];
            let roll = rng.between(0, 99);
            let op = if roll < 48 {
                Op::Remove
            } else if roll < 85 {
                Op::Add
            } else {
                Op::Get
            };
            let quantity = rng.between(1, 5) as u32;
            // A get changes nothing and takes no key.
            let key = (op != Op::Get && keyed_every > 0 && i % keyed_every == 0)
                .then(|| format!("{run}-{i}"));
            Planned::new(op, sku, quantity, key)
        })
        .collect()
}

/// Sends one attempt and classifies what came back.
pub async fn attempt(client: &async_nats::Client, planned: &Planned, timeout: Duration) -> Outcome {
    let request = async_nats::Request::new()
        .payload(planned.payload().into())
        .headers(planned.headers())
        .timeout(Some(timeout));
    match client.send_request(planned.op.subject(), request).await {
        Ok(message) => {
            let answer = answer_from(message);
            let body = String::from_utf8_lossy(&answer.raw).into_owned();
            match (answer.ok(), answer.level()) {
                (true, Some(level)) => Outcome::Ok { level, body },
                _ => Outcome::Refused {
                    code: answer.code.unwrap_or(0),
                    body,
                },
            }
        }
        Err(e) if e.kind() == RequestErrorKind::NoResponders => Outcome::NoResponders,
        Err(e) => Outcome::Lost {
            reason: e.to_string(),
        },
    }
}
