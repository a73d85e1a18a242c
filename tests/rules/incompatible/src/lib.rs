//! Implements a different contract (a later, incompatible draft of the
//! world), so the host must refuse it and say what does not match.
#![allow(unsafe_code)]

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package beaker:inventory@0.2.0;
            world rules {
                export describe: func() -> string;
                export decide: func(sku: string, delta: s32) -> s32;
            }
        ",
    });
}

struct Incompatible;

impl bindings::Guest for Incompatible {
    fn describe() -> String {
        "incompatible-test-rules".into()
    }

    fn decide(_sku: String, delta: i32) -> i32 {
        delta
    }
}

bindings::export!(Incompatible with_types_in bindings);
