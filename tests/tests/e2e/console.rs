//! The operator console in a real browser: headless Chromium (the
//! system's) driven by playwright-core through `tests/browser/`. `make
//! test` installs both when they are missing (scripts/browser-deps.sh).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use beaker_testkit::proxy::TcpProxy;
use beaker_testkit::{
    Beaker, BeakerConfig, GATEWAY_TOKEN, NatsServer, TestDb, TestEnv, beaker_cli, output_dir,
    sha256_file, wait_for_rules, wasm, workspace_root,
};
use serde_json::Value;

use crate::gateway::operator::{OPERATOR_TOKEN, deploy, with_operator};

/// A product with more movements than the console shows at once (50).
const PAGED_SKU: &str = "console-paged";
const PAGED_COUNT: u32 = 55;

/// What the operator's walk through the console leaves in its output.
const SCREENSHOTS: [&str; 4] = [
    "console.png",
    "console-history.png",
    "console-promoted.png",
    "console-operator.png",
];

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

/// Runs one script of `tests/browser/` with `env`, keeping its transcript
/// in `output`; fails with the transcript when the script fails.
async fn run_browser(script: &str, output: &Path, env: Vec<(&'static str, String)>) -> Result<()> {
    let browser = workspace_root().join("tests/browser");
    if !browser.join("node_modules/playwright-core").exists()
        || !std::path::Path::new(&chromium()).exists()
    {
        bail!(
            "the browser test needs Chromium at {} and tests/browser/node_modules: \
             run scripts/browser-deps.sh (make test does)",
            chromium()
        );
    }
    let run = tokio::task::spawn_blocking({
        let script = script.to_string();
        let output = output.to_path_buf();
        move || {
            Command::new("node")
                .arg(&script)
                .current_dir(&browser)
                .envs(env)
                .env("BEAKER_OUTPUT_DIR", &output)
                .env("CHROMIUM", chromium())
                .output()
        }
    })
    .await?
    .context("cannot run node")?;
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::write(output.join(format!("{script}.log")), &transcript)?;
    assert!(run.status.success(), "{transcript}");
    Ok(())
}

fn assert_png(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        path.display()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_instances_rules_and_a_product_and_promotes_and_rolls_back() -> Result<()>
{
    let name = "console_in_chromium";
    let env = TestEnv::start_with(name, with_operator).await?;
    let _second = env.start_another(|c| c)?;
    wait_for_rules(&env.client, 2, "both instances", |_| true).await?;
    // The default rules active, the threshold rules as their shadow.
    deploy(&env, "beaker_rules", false)?;
    deploy(&env, "beaker_rules_threshold", true)?;
    for _ in 0..PAGED_COUNT {
        let added = env.add(PAGED_SKU, 1).await?;
        assert!(added.ok(), "{:?}", added.body);
    }
    let output = output_dir(name);
    for old in SCREENSHOTS {
        let _ = std::fs::remove_file(output.join(old));
    }

    run_browser(
        "console.test.mjs",
        &output,
        vec![
            ("BEAKER_CONSOLE_URL", env.beaker.gateway_url()?),
            ("BEAKER_GATEWAY_TOKEN", GATEWAY_TOKEN.to_string()),
            ("BEAKER_OPERATOR_TOKEN", OPERATOR_TOKEN.to_string()),
            ("BEAKER_INSTANCES", "2".to_string()),
            ("BEAKER_SKU", "console-widget".to_string()),
            ("BEAKER_PAGED_SKU", PAGED_SKU.to_string()),
            ("BEAKER_PAGED_COUNT", PAGED_COUNT.to_string()),
        ],
    )
    .await?;

    // What the operator did through the page really happened: the stock...
    assert_eq!(env.db.level("console-widget").await?, Some(7));
    assert_eq!(env.db.ledger_sum("console-widget").await?, 7);
    // ...and the promote then the two rollbacks: every instance serves its
    // rules file again (the default rules), with no shadow and nothing
    // earlier.
    let status = beaker_cli(&env.nats.url(), &["rules", "status", "--json"])?;
    let status: Value = serde_json::from_slice(&status.stdout)?;
    let default = sha256_file(&wasm("beaker_rules"))?;
    assert_eq!(status["bucket"]["active"]["rules"], "file");
    assert_eq!(status["bucket"]["active"]["history"], Value::Array(vec![]));
    assert_eq!(status["bucket"]["shadow"], Value::Null);
    wait_for_rules(&env.client, 2, "the rollback", |r| {
        r.digest == *default && r.origin.starts_with("file:")
    })
    .await?;
    for screenshot in SCREENSHOTS {
        assert_png(&output.join(screenshot))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_says_whether_the_database_the_service_or_nats_is_down() -> Result<()> {
    let name = "console_outages";
    let mut nats = NatsServer::start(name)?;
    let db = TestDb::create().await?;
    // The service reaches Postgres through a proxy the test can cut.
    let proxy = TcpProxy::start("127.0.0.1:5432".parse()?).await?;
    // It gives up on the database well within the gateway's timeout
    // (2 s), so that its 503 reaches the page rather than the gateway's 504.
    let mut config = BeakerConfig::new(name, &nats, &db).env("BEAKER_DB_ACQUIRE_TIMEOUT_MS", "500");
    config.database_url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let service = Beaker::start(&config)?;
    // A gateway of its own, which outlives the service.
    let gateway = Beaker::start(
        &BeakerConfig::standalone_gateway(name, &nats).env("BEAKER_GATEWAY_TOKENS", GATEWAY_TOKEN),
    )?;
    let url = gateway.gateway_url()?;
    let output = output_dir(name);
    let outage = |expect: &str| {
        vec![
            ("BEAKER_CONSOLE_URL", url.clone()),
            ("BEAKER_GATEWAY_TOKEN", GATEWAY_TOKEN.to_string()),
            ("BEAKER_EXPECT", expect.to_string()),
        ]
    };

    proxy.cut();
    run_browser("console-down.test.mjs", &output, outage("database")).await?;
    drop(service);
    run_browser("console-down.test.mjs", &output, outage("service")).await?;
    nats.kill();
    run_browser("console-down.test.mjs", &output, outage("nats")).await?;
    for screenshot in ["database", "service", "nats"] {
        assert_png(&output.join(format!("console-{screenshot}-down.png")))?;
    }
    drop(gateway);
    Ok(())
}
