//! Rules through the bucket (`beaker rules deploy`): every instance
//! follows, rollback undoes, a shadow is compared and never applied until
//! promoted, and a deploy with nobody to reach says so.

use std::time::Duration;

use anyhow::Result;
use beaker_testkit::{TestEnv, beaker_cli, rules_reports, sha256_file, wait_for_rules};

use super::{default_rules, threshold_rules};

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
    // Off a terminal the progress is plain lines, the last one the
    // outcome: no spinner, no control characters.
    let progress = String::from_utf8_lossy(&deployed.stderr);
    assert!(progress.contains(": 2 done, 0 refused\n"), "{progress}");
    assert!(
        !progress.chars().any(|c| c.is_control() && c != '\n'),
        "{progress:?}"
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

    // Before the first deploy came the instances' rules files: rollback
    // returns to them, and goes no further.
    let rolled_back = beaker_cli(&url, &["rules", "rollback"])?;
    assert_eq!(
        rolled_back.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rolled_back.stderr)
    );
    let file_digest = sha256_file(&default_rules())?;
    wait_for_rules(&env.client, 2, "the rollback to the files", |r| {
        r.digest == *file_digest && r.origin.starts_with("file:")
    })
    .await?;
    assert!(env.add("cap", 2000).await?.ok());
    let further = beaker_cli(&url, &["rules", "rollback"])?;
    assert_eq!(further.status.code(), Some(1));
    let said = String::from_utf8_lossy(&further.stderr);
    assert!(said.contains("already serve their rules files"), "{said}");

    // Deploy the threshold rules and then the defaults; roll back to the
    // threshold rules.
    let default = default_rules();
    for rules in [path, default.to_str().unwrap_or_default()] {
        let deployed = beaker_cli(&url, &["rules", "deploy", rules])?;
        assert_eq!(deployed.status.code(), Some(0), "{rules}");
    }
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
