//! The bucket's history (`beaker rules history`) and rolling back to any
//! entry of it (`rollback --to`), the instances' rules files included; and
//! `rules status` saying since when the active rules are active.

use anyhow::{Context, Result};
use beaker_testkit::{TestEnv, beaker_bin, beaker_cli_run, sha256_file, wait_for_rules};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{default_rules, threshold_rules};

fn run(url: &str, args: &[&str]) -> Result<(Option<i32>, String, String)> {
    Ok(beaker_cli_run(url, args)?.into_parts())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_every_deployment_and_rollback_returns_to_any() -> Result<()> {
    let env = TestEnv::start("rules_history").await?;
    let url = env.nats.url();
    let threshold = threshold_rules();
    let default = default_rules();
    let threshold_digest = sha256_file(&threshold)?;
    let default_digest = sha256_file(&default)?;

    // Nothing deployed: the history says so, and there is nothing to undo.
    let (code, out, _) = run(&url, &["rules", "history"])?;
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing deployed"), "{out}");
    let (code, _, err) = run(&url, &["rules", "rollback", "--to", "file"])?;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nothing was deployed"), "{err}");

    let before = Utc::now();
    let (code, _, err) = run(
        &url,
        &["rules", "deploy", threshold.to_str().unwrap_or_default()],
    )?;
    assert_eq!(code, Some(0), "{err}");
    // A pipeline names itself.
    let by_pipeline = std::process::Command::new(beaker_bin())
        .args(["rules", "deploy", default.to_str().unwrap_or_default()])
        .env("NATS_URL", &url)
        .env("BEAKER_OPERATOR", "release-pipeline")
        .output()?;
    assert_eq!(by_pipeline.status.code(), Some(0), "{by_pipeline:?}");
    let reports = wait_for_rules(&env.client, 1, "the default rules", |r| {
        r.digest == *default_digest
    })
    .await?;
    // Active since the swap, not since the component was first loaded
    // (the default rules were loaded at start, from the file).
    let since: DateTime<Utc> = reports[0].1.since.parse()?;
    assert!(
        since >= before,
        "active since {since}, deployed after {before}"
    );

    // Newest first: the active default rules, the threshold rules, and the
    // rules files the instances started with; each says who deployed it.
    let (code, out, _) = run(&url, &["rules", "history"])?;
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "header and three entries: {out}");
    assert!(lines[0].starts_with("ROLE"), "{out}");
    assert!(
        lines[1].starts_with("active") && lines[1].contains("beaker-default-rules"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("earlier") && lines[2].contains("beaker-threshold-rules 1.0.0"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("earlier") && lines[3].contains("rules file"),
        "{out}"
    );
    assert!(
        lines[1].contains("release-pipeline"),
        "who deployed it: {out}"
    );
    assert!(lines[2].contains('@'), "user@host when not named: {out}");
    let (_, json, _) = run(&url, &["rules", "history", "--json"])?;
    let document: Value = serde_json::from_str(&json)?;
    let entries = document["deployments"].as_array().context("deployments")?;
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1]["digest"], threshold_digest.as_str());
    assert_eq!(entries[2]["rules"], "file");

    // Back to the files, skipping the threshold rules.
    let (code, _, err) = run(&url, &["rules", "rollback", "--to", "file"])?;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("to the instances' rules files"), "{err}");
    wait_for_rules(&env.client, 1, "the rules file", |r| {
        r.origin.starts_with("file:") && r.digest == *default_digest
    })
    .await?;

    // Then to the threshold rules by the first digits of their digest.
    let prefix = &threshold_digest.as_str()[..10];
    let (code, _, err) = run(&url, &["rules", "rollback", "--to", prefix])?;
    assert_eq!(code, Some(0), "{err}");
    wait_for_rules(&env.client, 1, "the threshold rules", |r| {
        r.digest == *threshold_digest
    })
    .await?;
    assert_eq!(env.add("cap", 2000).await?.code, Some(409));

    // A name that is nowhere in the history is refused, and changes nothing.
    let (code, _, err) = run(&url, &["rules", "rollback", "--to", "9.9.9"])?;
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no earlier deployment is named \"9.9.9\""),
        "{err}"
    );
    let (_, after, _) = run(&url, &["rules", "history", "--json"])?;
    let after: Value = serde_json::from_str(&after)?;
    assert_eq!(after["deployments"][0]["digest"], threshold_digest.as_str());
    Ok(())
}
