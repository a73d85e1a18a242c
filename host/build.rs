//! Rebuilds the host when a migration is added or changed: `sqlx::migrate!`
//! embeds the folder, but cargo only notices changes to files that the
//! code names, not a new file beside them.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
