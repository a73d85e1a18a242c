//! The host's log lines: trace and span ids on the lines a request writes,
//! and no secret (tokens, passwords, passwords inside URLs) ever written.

use anyhow::{Context, Result};
use beaker_testkit::{Beaker, BeakerConfig, NatsServer, TestDb, TestEnv, call_with_headers};

use super::{CALLER_SPAN, TRACE_ID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_inside_a_request_carry_its_trace_and_span_ids() -> Result<()> {
    let env = TestEnv::start("log_trace_ids").await?;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    call_with_headers(
        &env.client,
        "stock.remove",
        &[("traceparent", traceparent.as_str())],
        r#"{"product-sku":"nothing-here","quantity":1}"#,
    )
    .await?;
    env.add("x", 1).await?; // a second request, so the first has been logged
    let line = env
        .beaker
        .log_lines()
        .into_iter()
        .find(|l| l["message"] == "refused")
        .context("the refusal is logged")?;
    assert_eq!(line["level"], "INFO", "a caller's mistake logs at info");
    let request = line["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["name"] == "request"))
        .context("request span in the log line")?;
    assert_eq!(request["trace_id"], TRACE_ID);
    assert_eq!(request["span_id"].as_str().map(str::len), Some(16));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_ever_reaches_the_logs() -> Result<()> {
    const NATS_TOKEN: &str = "nats-T0ken-s3cret";
    const DB_PASSWORD: &str = "db-Pa55w0rd-s3cret";
    const GATEWAY_TOKEN: &str = "gw-T0ken-s3cret";
    let nats = NatsServer::start_with("no_secrets", &["--auth", NATS_TOKEN])?;
    let db = TestDb::create().await?;
    let mut config = BeakerConfig::new("no_secrets", &nats, &db)
        .env("NATS_TOKEN", NATS_TOKEN)
        .env("BEAKER_GATEWAY_ADDR", "127.0.0.1:0")
        .env("BEAKER_GATEWAY_TOKENS", GATEWAY_TOKEN)
        .env("RUST_LOG", "debug")
        .arg("--gateway");
    // Postgres here trusts local connections, so any password works; the
    // host must still never write it down.
    config.database_url = db
        .url
        .replace("postgres@", &format!("postgres:{DB_PASSWORD}@"));
    let beaker = Beaker::start(&config)?;
    let client = async_nats::ConnectOptions::with_token(NATS_TOKEN.into())
        .connect(nats.url())
        .await?;
    beaker_testkit::call(&client, "stock.add", r#"{"product-sku":"s","quantity":1}"#).await?;
    beaker_testkit::call(&client, "stock.remove", "{bad").await?;
    // A client command that fails to authenticate, and one that works.
    let wrong = std::process::Command::new(beaker_testkit::beaker_bin())
        .args(["call", "stock.get", r#"{"product-sku":"s"}"#])
        .env("NATS_URL", nats.url())
        .env("NATS_TOKEN", format!("{NATS_TOKEN}-wrong"))
        .env("RUST_LOG", "debug")
        .output()?;
    assert_ne!(wrong.status.code(), Some(0));
    let right = std::process::Command::new(beaker_testkit::beaker_bin())
        .args(["call", "stock.get", r#"{"product-sku":"s"}"#])
        .env("NATS_URL", nats.url())
        .env("NATS_TOKEN", NATS_TOKEN)
        .env("RUST_LOG", "debug")
        .output()?;
    assert_eq!(
        right.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );

    let mut everything = std::fs::read_to_string(&beaker.log)?;
    everything.push_str(&String::from_utf8_lossy(&wrong.stderr));
    everything.push_str(&String::from_utf8_lossy(&right.stderr));
    assert!(everything.lines().count() > 20, "the logs were written");
    for secret in [NATS_TOKEN, DB_PASSWORD, GATEWAY_TOKEN] {
        assert!(!everything.contains(secret), "{secret} appears in the logs");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_in_urls_stay_out_of_the_logs() -> Result<()> {
    const NATS_PASSWORD: &str = "nats-Pa55-s3cret";
    let nats = NatsServer::start_with(
        "no_secrets_in_urls",
        &["--user", "svc", "--pass", NATS_PASSWORD],
    )?;
    let db = TestDb::create().await?;
    let mut config = BeakerConfig::new("no_secrets_in_urls", &nats, &db).env("RUST_LOG", "trace");
    config.nats_url = format!("nats://svc:{NATS_PASSWORD}@127.0.0.1:{}", nats.port);
    let beaker = Beaker::start(&config)?;
    let client =
        async_nats::ConnectOptions::with_user_and_password("svc".into(), NATS_PASSWORD.into())
            .connect(nats.url())
            .await?;
    let reply =
        beaker_testkit::call(&client, "stock.add", r#"{"product-sku":"u","quantity":1}"#).await?;
    assert!(reply.ok(), "{:?}", reply.body);
    let log = std::fs::read_to_string(&beaker.log)?;
    assert!(
        log.contains("nats://***@127.0.0.1"),
        "the URL is logged, redacted"
    );
    assert!(
        !log.contains(NATS_PASSWORD),
        "the password appears in the logs"
    );
    Ok(())
}
