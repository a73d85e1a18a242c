//! The inventory core: decode, validate, decide, store, answer — every
//! request's business, and nothing of how it arrived. It knows no NATS
//! client: the transport (`service`) hands it a subject's endpoint, the
//! payload and the idempotency key, and sends back the [`Reply`] it
//! returns, so tests and benchmarks can drive it directly.
//!
//! Every request gets exactly one reply. Whatever the payload, whatever
//! the rules or the database do, the reply is one of the wire format's.
//!
//! - [`prepare`]: what needs no database — size, UTF-8, JSON, the schema,
//!   the idempotency key;
//! - [`change`]: an add or remove in a transaction of its own;
//! - [`group`]: the adds and removes in flight applied together;
//! - [`reads`]: the levels of the gets in flight read together;
//! - [`reply`]: how each failure reads to the caller.

mod change;
mod group;
mod history;
mod prepare;
mod reads;
mod reply;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::contract::schema::Schemas;
use crate::contract::wire::{Endpoint, Reply, StockRequest};
use crate::metrics::Metrics;
use crate::propagation::RequestTrace;
use crate::rules::state::RulesState;
use crate::rules::{self, Operation, Rules};
use crate::store::Store;

use group::GroupCommit;
pub use group::GroupCommitSettings;
use prepare::Prepared;
pub use prepare::{PendingChange, decode_by_schema, decode_request};
use reads::Reads;
pub use reply::{internal as internal_error, rejected};
use reply::{internal, rules_failure, store_failure};

/// How often a change is decided again when a new product was created
/// concurrently; the second attempt always finds the row.
const MAX_ATTEMPTS: usize = 3;

/// Limits on what the core takes on.
#[derive(Debug, Clone, Copy)]
pub struct InventoryLimits {
    pub max_request_bytes: usize,
    /// Requests in flight at once: the room in the group commit queues.
    pub max_in_flight: u32,
    /// How long a reply stays stored under its idempotency key.
    pub idempotency_ttl: Duration,
}

/// Everything a request needs, shared by all of them.
pub struct Inventory {
    schemas: Schemas,
    store: Store,
    rules: Arc<RulesState>,
    limits: InventoryLimits,
    /// Wakes the outbox relay when a change with events commits.
    relay_wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    /// Applies adds and removes in groups, one transaction each; `None`
    /// applies every request in its own transaction.
    group: Option<GroupCommit>,
    /// Reads the levels of the gets in flight together.
    reads: Reads,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What an [`Inventory`] is built from.
#[derive(Debug)]
pub struct Parts {
    pub schemas: Schemas,
    pub store: Store,
    pub rules: Arc<RulesState>,
    pub limits: InventoryLimits,
    /// Notified after a change with events commits.
    pub relay_wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// Group commit, or `None` for one transaction per request.
    pub group_commit: Option<GroupCommitSettings>,
}

impl Inventory {
    /// Must run inside a tokio runtime: group commit starts its workers.
    pub fn new(parts: Parts) -> Arc<Self> {
        let limits = parts.limits;
        let queue = limits.max_in_flight.max(1) as usize;
        Arc::new_cyclic(|inventory| Self {
            schemas: parts.schemas,
            rules: parts.rules,
            limits,
            relay_wake: parts.relay_wake,
            metrics: parts.metrics,
            group: parts
                .group_commit
                .map(|settings| GroupCommit::start(inventory.clone(), settings, queue)),
            reads: Reads::start(parts.store.clone(), queue),
            store: parts.store,
        })
    }

    /// The rules: active, shadow, and how they change.
    pub fn rules(&self) -> &Arc<RulesState> {
        &self.rules
    }

    /// The schemas every request, reply and event is checked against.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// Decodes, validates and executes one request. Never panics on input.
    /// `key` is the request's idempotency key (its `Nats-Msg-Id` header).
    pub async fn handle(
        &self,
        endpoint: Endpoint,
        payload: &[u8],
        key: Option<&str>,
        request_id: Uuid,
        trace: RequestTrace,
        rules: &Arc<Rules>,
    ) -> Reply {
        match self.prepare(endpoint, payload, key, request_id, trace, rules) {
            Prepared::Answer(reply) => reply,
            Prepared::Get(request) => self.get(rules, request).await,
            Prepared::History => self.history(payload).await,
            Prepared::Change(change) => match &self.group {
                Some(group) => group.submit(*change).await,
                None => self.change_alone(&change).await,
            },
        }
    }

    /// Executes requests as if they had arrived together: the gets one by
    /// one, the adds and removes as one group commit, in the order given.
    /// Replies come back in the same order. This is what the group commit
    /// workers do with what they gather; tests use it to compare a group
    /// with the same requests applied one at a time.
    pub async fn handle_group(
        &self,
        requests: &[(Endpoint, &[u8], Option<&str>, Uuid)],
        rules: &Arc<Rules>,
    ) -> Vec<Reply> {
        let mut replies = vec![None; requests.len()];
        let mut changes = Vec::new();
        let mut slots = Vec::new();
        for (slot, (endpoint, payload, key, request_id)) in requests.iter().enumerate() {
            let trace = RequestTrace::from_headers(None);
            match self.prepare(*endpoint, payload, *key, *request_id, trace, rules) {
                Prepared::Answer(reply) => replies[slot] = Some(reply),
                Prepared::Get(request) => replies[slot] = Some(self.get(rules, request).await),
                Prepared::History => replies[slot] = Some(self.history(payload).await),
                Prepared::Change(change) => {
                    changes.push(*change);
                    slots.push(slot);
                }
            }
        }
        for (slot, reply) in slots.into_iter().zip(self.apply_group(&changes).await) {
            replies[slot] = Some(reply);
        }
        replies
            .into_iter()
            .map(|r| r.unwrap_or_else(internal))
            .collect()
    }

    /// A get: the level read without a lock, and the rules asked what to
    /// report.
    async fn get(&self, rules: &Rules, request: StockRequest) -> Reply {
        let current = match self.reads.level(&request.sku).await {
            Ok(current) => current,
            Err(e) => return store_failure(e),
        };
        let ask = rules::Request {
            sku: request.sku.clone(),
            operation: Operation::Get,
        };
        match self.decide(rules, &ask, current).await {
            Ok(outcome) => {
                self.rules
                    .compare_in_shadow(ask.clone(), current, outcome.clone());
                match outcome {
                    Ok(decision) => Reply::Ok {
                        sku: request.sku,
                        level: decision.level,
                    },
                    Err(rejection) => rejected(rejection),
                }
            }
            Err(e) => rules_failure(rules, e),
        }
    }
}
