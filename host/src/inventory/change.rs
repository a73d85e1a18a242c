//! An add or remove in a transaction of its own: claim the key, lock the
//! row, decide, write the level, the ledger row, the outbox rows and the
//! stored reply in one statement, commit.

use std::time::Instant;

use tracing::Instrument;
use uuid::Uuid;

use super::reply::{contended, internal, key_reused, rejected, rules_failure, store_failure};
use super::{Inventory, MAX_ATTEMPTS, PendingChange};
use crate::contract::wire::{LOW_STOCK_SUBJECT, LowStockEvent, Reply};
use crate::propagation::RequestTrace;
use crate::rules::{self, CallError, Decision, Event, Rules};
use crate::store::{Begun, OutboxEvent, RowLock, StoreError, StoredReply};

/// How one attempt at a change ended.
enum Step {
    Done(Reply),
    /// The product was created concurrently: decide again.
    Retry,
    /// Another transaction holds the row, and the caller would not wait.
    Busy,
}

impl Inventory {
    /// Applies one change in a transaction of its own.
    pub(super) async fn change_alone(&self, change: &PendingChange) -> Reply {
        match self.change_alone_locking(change, RowLock::Wait).await {
            Some(reply) => reply,
            // Only a caller that asked not to wait gets no answer.
            None => internal(),
        }
    }

    /// A change alone, in its own transaction; with
    /// [`RowLock::SkipIfHeld`], `None` (and nothing written) when another
    /// transaction holds the product's row.
    pub(super) async fn change_alone_locking(
        &self,
        change: &PendingChange,
        lock: RowLock,
    ) -> Option<Reply> {
        for attempt in 1..=MAX_ATTEMPTS {
            let transaction = tracing::debug_span!(
                parent: &change.span,
                "db.transaction",
                db.system.name = "postgresql",
                beaker.attempt = attempt,
            );
            match self.attempt(change, lock).instrument(transaction).await {
                Step::Done(reply) => return Some(reply),
                Step::Busy => return None,
                Step::Retry => continue,
            }
        }
        Some(contended())
    }

    /// One transaction: claim the key, lock the row, decide, write, commit.
    async fn attempt(&self, planned: &PendingChange, lock: RowLock) -> Step {
        let PendingChange {
            rules, ask, key, ..
        } = planned;
        let begun = self
            .store
            .begin_change_locking(&ask.sku, key.as_ref(), lock)
            .await;
        let change = match begun {
            Ok(Begun::Busy) => return Step::Busy,
            Ok(Begun::Change(change)) => change,
            Ok(Begun::Replay(stored)) => {
                return Step::Done(Reply::Replay {
                    body: stored.body,
                    error: stored.error,
                });
            }
            Ok(Begun::KeyReused) => {
                return Step::Done(key_reused(key.as_ref().map_or("", |k| k.key.as_str())));
            }
            Err(e) => return Step::Done(store_failure(e)),
        };
        let current = change.current;
        let decision = match self.decide(rules, ask, current).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(rejection)) => {
                let reply = rejected(rejection.clone());
                return Step::Done(match change.refuse(&stored(&reply)).await {
                    Ok(()) => {
                        self.rules
                            .compare_in_shadow(ask.clone(), current, Err(rejection));
                        reply
                    }
                    Err(e) => store_failure(e),
                });
            }
            Err(e) => return Step::Done(rules_failure(rules, e)),
        };
        let events = match self.encode_events(&decision, &planned.trace) {
            Ok(events) => events,
            Err(reply) => return Step::Done(reply),
        };
        let movement = planned.movement(decision.level);
        let reply = Reply::Ok {
            sku: ask.sku.clone(),
            level: decision.level,
        };
        match change.commit(&movement, &events, &stored(&reply)).await {
            Ok(()) => {
                if !events.is_empty() {
                    self.relay_wake.notify_one();
                }
                self.rules
                    .compare_in_shadow(ask.clone(), current, Ok(decision));
                Step::Done(reply)
            }
            Err(StoreError::Contended) => Step::Retry,
            Err(e) => Step::Done(store_failure(e)),
        }
    }

    /// Asks the rules, timed and traced; counts violations.
    pub(super) async fn decide(
        &self,
        rules: &Rules,
        ask: &rules::Request,
        current: Option<u32>,
    ) -> Result<crate::rules::state::Outcome, CallError> {
        let span = tracing::debug_span!(
            "rules.decide",
            rules.name = %rules.name,
            rules.version = %rules.version,
            rules.digest = %rules.digest,
            beaker.operation = %rules::describe_operation(ask.operation),
            beaker.current = current.map_or(-1, i64::from),
            beaker.rules.violation = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self
            .rules
            .engine()
            .decide(rules, ask, current)
            .instrument(span.clone())
            .await;
        self.metrics.rules_duration.record(
            started.elapsed().as_secs_f64(),
            &[opentelemetry::KeyValue::new(
                "rules.name",
                rules.name.clone(),
            )],
        );
        if let Err(e) = &result {
            span.record("beaker.rules.violation", e.kind());
            span.record("otel.status_code", "ERROR");
            self.metrics
                .violations
                .add(1, &[opentelemetry::KeyValue::new("kind", e.kind())]);
        }
        result
    }

    /// Serializes the decision's events, checked against their schema,
    /// for the outbox.
    pub(super) fn encode_events(
        &self,
        decision: &Decision,
        trace: &RequestTrace,
    ) -> Result<Vec<OutboxEvent>, Reply> {
        let mut encoded = Vec::with_capacity(decision.events.len());
        for event in &decision.events {
            match event {
                Event::LowStock(low) => {
                    let value = serde_json::json!(LowStockEvent {
                        sku: low.sku.clone(),
                        level: low.level,
                    });
                    if let Err(e) = self.schemas.check_low_stock_event(&value) {
                        tracing::error!(error = %e, "rules asked for an invalid low-stock event");
                        return Err(internal());
                    }
                    // The event carries the request's trace context, so
                    // that a consumer continues the same trace.
                    encoded.push(OutboxEvent {
                        msg_id: Uuid::now_v7(),
                        subject: LOW_STOCK_SUBJECT.to_string(),
                        payload: value.to_string(),
                        headers: trace.headers(),
                    });
                }
            }
        }
        Ok(encoded)
    }
}

/// The reply as it is stored under an idempotency key.
pub(super) fn stored(reply: &Reply) -> StoredReply {
    StoredReply {
        body: reply.body_text(),
        error: reply.failure().map(|(c, m)| (c, m.to_string())),
    }
}
