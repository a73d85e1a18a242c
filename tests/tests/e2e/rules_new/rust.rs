//! A Rust project, scaffolded outside the repository, built offline with
//! its own toolchain file and pinned wit-bindgen, checked and deployed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use beaker_testkit::{TestEnv, beaker_cli, wait_for_rules, workspace_root};

use super::{check_passes, run_in, scaffold};

/// Where the projects' dependencies are compiled, shared by every run so
/// that only the first compiles wit-bindgen. Each test's project has a name
/// of its own, so no two write the same component there.
fn shared_target() -> PathBuf {
    workspace_root().join("target/rules-new/cargo")
}

/// Scaffolds `name` into a temporary folder and builds it as its README
/// says, offline (every crate it needs is in cargo's cache once the
/// workspace has been built).
fn build(temp: &Path, name: &str) -> Result<PathBuf> {
    let project = scaffold(temp, name, "rust")?;
    let started = Instant::now();
    let target = shared_target();
    let built = run_in(
        &project,
        "./build.sh",
        &["--offline"],
        &[("CARGO_TARGET_DIR", &target)],
    )?;
    eprintln!(
        "{name}: built in {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(project.join(format!("target/{name}.wasm")).is_file());
    Ok(project)
}

#[test]
fn rules_new_rust_project_builds_offline_and_passes_its_cases() -> Result<()> {
    let temp = tempfile::tempdir()?;
    let project = build(temp.path(), "shelf-rules")?;
    check_passes(&project, "shelf-rules", &[])?;
    // Its unit tests run natively, as the README says (in the release
    // profile here, which reuses the build's compiled macros).
    run_in(
        &project,
        "cargo",
        &["test", "--release", "--offline", "--quiet"],
        &[("CARGO_TARGET_DIR", &shared_target())],
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_new_rust_project_deploys_and_every_instance_reports_it() -> Result<()> {
    let temp = tempfile::tempdir()?;
    let project = build(temp.path(), "depot-rules")?;
    let wasm = project.join("target/depot-rules.wasm");
    let env = TestEnv::start("rules_new_deploy").await?;
    let deployed = beaker_cli(
        &env.nats.url(),
        &["rules", "deploy", wasm.to_str().unwrap_or_default()],
    )?;
    assert_eq!(
        deployed.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&deployed.stdout),
        String::from_utf8_lossy(&deployed.stderr)
    );
    wait_for_rules(&env.client, 1, "depot-rules 0.1.0", |r| {
        r.name == "depot-rules" && r.version == "0.1.0"
    })
    .await?;
    // They decide: the ledger names them.
    assert!(env.add("widget-1", 5).await?.ok());
    let names: Vec<String> = sqlx::query_scalar("SELECT DISTINCT rules_name FROM stock_movements")
        .fetch_all(&env.db.pool)
        .await?;
    assert_eq!(names, vec!["depot-rules".to_string()]);
    Ok(())
}
