//! Describes itself properly but traps on every decision, so it must fail
//! the smoke test and never become active.
#![allow(unsafe_code)]

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({ world: "rules", path: "../../../wit" });
}

use bindings::beaker::inventory::types::{Decision, Limits, Rejection, Request, RulesInfo, Stock};

struct Broken;

impl bindings::Guest for Broken {
    fn describe() -> RulesInfo {
        RulesInfo {
            name: "broken-test-rules".into(),
            version: "0.1.0".into(),
        }
    }

    fn decide(_: Request, _: Option<Stock>, _: Limits) -> Result<Decision, Rejection> {
        panic!("broken rules trap on every decision")
    }
}

bindings::export!(Broken with_types_in bindings);
