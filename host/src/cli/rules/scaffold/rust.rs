//! A Rust project: the default rules of `guest/`, with wit-bindgen pinned
//! to the version they are built with and the toolchain pinned.

use super::{File, Project, TemplateError, names_in, replace_once};

const LIB: &str = include_str!("../../../../../guest/src/lib.rs");
const RULES: &str = include_str!("../../../../../guest/src/rules.rs");
const CARGO_TOML: &str = include_str!("templates/rust/Cargo.toml.tmpl");
const TOOLCHAIN_TOML: &str = include_str!("templates/rust/rust-toolchain.toml.tmpl");
const BUILD: &str = include_str!("templates/rust/build.sh.tmpl");
const README: &str = include_str!("templates/rust/README.md.tmpl");

/// The wit-bindgen the default rules build with (Cargo.lock; a unit test
/// holds the two together), pinned exactly so a new project generates the
/// same bindings from the same WIT.
pub const WIT_BINDGEN: &str = "0.46.0";

/// The Rust release a new project builds with: the workspace's
/// `rust-version` as a full release, which rustup resolves to an installed
/// toolchain (a bare `1.95` is a toolchain of its own, to download).
pub const TOOLCHAIN: &str = "1.95.0";

/// The workspace's `rust-version`, the project's too.
const RUST_VERSION: &str = env!("CARGO_PKG_RUST_VERSION");

/// The rewrites of `guest/src`: where the WIT is (`wit/` beside the
/// manifest, not the workspace's `../wit`) and the name.
const WIT_PATH: (&str, &str) = ("path: \"../wit\",", "path: \"wit\",");
const NAME_CONST: &str = "pub const NAME: &str = \"beaker-default-rules\";";
/// Where `src/lib.rs` names the binding types it uses, which the README
/// lists.
const TYPES_USE: &str = "use bindings::beaker::inventory::types::{";

pub(super) fn files(project: &Project<'_>) -> Result<Vec<File>, TemplateError> {
    let name = project.name;
    // Cargo names the library, and so the component, with underscores.
    let krate = name.replace('-', "_");
    let types = names_in("guest/src/lib.rs", LIB, TYPES_USE, '}')?.join(", ");
    let keys = [
        ("crate", krate.as_str()),
        ("types", types.as_str()),
        ("wit_bindgen", WIT_BINDGEN),
        ("toolchain", TOOLCHAIN),
        ("rust_version", RUST_VERSION),
    ];
    let lib = replace_once("guest/src/lib.rs", LIB, WIT_PATH.0, WIT_PATH.1)?;
    let rules = replace_once(
        "guest/src/rules.rs",
        RULES,
        NAME_CONST,
        &format!("pub const NAME: &str = \"{name}\";"),
    )?;
    let deploy = project.deploy_section("`version` in `Cargo.toml`");
    let readme = project.render(
        README,
        &[&keys[..], &[("deploy", deploy.trim_end())]].concat(),
    );
    Ok(vec![
        File::new("Cargo.toml", project.render(CARGO_TOML, &keys)),
        File::new("rust-toolchain.toml", project.render(TOOLCHAIN_TOML, &keys)),
        File::new("src/lib.rs", lib),
        File::new("src/rules.rs", rules),
        File::script("build.sh", project.render(BUILD, &keys)),
        File::new("README.md", readme),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::rules::scaffold::{Lang, VERSION, files as all_files};

    fn file(path: &str) -> String {
        all_files("shelf-rules", Lang::Rust)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .find(|f| f.path == path)
            .map(|f| f.text)
            .unwrap_or_else(|| panic!("no {path}"))
    }

    /// The strings the rewrites replace are still in guest/src.
    #[test]
    fn the_default_rules_still_hold_what_is_rewritten() {
        assert_eq!(LIB.matches(WIT_PATH.0).count(), 1, "guest/src/lib.rs");
        assert_eq!(RULES.matches(NAME_CONST).count(), 1, "guest/src/rules.rs");
        // The version comes from Cargo.toml, not from the source.
        assert!(LIB.contains("version: env!(\"CARGO_PKG_VERSION\")"));
        // The bindings the README names.
        assert_eq!(LIB.matches(TYPES_USE).count(), 1, "guest/src/lib.rs");
        assert!(LIB.contains("impl bindings::Guest for DefaultRules"));
        assert!(LIB.contains("bindings::export!("));
    }

    #[test]
    fn the_sources_are_renamed_and_find_their_wit() {
        assert!(file("src/lib.rs").contains("path: \"wit\","));
        assert!(file("src/rules.rs").contains("pub const NAME: &str = \"shelf-rules\";"));
        assert!(file("build.sh").contains("release/shelf_rules.wasm"));
        assert!(file("README.md").contains(
            "`bindings::beaker::inventory::types::{Decision, Event, Limits, LowStock, Operation, \
             Rejection, Request, RulesInfo, Stock}`"
        ));
    }

    #[test]
    fn the_manifest_is_standalone_and_pinned() {
        let manifest = file("Cargo.toml");
        for line in [
            "name = \"shelf-rules\"\n",
            &format!("version = \"{VERSION}\"\n"),
            &format!("wit-bindgen = \"={WIT_BINDGEN}\"\n"),
            "crate-type = [\"cdylib\"]\n",
            "opt-level = \"s\"\n",
            "strip = true\n",
            "\n[workspace]\n",
        ] {
            assert!(manifest.contains(line), "{line}");
        }
        let toolchain = file("rust-toolchain.toml");
        assert!(toolchain.contains(&format!("channel = \"{TOOLCHAIN}\"")));
        assert!(toolchain.contains("targets = [\"wasm32-wasip2\"]"));
    }

    /// The toolchain is the workspace's `rust-version`.
    #[test]
    fn the_toolchain_is_the_workspace_rust_version() {
        assert!(
            TOOLCHAIN.starts_with(&format!("{RUST_VERSION}.")) || TOOLCHAIN == RUST_VERSION,
            "rust-version {RUST_VERSION}, toolchain {TOOLCHAIN}"
        );
    }

    /// The pinned wit-bindgen is the one Cargo.lock gives the default rules.
    #[test]
    fn wit_bindgen_is_the_version_the_default_rules_lock() {
        let lock = include_str!("../../../../../Cargo.lock");
        assert_eq!(
            locked_dependency(lock, "beaker-rules", "wit-bindgen"),
            WIT_BINDGEN
        );
    }

    /// The version of `dependency` that `package` uses in a Cargo.lock.
    fn locked_dependency(lock: &str, package: &str, dependency: &str) -> String {
        let blocks: Vec<&str> = lock.split("[[package]]\n").collect();
        let field = |block: &str, key: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string)
        };
        let ours = blocks
            .iter()
            .find(|b| field(b, "name").as_deref() == Some(package))
            .unwrap_or_else(|| panic!("{package} is not in Cargo.lock"));
        // A dependency is `"NAME"`, or `"NAME VERSION"` when several are locked.
        let entry = ours
            .lines()
            .map(|l| l.trim().trim_end_matches(',').trim_matches('"'))
            .find(|l| *l == dependency || l.starts_with(&format!("{dependency} ")))
            .unwrap_or_else(|| panic!("{package} does not depend on {dependency}"));
        if let Some((_, version)) = entry.split_once(' ') {
            return version.to_string();
        }
        let versions: Vec<String> = blocks
            .iter()
            .filter(|b| field(b, "name").as_deref() == Some(dependency))
            .filter_map(|b| field(b, "version"))
            .collect();
        assert_eq!(versions.len(), 1, "{versions:?}");
        versions[0].clone()
    }
}
