//! Request decoding and validation, fed arbitrary bytes on every endpoint:
//! the property is in `fuzz/properties/request.rs`.
#![no_main]

use std::sync::LazyLock;

use beaker::contract::schema::Schemas;
use libfuzzer_sys::fuzz_target;

#[path = "../properties/request.rs"]
mod property;

static SCHEMAS: LazyLock<Schemas> =
    LazyLock::new(|| Schemas::compile().expect("the embedded schemas compile"));

fuzz_target!(|data: &[u8]| {
    property::check(&SCHEMAS, data);
});
