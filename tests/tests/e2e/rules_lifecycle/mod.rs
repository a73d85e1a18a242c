//! Rules change on running hosts: through the watched file and through the
//! bucket (`beaker rules deploy`), atomically, refusing what does not pass,
//! with shadow, promote and rollback.
//!
//! One module per way rules arrive or are judged; the paths of the built
//! rules components live here.

mod check;
mod deploy;
mod file;

use beaker_testkit::wasm;

fn default_rules() -> std::path::PathBuf {
    wasm("beaker_rules")
}

fn threshold_rules() -> std::path::PathBuf {
    wasm("beaker_rules_threshold")
}
