//! `beaker rules replay`: the ledger's recorded changes through a candidate,
//! each against the stock it saw, reporting where the candidate would have
//! decided otherwise; read only.

use anyhow::{Context, Result};
use beaker_testkit::{TestEnv, beaker_cli, beaker_cli_run};
use serde_json::Value;

use super::{default_rules, threshold_rules};

fn replay(
    env: &TestEnv,
    rules: &std::path::Path,
    extra: &[&str],
) -> Result<(Option<i32>, String, String)> {
    let mut args = vec![
        "rules",
        "replay",
        rules.to_str().unwrap_or_default(),
        "--database-url",
        &env.db.url,
    ];
    args.extend_from_slice(extra);
    Ok(beaker_cli_run(&env.nats.url(), &args)?.into_parts())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reports_where_a_candidate_would_have_decided_otherwise() -> Result<()> {
    let env = TestEnv::start("rules_replay").await?;
    // A known history under the default rules. What the threshold rules
    // (a ceiling of 1,000; low stock announced only on crossing below 10)
    // would have said of each, against the stock each saw:
    assert!(env.add("w1", 5).await?.ok()); // level 5: the same
    assert!(env.add("w1", 2000).await?.ok()); // 2005: above their ceiling: refused
    assert!(env.remove("w1", 2000).await?.ok()); // 5 and low stock (crossing): the same
    assert!(env.remove("w1", 1).await?.ok()); // 4 and low stock again: they stay silent
    assert!(env.add("w2", 3).await?.ok()); // the same
    assert_eq!(env.remove("w2", 9).await?.code, Some(409)); // refused: not recorded
    let ledger_before = env.db.count("stock_movements").await?;

    // The rules that decided all this find nothing to report.
    let (code, out, err) = replay(&env, &default_rules(), &[])?;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.starts_with("replayed 5 recorded change(s) through beaker-default-rules"),
        "{out}"
    );

    // The threshold rules differ twice, and say how.
    let (code, out, err) = replay(&env, &threshold_rules(), &[])?;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(out.contains("the first 2 of 2 difference(s)"), "{out}");
    assert!(out.contains("add 2000 with 5"), "{out}");
    assert!(
        out.contains("rule-violated (cannot add 2000 units of w1"),
        "{out}"
    );
    assert!(out.contains("remove 1 with 5"), "{out}");
    assert!(
        out.contains("ok level 4 +low-stock:4"),
        "the recorded event: {out}"
    );

    let (_, json, _) = replay(&env, &threshold_rules(), &["--json"])?;
    let document: Value = serde_json::from_str(&json).context("one JSON document")?;
    let counts = &document["counts"];
    assert_eq!(counts["replayed"], 5);
    assert_eq!(counts["same"], 3);
    assert_eq!(counts["would_refuse"], 1);
    assert_eq!(counts["other_events"], 1);
    assert_eq!(counts["other_level"], 0);
    assert_eq!(counts["events_unknown"], 0, "the outbox holds every event");
    let examples = document["examples"].as_array().context("examples")?;
    assert_eq!(examples[0]["verdict"], "would-refuse");
    assert_eq!(examples[1]["verdict"], "other-events");
    assert_eq!(examples[1]["recorded_rules"], "beaker-default-rules 0.1.0");

    // One product only; a window that holds nothing.
    let (code, out, _) = replay(&env, &threshold_rules(), &["--product", "w2"])?;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("replayed 1 recorded change(s)"), "{out}");
    let (_, json, _) = replay(
        &env,
        &threshold_rules(),
        &["--since", "1h", "--examples", "1", "--json"],
    )?;
    let document: Value = serde_json::from_str(&json)?;
    assert_eq!(document["counts"]["replayed"], 5);
    assert_eq!(document["examples"].as_array().map(Vec::len), Some(1));

    // Read only: nothing was added to the ledger.
    assert_eq!(env.db.count("stock_movements").await?, ledger_before);

    // A database that does not answer: 3, and why.
    let output = beaker_cli(
        &env.nats.url(),
        &[
            "rules",
            "replay",
            default_rules().to_str().unwrap_or_default(),
            "--database-url",
            "postgres://postgres@127.0.0.1:1/none",
        ],
    )?;
    assert_eq!(output.status.code(), Some(3));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("cannot read"), "{said}");
    Ok(())
}
