//! One call into the rules, and what the host checks of its answer: a
//! decision within the bounds whose events describe this very change, a
//! rejection whose message a caller can read. Anything else is the
//! component's fault, reported as a [`CallError`].

use std::time::Duration;

use wasmtime::{Store, Trap};

use super::bindings;
use super::sandbox::SandboxLimits;
use super::sandbox::{Sandbox, deadline_ticks};
use super::{Decision, Event, Limits, LowStock, Operation, Rejection, Request, Stock};
use crate::contract::bounds::BOUNDS;
use crate::contract::schema::shorten;

/// The most events one decision may ask for.
const MAX_EVENTS_PER_DECISION: usize = 16;

/// Why one call into the rules failed. Each is the component's fault (or
/// the host's load), never the caller's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the rules exceeded their deadline of {0:?}")]
    Deadline(Duration),
    #[error("the rules exceeded their memory cap of {0} bytes")]
    Memory(usize),
    #[error("the rules trapped: {0}")]
    Trap(String),
    #[error("the rules returned an invalid decision: {0}")]
    Nonsense(String),
    #[error("no rules instance is free: {0}")]
    Exhausted(String),
}

impl CallError {
    /// A label for logs and metrics.
    /// Every value [`CallError::kind`] takes, for metrics that start at 0.
    pub const KINDS: [&'static str; 5] = [
        "deadline",
        "memory",
        "trap",
        "invalid_decision",
        "exhausted",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Deadline(_) => "deadline",
            CallError::Memory(_) => "memory",
            CallError::Trap(_) => "trap",
            CallError::Nonsense(_) => "invalid_decision",
            CallError::Exhausted(_) => "exhausted",
        }
    }
}

/// An instance kept for several calls (see [`RulesEngine::instantiate`]).
pub struct ReusedInstance {
    pub(super) store: Store<Sandbox>,
    pub(super) instance: bindings::Rules,
    pub(super) limits: SandboxLimits,
}

impl std::fmt::Debug for ReusedInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReusedInstance").finish_non_exhaustive()
    }
}

impl ReusedInstance {
    /// Decides one more request on this instance, with a deadline of its own.
    pub async fn decide(
        &mut self,
        request: &Request,
        current: Option<u32>,
    ) -> Result<Result<Decision, Rejection>, CallError> {
        self.store.set_epoch_deadline(deadline_ticks(self.limits));
        call_decide(
            &mut self.store,
            &self.instance,
            self.limits,
            request,
            current,
        )
        .await
    }
}

/// One `decide` call on an instance, its answer checked.
pub(super) async fn call_decide(
    store: &mut Store<Sandbox>,
    instance: &bindings::Rules,
    limits: SandboxLimits,
    request: &Request,
    current: Option<u32>,
) -> Result<Result<Decision, Rejection>, CallError> {
    let bounds = Limits {
        max_quantity: BOUNDS.max_quantity,
        max_stock_level: BOUNDS.max_stock_level,
    };
    let answer = instance
        .call_decide(
            &mut *store,
            request,
            current.map(|level| Stock { level }),
            bounds,
        )
        .await
        .map_err(|e| classify(store, e, limits))?;
    match answer {
        Ok(decision) => check_decision(request, &decision).map(|()| Ok(decision)),
        Err(rejection) => Ok(Err(tidy_rejection(rejection))),
    }
}

/// Turns a wasmtime error into the violation that caused it.
pub(super) fn classify(
    store: &Store<Sandbox>,
    error: wasmtime::Error,
    limits: SandboxLimits,
) -> CallError {
    if store.data().limiter.hit {
        return CallError::Memory(limits.max_memory_bytes);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Deadline(limits.deadline),
        Some(trap) => CallError::Trap(trap.to_string()),
        None => {
            let text = format!("{error:#}");
            if text.contains("maximum concurrent") || text.contains("pooling") {
                CallError::Exhausted(shorten(&text))
            } else {
                CallError::Trap(shorten(&text))
            }
        }
    }
}

/// A decision is applied only if it stays within the bounds and its
/// events describe this very change.
fn check_decision(request: &Request, decision: &Decision) -> Result<(), CallError> {
    if decision.level > BOUNDS.max_stock_level {
        return Err(CallError::Nonsense(format!(
            "level {} is above the maximum stock level {}",
            decision.level, BOUNDS.max_stock_level
        )));
    }
    if matches!(request.operation, Operation::Get) && !decision.events.is_empty() {
        return Err(CallError::Nonsense("a get asked for events".into()));
    }
    if decision.events.len() > MAX_EVENTS_PER_DECISION {
        return Err(CallError::Nonsense(format!(
            "{} events; at most {MAX_EVENTS_PER_DECISION} are allowed",
            decision.events.len()
        )));
    }
    for event in &decision.events {
        match event {
            Event::LowStock(LowStock { sku, level }) => {
                if *sku != request.sku || *level != decision.level {
                    return Err(CallError::Nonsense(
                        "a low-stock event must name the request's product and its new level"
                            .into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Rejection messages reach callers as they are: keep them short and
/// never empty.
fn tidy_rejection(rejection: Rejection) -> Rejection {
    let tidy = |message: String, fallback: &str| {
        let trimmed = message.trim();
        if trimmed.is_empty() {
            fallback.to_string()
        } else {
            shorten(trimmed)
        }
    };
    match rejection {
        Rejection::InvalidRequest(m) => Rejection::InvalidRequest(tidy(m, "invalid request")),
        Rejection::UnknownProduct(m) => Rejection::UnknownProduct(tidy(m, "unknown product")),
        Rejection::RuleViolated(m) => {
            Rejection::RuleViolated(tidy(m, "refused by a business rule"))
        }
    }
}
