//! `beaker rules check`, offline: tables of cases against the default, the
//! threshold and the JavaScript rules, and the compiled-component cache.

use anyhow::Result;
use beaker_testkit::beaker_cli;

use super::{default_rules, threshold_rules};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_runs_a_table_of_cases_offline() -> Result<()> {
    let root = beaker_testkit::workspace_root();
    let cases = root.join("examples/cases/default-rules.cases");
    let ok = beaker_cli(
        "nats://127.0.0.1:1",
        &[
            "rules",
            "check",
            default_rules().to_str().unwrap_or_default(),
            "--cases",
            cases.to_str().unwrap_or_default(),
        ],
    )?;
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("12 passed, 0 failed"), "{text}");

    // The threshold rules announce low stock only on crossing: the default
    // table catches the difference.
    let differs = beaker_cli(
        "nats://127.0.0.1:1",
        &[
            "rules",
            "check",
            threshold_rules().to_str().unwrap_or_default(),
            "--cases",
            cases.to_str().unwrap_or_default(),
        ],
    )?;
    let text = String::from_utf8_lossy(&differs.stdout);
    assert_eq!(differs.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_threshold_rules_pass_their_own_table_of_cases() -> Result<()> {
    let cases = beaker_testkit::workspace_root().join("examples/cases/threshold-rules.cases");
    // Every line that is not blank or a comment is a case.
    let table = std::fs::read_to_string(&cases)?;
    let count = table
        .lines()
        .filter(|line| !line.split('#').next().unwrap_or_default().trim().is_empty())
        .count();
    assert!(count >= 8, "the table has its cases: {count}");
    let output = beaker_cli(
        "nats://127.0.0.1:1",
        &[
            "rules",
            "check",
            threshold_rules().to_str().unwrap_or_default(),
            "--cases",
            cases.to_str().unwrap_or_default(),
        ],
    )?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.starts_with("beaker-threshold-rules "), "{text}");
    assert!(
        text.contains(&format!("{count} passed, 0 failed")),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_rules_written_in_javascript_pass_the_same_cases() -> Result<()> {
    // Built by `make rules-js` (part of `make test`) from examples/rules-js.
    let root = beaker_testkit::workspace_root();
    let component = root.join("target/rules-js/beaker_rules_js.wasm");
    assert!(
        component.exists(),
        "{} is missing: run `make rules-js`",
        component.display()
    );
    let cases = root.join("examples/cases/default-rules.cases");
    let output = beaker_cli(
        "nats://127.0.0.1:1",
        &[
            "rules",
            "check",
            component.to_str().unwrap_or_default(),
            "--cases",
            cases.to_str().unwrap_or_default(),
            // SpiderMonkey needs about 9 MiB, more than the default cap.
            "--rules-memory-mib",
            "16",
        ],
    )?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.starts_with("beaker-default-rules-js 1.0.0"), "{text}");
    assert!(text.contains("12 passed, 0 failed"), "{text}");
    Ok(())
}

/// `beaker rules check` of the default rules against their cases, with the
/// compiled-component cache in `cache` (a directory, a file, anything).
fn check_with_cache(cache: &std::path::Path) -> Result<std::process::Output> {
    let cases = beaker_testkit::workspace_root().join("examples/cases/default-rules.cases");
    Ok(std::process::Command::new(beaker_testkit::beaker_bin())
        .args(["rules", "check", "--cases"])
        .arg(&cases)
        .arg(default_rules())
        .env("BEAKER_RULES_CACHE_DIR", cache)
        .env("BEAKER_LOG_FORMAT", "json")
        .output()?)
}

#[test]
fn compiled_rules_are_cached_and_a_broken_cache_costs_only_time() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");
    let first = check_with_cache(&cache)?;
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let entries: Vec<_> = walk(&cache)
        .into_iter()
        .filter(|p| p.extension().is_none())
        .collect();
    assert!(
        !entries.is_empty(),
        "a compiled component is kept in {cache:?}"
    );

    // Damaged entries are compiled again, not trusted.
    for entry in &entries {
        std::fs::write(entry, b"not a compiled component")?;
    }
    let damaged = check_with_cache(&cache)?;
    assert_eq!(damaged.status.code(), Some(0), "{damaged:?}");

    // A cache that cannot be made is reported, and the check still runs.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"")?;
    let unusable = check_with_cache(&file.join("cache"))?;
    assert_eq!(unusable.status.code(), Some(0), "{unusable:?}");
    let log = String::from_utf8_lossy(&unusable.stderr);
    assert!(
        log.contains("cannot use the rules cache directory"),
        "{log}"
    );
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
