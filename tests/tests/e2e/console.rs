//! The operator console in a real browser: headless Chromium (the
//! system's) driven by playwright-core through `tests/browser/`. `make
//! test` installs both when they are missing (scripts/browser-deps.sh).

use std::process::Command;

use anyhow::{Context, Result, bail};
use beaker_testkit::{GATEWAY_TOKEN, TestEnv, output_dir, workspace_root};

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_looks_up_adds_removes_and_sees_events_in_the_console() -> Result<()> {
    let name = "console_in_chromium";
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
    let env = TestEnv::start_with_gateway(name).await?;
    let output = output_dir(name);
    let _ = std::fs::remove_file(output.join("console.png"));
    let run = tokio::task::spawn_blocking({
        let url = env.beaker.gateway_url()?;
        let output = output.clone();
        move || {
            Command::new("node")
                .arg("console.test.mjs")
                .current_dir(&browser)
                .env("BEAKER_CONSOLE_URL", url)
                .env("BEAKER_GATEWAY_TOKEN", GATEWAY_TOKEN)
                .env("BEAKER_SKU", "console-widget")
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
    std::fs::write(output.join("browser.log"), &transcript)?;
    assert!(run.status.success(), "{transcript}");

    // What the operator did through the page really happened.
    assert_eq!(env.db.level("console-widget").await?, Some(7));
    assert_eq!(env.db.ledger_sum("console-widget").await?, 7);
    let screenshot = std::fs::read(output.join("console.png"))?;
    assert!(screenshot.starts_with(b"\x89PNG"), "not a PNG");
    Ok(())
}
