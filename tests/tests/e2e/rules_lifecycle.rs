//! Rules change on running hosts: through the watched file and through the
//! bucket (`beaker rules deploy`), atomically, refusing what does not pass,
//! with shadow, promote and rollback.

use std::time::Duration;

use anyhow::Result;
use beaker_testkit::{
    TestEnv, beaker_cli, replace_file, rules_reports, sha256_file, wait_for_rules, wasm,
};
use futures::future::join_all;

fn default_rules() -> std::path::PathBuf {
    wasm("beaker_rules")
}
fn threshold_rules() -> std::path::PathBuf {
    wasm("beaker_rules_threshold")
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deploy_reaches_every_instance_and_rollback_undoes_it() -> Result<()> {
    let env = TestEnv::start("deploy_two_instances").await?;
    let _second = env.start_another(|c| c)?;
    let url = env.nats.url();
    let threshold = threshold_rules();
    let path = threshold.to_str().unwrap_or_default();

    let deployed = beaker_cli(&url, &["rules", "deploy", path])?;
    let stdout = String::from_utf8_lossy(&deployed.stdout);
    assert_eq!(
        deployed.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let digest = sha256_file(&threshold)?;
    let reports = wait_for_rules(&env.client, 2, "the deploy", |r| r.digest == *digest).await?;
    for (id, _) in &reports {
        assert!(stdout.contains(id), "deploy lists instance {id}: {stdout}");
    }
    let status = beaker_cli(&url, &["rules", "status"])?;
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(
        text.matches("beaker-threshold-rules 1.0.0").count(),
        3,
        "bucket + two instances: {text}"
    );
    assert_eq!(env.add("cap", 2000).await?.code, Some(409));

    let rolled_back = beaker_cli(&url, &["rules", "rollback"])?;
    // Nothing was deployed through the bucket before: nothing to roll back to.
    assert_eq!(rolled_back.status.code(), Some(1));

    // Deploy the defaults, then roll back to the threshold rules.
    let default = default_rules();
    let again = beaker_cli(
        &url,
        &["rules", "deploy", default.to_str().unwrap_or_default()],
    )?;
    assert_eq!(again.status.code(), Some(0));
    assert!(env.add("cap", 2000).await?.ok());
    let rolled_back = beaker_cli(&url, &["rules", "rollback"])?;
    assert_eq!(
        rolled_back.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rolled_back.stderr)
    );
    wait_for_rules(&env.client, 2, "the deploy", |r| r.digest == *digest).await?;
    assert_eq!(env.add("cap2", 2000).await?.code, Some(409));

    // A third instance started now serves the deployed rules from the start.
    let third = env.start_another(|c| c)?;
    wait_for_rules(&env.client, 3, "the deploy", |r| r.digest == *digest).await?;
    drop(third);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_rules_are_compared_never_applied_then_promoted() -> Result<()> {
    let env = TestEnv::start("shadow_rules").await?;
    let url = env.nats.url();
    let threshold = threshold_rules();
    let shadow = beaker_cli(
        &url,
        &[
            "rules",
            "deploy",
            "--shadow",
            threshold.to_str().unwrap_or_default(),
        ],
    )?;
    assert_eq!(
        shadow.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&shadow.stderr)
    );

    // A known mix: five adds the shadow would refuse (diverge), three gets
    // and two small removes both agree on.
    for n in 0..5 {
        assert!(env.add(&format!("big-{n}"), 2000).await?.ok());
    }
    for n in 0..3 {
        env.get(&format!("big-{n}")).await?;
    }
    env.remove("big-0", 1).await?;
    env.remove("big-1", 1).await?;
    let reports = wait_for_rules(&env.client, 1, "five agreements", |r| {
        r.shadow.as_ref().is_some_and(|s| s.agreements == 5)
    })
    .await?;
    let shadow = reports[0]
        .1
        .shadow
        .clone()
        .unwrap_or_else(|| unreachable!());
    assert_eq!((shadow.divergences, shadow.failures), (5, 0));
    // Nothing the shadow decided was applied.
    assert_eq!(env.db.level("big-2").await?, Some(2000));
    let names: Vec<String> = sqlx::query_scalar("SELECT DISTINCT rules_name FROM stock_movements")
        .fetch_all(&env.db.pool)
        .await?;
    assert_eq!(names, vec!["beaker-default-rules".to_string()]);
    // Each divergence was logged with both decisions.
    let divergences = env
        .beaker
        .log_lines()
        .into_iter()
        .filter(|l| l["message"] == "shadow rules diverge")
        .collect::<Vec<_>>();
    assert_eq!(divergences.len(), 5);
    assert!(
        divergences[0]["shadow"]
            .as_str()
            .unwrap_or("")
            .starts_with("rule-violated")
    );
    let status =
        String::from_utf8_lossy(&beaker_cli(&url, &["rules", "status"])?.stdout).to_string();
    assert!(status.contains("5 agree, 5 diverge"), "{status}");

    let promoted = beaker_cli(&url, &["rules", "promote"])?;
    assert_eq!(
        promoted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert_eq!(env.add("big-9", 2000).await?.code, Some(409));
    let reports = rules_reports(&env.client, Duration::from_millis(200)).await?;
    assert!(
        reports[0].1.shadow.is_none(),
        "the shadow is gone once promoted"
    );
    Ok(())
}

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
async fn deploy_says_clearly_when_nats_or_instances_are_missing() -> Result<()> {
    let port = beaker_testkit::free_port()?;
    let path = threshold_rules();
    let path = path.to_str().unwrap_or_default();
    let no_nats = beaker_cli(
        &format!("nats://127.0.0.1:{port}"),
        &["rules", "deploy", path],
    )?;
    assert_eq!(no_nats.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&no_nats.stderr).contains("cannot connect to NATS"));

    let nats = beaker_testkit::NatsServer::start("deploy_no_instances")?;
    let nobody = beaker_cli(&nats.url(), &["rules", "deploy", path])?;
    assert_eq!(nobody.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no running instance answered"));
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
