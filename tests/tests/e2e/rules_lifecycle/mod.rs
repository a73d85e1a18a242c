//! Rules change on running hosts: through the watched file and through the
//! bucket (`beaker rules deploy`), atomically, refusing what does not pass,
//! with shadow, promote, rollback to any earlier deployment, a history, a
//! watcher that bad bucket entries cannot stop; and what a rule author
//! checks offline (cases) and against recorded history (replay).
//!
//! One module per way rules arrive or are judged; the paths of the built
//! rules components live here.

mod bucket_entries;
mod cases;
mod check;
mod deploy;
mod file;
mod history;
mod replay;

use beaker_testkit::wasm;

fn default_rules() -> std::path::PathBuf {
    wasm("beaker_rules")
}

fn threshold_rules() -> std::path::PathBuf {
    wasm("beaker_rules_threshold")
}
