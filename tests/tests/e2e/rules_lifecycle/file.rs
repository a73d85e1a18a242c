//! Rules from the watched file: a changed file swapped in, a refused one
//! leaving the active rules serving, and swaps under load failing nothing.

use std::time::Duration;

use anyhow::Result;
use beaker_testkit::{
    TestEnv, beaker_cli, replace_file, rules_reports, sha256_file, wait_for_rules, wasm,
};
use futures::future::join_all;

use super::{default_rules, threshold_rules};

/// Starts an environment whose rules file is a private copy, watched closely.
async fn with_rules_file(name: &str) -> Result<(TestEnv, tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rules.wasm");
    std::fs::copy(default_rules(), &file)?;
    let rules = file.clone();
    let env = TestEnv::start_with(name, move |mut c| {
        c.rules = rules;
        c.env("BEAKER_RULES_WATCH_INTERVAL", "20ms")
    })
    .await?;
    Ok((env, dir, file))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_rules_file_is_swapped_in() -> Result<()> {
    let (env, _dir, file) = with_rules_file("swap_by_file").await?;
    assert!(
        env.add("w", 2000).await?.ok(),
        "default rules have no ceiling"
    );
    replace_file(&threshold_rules(), &file)?;
    let digest = sha256_file(&threshold_rules())?;
    wait_for_rules(&env.client, 1, "the threshold rules", |r| {
        r.digest == *digest
    })
    .await?;
    let refused = env.add("x", 2000).await?;
    assert_eq!(
        refused.code,
        Some(409),
        "threshold rules cap products at 1000"
    );
    let reports = rules_reports(&env.client, Duration::from_millis(200)).await?;
    assert_eq!(reports[0].1.name, "beaker-threshold-rules");
    assert!(reports[0].1.origin.starts_with("file:"), "{:?}", reports[0]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_candidates_leave_the_active_rules_serving() -> Result<()> {
    let (env, _dir, file) = with_rules_file("swap_refusals").await?;
    let active = sha256_file(&default_rules())?;
    for (candidate, reason) in [
        ("beaker_test_rules_broken", "smoke test"),
        (
            "beaker_test_rules_incompatible",
            "does not fit the beaker:inventory/rules world",
        ),
    ] {
        replace_file(&wasm(candidate), &file)?;
        let digest = sha256_file(&wasm(candidate))?;
        let reports = wait_for_rules(&env.client, 1, "the refusal", |r| {
            r.refused.as_ref().is_some_and(|x| x.digest == *digest)
        })
        .await?;
        let rules = &reports[0].1;
        assert_eq!(rules.digest, *active, "{candidate}: the old rules stay");
        let why = rules.refused.as_ref().map_or("", |x| x.reason.as_str());
        assert!(why.contains(reason), "{candidate}: {why}");
        assert!(
            env.add("still-fine", 1).await?.ok(),
            "{candidate}: still serving"
        );
    }
    // `beaker rules status` shows the refusal.
    let status = beaker_cli(&env.nats.url(), &["rules", "status"])?;
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("last refused"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_load_fail_no_request() -> Result<()> {
    let (env, _dir, file) = with_rules_file("swap_under_load").await?;
    let digests = [
        sha256_file(&default_rules())?,
        sha256_file(&threshold_rules())?,
    ];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Four clients add 2000 units to a new product, again and again. The
    // default rules accept; the threshold rules refuse (ceiling 1000).
    let load = (0..4).map(|client_no| {
        let client = env.client.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let body = serde_json::json!({"product-sku": format!("p{client_no}-{n}"), "quantity": 2000});
                let reply = beaker_testkit::call(&client, "stock.add", body.to_string()).await;
                answers.push(reply);
            }
            answers
        })
    });
    let load: Vec<_> = load.collect();

    for swap in 0..20 {
        let next = if swap % 2 == 0 {
            threshold_rules()
        } else {
            default_rules()
        };
        replace_file(&next, &file)?;
        let next = &digests[(swap + 1) % 2];
        wait_for_rules(&env.client, 1, "the swap", |r| r.digest == **next).await?;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let (mut accepted, mut refused) = (0, 0);
    for answers in join_all(load).await {
        for answer in answers? {
            let answer = answer?; // a timeout or transport error fails the test
            if answer.ok() {
                assert_eq!(answer.level(), Some(2000));
                accepted += 1;
            } else {
                assert_eq!(answer.code, Some(409), "{:?}", answer.body);
                let message = answer.body["error"].as_str().unwrap_or_default();
                assert!(message.contains("holds at most 1000"), "{message}");
                refused += 1;
            }
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "both rule sets served: {accepted} / {refused}"
    );
    // Every applied change was decided by the rules that accept it.
    let deciders: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT rules_name FROM stock_movements")
            .fetch_all(&env.db.pool)
            .await?;
    assert_eq!(deciders, vec!["beaker-default-rules".to_string()]);
    assert_eq!(env.db.count("stock_movements").await?, accepted);
    Ok(())
}
