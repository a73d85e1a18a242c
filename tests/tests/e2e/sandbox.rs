//! A hostile rules component fails its own requests and nothing else: a
//! loop meets the deadline, unbounded allocation meets the memory cap, a
//! panic traps, and nonsense decisions are refused by the host; each is
//! logged and counted as what it was.

use std::time::{Duration, Instant};

use anyhow::Result;
use beaker_testkit::{TestEnv, metric_sum, scrape_metrics, wasm};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_behaviour_fails_only_its_own_request() -> Result<()> {
    let env = TestEnv::start_with("sandbox_hostile", |mut c| {
        c.rules = wasm("beaker_test_rules_hostile");
        // Far above what growing to the memory cap takes, even on a busy
        // machine, so that `grow` meets the cap and not the deadline.
        c.env("BEAKER_RULES_DEADLINE_MS", "500")
            .env("BEAKER_RULES_MEMORY_MIB", "16")
    })
    .await?;
    env.add("fine", 5).await?;
    for sku in ["wrong-event", "many-events"] {
        sqlx::query("INSERT INTO inventory (product_sku, stock_level) VALUES ($1, 5)")
            .bind(sku)
            .execute(&env.db.pool)
            .await?;
    }
    let movements = env.db.count("stock_movements").await?;
    let before = scrape_metrics(&env.beaker).await?;

    let cases = [
        ("loop", "deadline"),
        ("grow", "memory"),
        ("panic", "trap"),
        ("huge-level", "invalid_decision"),
        ("wrong-event", "invalid_decision"),
        ("many-events", "invalid_decision"),
    ];
    for (sku, _) in cases {
        let started = Instant::now();
        let reply = env.remove(sku, 1).await?;
        let took = started.elapsed();
        assert_eq!(reply.code, Some(500), "{sku}: {:?}", reply.body);
        let message = reply.body["error"].as_str().unwrap_or_default();
        assert_eq!(
            message,
            "the inventory rules failed on this request; nothing was changed"
        );
        assert!(took < Duration::from_secs(2), "{sku} took {took:?}");
        // Meanwhile the service serves everyone else.
        assert_eq!(env.add("fine", 1).await?.code, None, "after {sku}");
    }
    assert_eq!(env.db.level("fine").await?, Some(11));
    assert_eq!(env.db.level("wrong-event").await?, Some(5));
    assert_eq!(env.db.level("loop").await?, None);
    assert_eq!(
        env.db.count("stock_movements").await? - movements,
        6,
        "only the six adds of `fine`"
    );
    assert_eq!(env.db.count("outbox").await?, 0);

    // Each violation is logged as what it was.
    let violations: Vec<String> = env
        .beaker
        .log_lines()
        .iter()
        .filter(|l| l["message"] == "rules call failed")
        .filter_map(|l| l["violation"].as_str().map(str::to_string))
        .collect();
    let expected: Vec<String> = cases.iter().map(|(_, v)| v.to_string()).collect();
    assert_eq!(violations, expected);

    // And counted, kind by kind, exactly as many times as it happened.
    let after = scrape_metrics(&env.beaker).await?;
    let violations_total = "beaker_rules_violations_total";
    for (kind, count) in [
        ("deadline", 1.0),
        ("memory", 1.0),
        ("trap", 1.0),
        ("invalid_decision", 3.0),
        ("exhausted", 0.0),
    ] {
        let counted = metric_sum(&after, violations_total, &[("kind", kind)])
            - metric_sum(&before, violations_total, &[("kind", kind)]);
        assert_eq!(counted, count, "{kind} violations counted");
    }
    assert!(
        after
            .keys()
            .any(|s| s.starts_with(violations_total) && s.contains("kind=\"exhausted\"")),
        "every kind is exported, even at 0"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_asking_for_the_filesystem_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("wants-files.wat");
    std::fs::write(
        &path,
        r#"(component (import "wasi:filesystem/preopens@0.2.6" (instance (export "get-directories" (func)))))"#,
    )?;
    let output = beaker_testkit::beaker_cli(
        "nats://127.0.0.1:1",
        &["rules", "check", path.to_str().unwrap_or_default()],
    )?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wasi:filesystem/preopens"), "{stderr}");
    Ok(())
}
