//! The rules runtime: loads a rules component, checks it against the WIT
//! world, and runs one sandboxed call per request.
//!
//! One [`Engine`] (with the pooling allocator and epoch interruption) lives
//! for the whole process. Loading a component compiles it once into
//! [`Rules`], which holds a pre-linked [`RulesPre`]; every request then gets
//! a fresh instance in its own [`Store`], capped in memory and bounded in
//! time, so that no state, and no failure, carries from one request to the
//! next.
//!
//! What a component may use: the `beaker:inventory/rules` world imports
//! nothing, but a component built with Rust's standard library for
//! `wasm32-wasip2` imports the WASI `cli` and `io` interfaces whatever it
//! does. The host links exactly those, backed by a context that grants
//! nothing: no arguments, no environment variables, a closed stdin, and
//! stdout/stderr that discard what is written. Filesystem, sockets, clocks
//! and randomness are not linked at all, so a component that imports them
//! is refused when it is loaded.

pub mod bucket;
mod call;
pub mod cases;
pub mod digest;
mod engine;
pub mod health;
mod load;
pub mod report;
mod sandbox;
pub mod state;
pub mod watch;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "rules",
        path: "../wit",
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::beaker::inventory::types::{
    Decision, Event, Limits, LowStock, Operation, Rejection, Request, RulesInfo, Stock,
};
pub use call::{CallError, ReusedInstance};
pub use digest::Digest;
pub use engine::{Allocation, DEFAULT_KEEP_RESIDENT, EngineOptions, LoadError, Rules, RulesEngine};
pub use report::RulesReport;
pub use sandbox::SandboxLimits;

/// How an operation reads in messages: `add 3`, `remove 1`, `get`.
pub fn describe_operation(operation: Operation) -> String {
    match operation {
        Operation::Add(n) => format!("add {n}"),
        Operation::Remove(n) => format!("remove {n}"),
        Operation::Get => "get".into(),
    }
}
