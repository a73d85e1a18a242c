//! `beaker rules new` and `beaker rules wit`: a rules project started
//! outside the repository from the binary alone, built the way its README
//! says, passing its own cases and deployed; and what the commands refuse.
//!
//! All three languages are part of `make test` (and so of CI): the
//! JavaScript and Python projects install their pinned tools from the
//! package registries on every run and build an engine into the component,
//! half a minute each when the machine is idle, which is what an author's
//! first build costs too. `make test-rules-new` runs these tests alone.

mod cli;
mod js;
mod python;
mod rust;

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use beaker_testkit::beaker_bin;

/// `beaker rules new NAME --lang LANG DIR`, run in `cwd`.
fn rules_new(cwd: &Path, args: &[&str]) -> Result<Output> {
    Ok(Command::new(beaker_bin())
        .args(["rules", "new"])
        .args(args)
        .current_dir(cwd)
        .output()?)
}

/// Scaffolds `name` in `lang` into `parent/name`, checking that it says so.
fn scaffold(parent: &Path, name: &str, lang: &str) -> Result<std::path::PathBuf> {
    let made = rules_new(parent, &[name, "--lang", lang])?;
    let stdout = String::from_utf8_lossy(&made.stdout);
    assert_eq!(
        made.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        stdout.contains(&format!("Created {name} 0.1.0")),
        "{stdout}"
    );
    assert!(stdout.contains("./build.sh"), "{stdout}");
    Ok(parent.join(name))
}

/// Runs a project's command as its author would, in the project's folder,
/// with none of the variables cargo and nextest set for this test (a
/// `RUSTUP_TOOLCHAIN` would override the project's rust-toolchain.toml).
fn run_in(project: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) -> Result<Output> {
    let mut command = Command::new(program);
    command.args(args).current_dir(project);
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO") && key != "CARGO_HOME") || key.starts_with("RUSTUP_TOOLCHAIN")
        {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .output()
        .with_context(|| format!("{program} in {}", project.display()))?;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{program} {args:?} in {}:\n{}\n{}",
        project.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// `beaker rules check` of a project's component against its own cases:
/// every case passes, and the component names itself `name` 0.1.0.
fn check_passes(project: &Path, name: &str, extra: &[&str]) -> Result<()> {
    let wasm = project.join(format!("target/{name}.wasm"));
    let cases = project.join(format!("{name}.cases"));
    let output = Command::new(beaker_bin())
        .args(["rules", "check"])
        .arg(&wasm)
        .arg("--cases")
        .arg(&cases)
        .args(extra)
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.starts_with(&format!("{name} 0.1.0 ")), "{text}");
    let count = cases_in(&std::fs::read_to_string(&cases)?);
    assert!(count >= 12, "{count}");
    assert!(
        text.contains(&format!("\n{count} passed, 0 failed")),
        "{text}"
    );
    Ok(())
}

/// The lines of a cases table that are cases.
fn cases_in(table: &str) -> usize {
    table
        .lines()
        .filter(|line| !line.split('#').next().unwrap_or_default().trim().is_empty())
        .count()
}
