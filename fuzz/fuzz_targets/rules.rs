//! The host↔rules boundary: arbitrary operations and stock states through
//! the real default rules component, in its sandbox. The property is in
//! `fuzz/properties/rules.rs`.
//!
//! The component is `target/wasm32-wasip2/release/beaker_rules.wasm`
//! (`make build`), or the file named by `BEAKER_RULES`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

#[path = "../properties/rules.rs"]
mod property;

static SANDBOX: LazyLock<property::Sandbox> = LazyLock::new(|| {
    let path = std::env::var_os("BEAKER_RULES").map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/wasm32-wasip2/release/beaker_rules.wasm")
        },
        std::path::PathBuf::from,
    );
    property::Sandbox::load(&path)
});

fuzz_target!(|case: property::Case| {
    property::check(&SANDBOX, &case);
});
