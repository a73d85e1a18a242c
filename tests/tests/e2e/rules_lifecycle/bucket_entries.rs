//! Entries of the rules bucket that an instance cannot act on — written by
//! another NATS client in its own dialect, by hand, or damaged — are
//! skipped and reported (log, `$SRV.INFO`, `rules status`), and never stop
//! an instance from following later deploys.

use std::process::Command;

use anyhow::{Context, Result, bail};
use async_nats::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use beaker_testkit::{TestEnv, beaker_cli, sha256_file, wait_for_rules, workspace_root};

use super::{default_rules, threshold_rules};

const BUCKET: &str = "beaker-rules";

/// Writes into the bucket with nats-py (scripts/python-deps.sh installs it).
fn nats_py(url: &str, args: &[&str]) -> Result<()> {
    let root = workspace_root();
    let python = root.join(".beaker/venv/bin/python");
    if !python.exists() {
        bail!(
            "{} is missing: run scripts/python-deps.sh (make test does)",
            python.display()
        );
    }
    let output = Command::new(python)
        .arg(root.join("tests/python/bucket.py"))
        .arg(url)
        .arg(BUCKET)
        .args(args)
        .output()?;
    if !output.status.success() {
        bail!(
            "nats-py {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Publishes an object's description as written, replacing the last one
/// (the Object Store's own way: a roll-up of the subject).
async fn describe(env: &TestEnv, object: &str, description: &str) -> Result<()> {
    let subject = format!("$O.{BUCKET}.M.{}", URL_SAFE.encode(object));
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Rollup", "sub");
    let js = async_nats::jetstream::new(env.client.clone());
    js.publish_with_headers(subject, headers, description.to_string().into())
        .await?
        .await
        .context("the description was not stored")?;
    Ok(())
}

fn deploy(env: &TestEnv, rules: &std::path::Path) -> Result<()> {
    let deployed = beaker_cli(
        &env.nats.url(),
        &[
            "rules",
            "deploy",
            rules.to_str().unwrap_or_default(),
            "--wait",
            "20s",
        ],
    )?;
    if deployed.status.code() != Some(0) {
        bail!(
            "deploy {}: exit {:?}\n{}",
            rules.display(),
            deployed.status.code(),
            String::from_utf8_lossy(&deployed.stderr)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bucket_entries_are_skipped_reported_and_never_stop_later_deploys() -> Result<()> {
    let env = TestEnv::start("bucket_entries").await?;
    let url = env.nats.url();
    let threshold = sha256_file(&threshold_rules())?;
    let default = sha256_file(&default_rules())?;
    deploy(&env, &threshold_rules())?;

    // 1. Another client puts something that is not a deployment as `active`.
    nats_py(&url, &["put", "active", "hello from another team"])?;
    let reports = wait_for_rules(&env.client, 1, "one entry skipped", |r| {
        r.bucket.as_ref().is_some_and(|b| b.skipped == 1)
    })
    .await?;
    let bucket = reports[0].1.bucket.clone().context("a bucket report")?;
    let skipped = bucket.last_skipped.context("the skipped entry")?;
    assert_eq!(skipped.object, "active");
    assert!(skipped.reason.contains("not valid"), "{}", skipped.reason);
    assert_eq!(
        bucket.lost_since, None,
        "an entry skipped is not a bucket lost"
    );
    assert_eq!(
        reports[0].1.digest.as_str(),
        threshold,
        "the instance keeps its rules"
    );

    // 2. nats-py puts something that is not a shadow pointer (skipped),
    //    then deletes it its own way (mtime "", digest ""): a delete like
    //    any other, nothing more skipped.
    nats_py(&url, &["put", "shadow", "x"])?;
    wait_for_rules(&env.client, 1, "two entries skipped", |r| {
        r.bucket.as_ref().is_some_and(|b| b.skipped == 2)
    })
    .await?;
    nats_py(&url, &["delete", "shadow"])?;

    // 3. A description that is not JSON at all, as `shadow` (after which
    //    nats-py itself can no longer write that object).
    describe(&env, "shadow", "{not json").await?;
    wait_for_rules(&env.client, 1, "three entries skipped", |r| {
        r.bucket.as_ref().is_some_and(|b| {
            b.skipped == 3
                && b.last_skipped.as_ref().is_some_and(|s| {
                    s.object == "shadow" && s.reason.contains("description is not readable")
                })
        })
    })
    .await?;

    // 4. A description whose bytes do not match its digest, as `active`:
    //    the bytes are another object's (the deployment's chunks, reused).
    let bytes_of_hello = "hello from another team".len();
    describe(
        &env,
        "active",
        &format!(
            r#"{{"name":"active","bucket":"{BUCKET}","nuid":"none-such","size":{bytes_of_hello},"chunks":0,
                "digest":"SHA-256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#
        ),
    )
    .await?;
    wait_for_rules(&env.client, 1, "the damaged entry skipped", |r| {
        r.bucket.as_ref().is_some_and(|b| {
            b.skipped == 4
                && b.last_skipped
                    .as_ref()
                    .is_some_and(|s| s.object == "active" && s.reason.contains("damaged"))
        })
    })
    .await?;

    // `rules status` says what was skipped.
    let status = beaker_cli(&url, &["rules", "status"])?;
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("skipped "), "{text}");
    assert!(text.contains("bucket entries"), "{text}");
    let json = beaker_cli(&url, &["rules", "status", "--json"])?;
    let document: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(document["instances"][0]["rules_bucket"], BUCKET);

    // And the next deploys reach the instance, as if nothing had happened.
    deploy(&env, &default_rules())?;
    wait_for_rules(&env.client, 1, "the default rules", |r| {
        r.digest == *default
    })
    .await?;
    deploy(&env, &threshold_rules())?;
    let reports = wait_for_rules(&env.client, 1, "the threshold rules", |r| {
        r.digest == *threshold
    })
    .await?;
    let bucket = reports[0].1.bucket.clone().context("a bucket report")?;
    assert_eq!(
        bucket.skipped, 4,
        "the delete marker is not skipped: {bucket:?}"
    );
    assert_eq!(bucket.lost_since, None);

    let logged = env.beaker.log_lines();
    let skips: Vec<_> = logged
        .iter()
        .filter(|l| {
            l["level"] == "ERROR"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("skipped an entry of the rules bucket"))
        })
        .collect();
    assert_eq!(skips.len(), 4, "each skip is logged once: {skips:?}");
    Ok(())
}
