//! The property of the `rules` fuzz target: the host↔rules boundary,
//! arbitrary operations and stock states through the real default rules
//! component, in its sandbox.
//!
//! The default rules never fail a call (no trap, no deadline, no decision
//! the host has to reject), and they conserve stock: an add raises the
//! level by exactly its quantity, a remove lowers it by exactly its
//! quantity and only when that much is there, a get reports the level;
//! nothing goes negative or above the ceiling; low stock is announced
//! exactly when a remove leaves fewer than 10. Replies built from their
//! outcomes are schema-valid.
//!
//! Shared, as source, by `fuzz/fuzz_targets/rules.rs` (`make fuzz`) and by
//! the short random run of `make test` (`tests/tests/e2e/properties.rs`).
//! It panics on a violation: that is how both report one.

use std::path::Path;

use arbitrary::Arbitrary;
use beaker::contract::bounds::BOUNDS;
use beaker::contract::schema::Schemas;
use beaker::contract::wire::{Endpoint, Reply};
use beaker::inventory::rejected;
use beaker::rules::{Event, Operation, Request, Rules, RulesEngine, SandboxLimits};

/// The rules component loaded in a sandbox, with what checking needs.
pub struct Sandbox {
    runtime: tokio::runtime::Runtime,
    engine: RulesEngine,
    rules: Rules,
    schemas: Schemas,
}

impl Sandbox {
    /// Loads the component at `path` with the default limits, but a
    /// deadline no busy machine can hit: this property is about what the
    /// rules decide; the sandbox tests check time.
    pub fn load(path: &Path) -> Sandbox {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let limits = SandboxLimits {
            deadline: std::time::Duration::from_secs(30),
            ..SandboxLimits::default()
        };
        let engine = RulesEngine::new(limits).expect("the engine");
        let rules = runtime
            .block_on(engine.load_file(path))
            .unwrap_or_else(|e| panic!("load {}: {e} (run make build first)", path.display()));
        Sandbox {
            runtime,
            engine,
            rules,
            schemas: Schemas::compile().expect("the embedded schemas compile"),
        }
    }
}

/// One operation on the product.
#[derive(Debug, Arbitrary)]
pub enum Op {
    Add(u32),
    Remove(u32),
    Get,
}

/// A product's start and what happens to it (the first 64 operations).
#[derive(Debug, Arbitrary)]
pub struct Case {
    /// The stock before the first operation: `None` for a new product.
    pub start: Option<u32>,
    pub ops: Vec<Op>,
}

/// What the rules did with a case's operations.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Adds and removes the rules accepted.
    pub changed: usize,
    /// Operations the rules refused.
    pub refused: usize,
    /// Low-stock events announced.
    pub low_stock: usize,
}

/// Checks one case: its operations in turn, each against the stock the
/// ones before it left.
pub fn check(sandbox: &Sandbox, case: &Case) -> Tally {
    let mut tally = Tally::default();
    let ceiling = BOUNDS.max_stock_level;
    // Stock as the database could hold it: within the ceiling.
    let mut current = case.start.map(|level| level % (ceiling + 1));
    for op in case.ops.iter().take(64) {
        let (operation, endpoint) = match *op {
            Op::Add(q) => (Operation::Add(q), Endpoint::Add),
            Op::Remove(q) => (Operation::Remove(q), Endpoint::Remove),
            Op::Get => (Operation::Get, Endpoint::Get),
        };
        let request = Request {
            sku: "fuzz-1".into(),
            operation,
        };
        let outcome = sandbox
            .runtime
            .block_on(sandbox.engine.decide(&sandbox.rules, &request, current))
            .unwrap_or_else(|e| panic!("the default rules failed on {op:?} at {current:?}: {e}"));
        let before = current.unwrap_or(0);
        let reply = match &outcome {
            Ok(decision) => {
                let level = decision.level;
                assert!(level <= ceiling, "{op:?} at {current:?}: {level}");
                match *op {
                    Op::Add(q) => assert_eq!(u64::from(level), u64::from(before) + u64::from(q)),
                    Op::Remove(q) => {
                        assert!(current.is_some_and(|c| c >= q), "{op:?} at {current:?}");
                        assert_eq!(level, before - q);
                    }
                    Op::Get => assert_eq!(level, before),
                }
                let low = decision
                    .events
                    .iter()
                    .any(|Event::LowStock(e)| e.level == level && e.sku == request.sku);
                assert_eq!(
                    low,
                    matches!(op, Op::Remove(_)) && level < 10,
                    "{op:?} at {current:?} → {level}: events {:?}",
                    decision.events
                );
                if !matches!(op, Op::Get) {
                    current = Some(level);
                    tally.changed += 1;
                }
                tally.low_stock += usize::from(low);
                Reply::Ok {
                    sku: request.sku.clone(),
                    level,
                }
            }
            Err(rejection) => {
                // A refusal is only for what would break a rule or a bound.
                match *op {
                    Op::Add(q) => assert!(
                        q < BOUNDS.min_quantity
                            || q > BOUNDS.max_quantity
                            || u64::from(before) + u64::from(q) > u64::from(ceiling),
                        "add {q} at {current:?} refused: {rejection:?}"
                    ),
                    Op::Remove(q) => assert!(
                        q < BOUNDS.min_quantity
                            || q > BOUNDS.max_quantity
                            || current.is_none_or(|c| c < q),
                        "remove {q} at {current:?} refused: {rejection:?}"
                    ),
                    Op::Get => panic!("get refused: {rejection:?}"),
                }
                tally.refused += 1;
                rejected(rejection.clone())
            }
        };
        let body: serde_json::Value =
            serde_json::from_str(&reply.body_text()).expect("the reply is JSON");
        sandbox
            .schemas
            .check_response(endpoint, &body)
            .unwrap_or_else(|e| panic!("{op:?} at {current:?}: {e}: {body}"));
    }
    tally
}
