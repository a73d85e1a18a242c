//! `make api-fuzz`: schemathesis generates requests from the gateway's own
//! OpenAPI document and sends them through the gateway to a real service.
//! It needs Python packages (scripts/python-deps.sh installs them), so
//! `make test` leaves it out; `make api-fuzz` and CI run it.
//!
//! Settings: BEAKER_FUZZ_EXAMPLES (test cases per operation, default 100),
//! BEAKER_FUZZ_SEED (to replay a run), BEAKER_SCHEMATHESIS (the program).

use std::process::Command;

use anyhow::{Context, Result, bail};
use beaker_testkit::{GATEWAY_TOKEN, TestEnv, output_dir, workspace_root};

/// Checks that cannot hold for a gateway by design, each for a reason:
/// - negative_data_rejection: the gateway forwards any body and returns the
///   service's answer (a refusal is a 200 whose `NatsH-Nats-Service-Error-Code`
///   is 400), exactly what a NATS client gets;
/// - unsupported_method, allow_header_conformance: one URL template serves
///   POST, PUT and GET for every subject (Synadia's shape), while the
///   document lists, per subject, only the method that makes sense there.
const EXCLUDED_CHECKS: &str = "negative_data_rejection,unsupported_method,allow_header_conformance";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs schemathesis: run with `make api-fuzz`"]
async fn schemathesis_finds_no_server_error() -> Result<()> {
    let name = "api_fuzz";
    let root = workspace_root();
    let program = std::env::var("BEAKER_SCHEMATHESIS")
        .map(Into::into)
        .unwrap_or_else(|_| root.join(".beaker/venv/bin/schemathesis"));
    if !program.exists() {
        bail!(
            "{} is missing: run scripts/python-deps.sh (make api-fuzz does)",
            program.display()
        );
    }
    let examples = std::env::var("BEAKER_FUZZ_EXAMPLES").unwrap_or_else(|_| "100".into());
    let env = TestEnv::start_with_gateway(name).await?;
    let base = env.beaker.gateway_url()?;
    let output = output_dir(name);

    let mut command = Command::new(&program);
    command
        .current_dir(&output)
        .env("SCHEMATHESIS_HOOKS", root.join("tests/fuzz/hooks.py"))
        .arg("--config-file")
        .arg(root.join("tests/fuzz/schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", &base])
        .args([
            "--header",
            &format!("Authorization: Bearer {GATEWAY_TOKEN}"),
        ])
        .args(["--max-examples", &examples])
        // An event stream never ends: it has its own tests.
        .args(["--exclude-operation-id", "lowStockEvents"])
        .args(["--checks", "all", "--exclude-checks", EXCLUDED_CHECKS])
        .args(["--report", "junit", "--report-dir"])
        .arg(&output);
    if let Ok(seed) = std::env::var("BEAKER_FUZZ_SEED") {
        command.args(["--seed", &seed]);
    }
    let run = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("cannot run schemathesis")?;
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::write(output.join("schemathesis.log"), &transcript)?;
    println!("{transcript}");
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{transcript}"
    );

    // Nothing failed inside the service either, and whatever the fuzzer
    // did, every product's ledger still adds up to its level.
    let errors: Vec<_> = env
        .beaker
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM inventory i WHERE i.stock_level <> \
         (SELECT COALESCE(SUM(level_after - level_before), 0) FROM stock_movements m \
          WHERE m.product_sku = i.product_sku)",
    )
    .fetch_one(&env.db.pool)
    .await?;
    assert_eq!(mismatched, 0, "ledger and levels disagree");
    Ok(())
}
