//! A stop is bounded whatever is missing: with NATS gone, with Postgres
//! gone, with a request stuck on a row lock, SIGTERM ends the process
//! within `--shutdown-timeout`. A stop that had to cut something off says
//! what (requests in flight, events left in the outbox) and exits 1; a
//! stop that finished everything exits 0.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use beaker_testkit::proxy::TcpProxy;
use beaker_testkit::{Beaker, BeakerConfig, NatsServer, TestDb, TestEnv};
use nix::sys::signal::Signal;
use serde_json::Value;

/// The deadline these tests give the host.
const DEADLINE: Duration = Duration::from_secs(2);
/// What the process may take beyond its deadline to end: the runtime's
/// last half second and the exit itself.
const MARGIN: Duration = Duration::from_millis(1500);

fn with_deadline(config: BeakerConfig) -> BeakerConfig {
    config.env(
        "BEAKER_SHUTDOWN_TIMEOUT",
        format!("{}ms", DEADLINE.as_millis()),
    )
}

/// Sends SIGTERM and returns the exit code and how long the stop took.
fn terminate(beaker: &mut Beaker) -> Result<(Option<i32>, Duration)> {
    let started = Instant::now();
    let status = beaker.signal_and_wait(Signal::SIGTERM, DEADLINE * 5)?;
    Ok((status.code(), started.elapsed()))
}

fn message_logged(beaker: &Beaker, message: &str) -> Option<Value> {
    beaker.log_lines().into_iter().find(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(message))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_nats_gone_stops_within_the_deadline() -> Result<()> {
    let mut env = TestEnv::start_with("shutdown_nats_gone", with_deadline).await?;
    let answer = env.add("before-the-outage", 3).await?;
    ensure!(answer.ok(), "{:?}", answer.body);
    let seen = env.beaker.log_lines().len();
    env.nats.kill();
    env.beaker
        .wait_for_log(seen, Duration::from_secs(30), |l| {
            l["message"] == "NATS connection lost; reconnecting"
        })
        .await?;
    let (code, took) = terminate(&mut env.beaker)?;
    ensure!(
        took <= DEADLINE + MARGIN,
        "the host took {took:?} to stop without NATS; its deadline is {DEADLINE:?}"
    );
    // Nothing was in flight and nothing was left to publish: a clean stop.
    ensure!(
        code == Some(0),
        "exit status {code:?}: {}",
        env.beaker.log_text()
    );
    ensure!(message_logged(&env.beaker, "stopped").is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_postgres_gone_stops_within_the_deadline() -> Result<()> {
    let nats = NatsServer::start("shutdown_postgres_gone")?;
    let db = TestDb::create().await?;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse()?).await?;
    let mut config = with_deadline(BeakerConfig::new("shutdown_postgres_gone", &nats, &db));
    config.database_url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let mut beaker = Beaker::start(&config)?;
    let client = nats.client().await?;
    let answer = beaker_testkit::call(
        &client,
        "stock.add",
        r#"{"product-sku":"before-the-outage","quantity":3}"#,
    )
    .await?;
    ensure!(answer.ok(), "{:?}", answer.body);
    proxy.cut();
    // The host has noticed: a request now gets a 503.
    let answer = beaker_testkit::call(
        &client,
        "stock.add",
        r#"{"product-sku":"during-the-outage","quantity":3}"#,
    )
    .await?;
    ensure!(answer.code == Some(503), "{:?}", answer.body);
    let (code, took) = terminate(&mut beaker)?;
    ensure!(
        took <= DEADLINE + MARGIN,
        "the host took {took:?} to stop without Postgres; its deadline is {DEADLINE:?}"
    );
    match code {
        Some(0) => ensure!(message_logged(&beaker, "stopped").is_some()),
        // Reaching for the database (the relay's last round, closing the
        // pool) may take the whole allowance: then the stop says so.
        Some(1) => ensure!(
            message_logged(&beaker, "stopped at the shutdown deadline").is_some(),
            "{}",
            beaker.log_text()
        ),
        other => anyhow::bail!("exit status {other:?}: {}", beaker.log_text()),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_request_stuck_on_a_row_lock_abandons_it_at_the_deadline() -> Result<()> {
    // The statement timeout is far away: only the deadline can end the
    // request's wait.
    let mut env = TestEnv::start_with("shutdown_row_lock", |c| {
        with_deadline(c).env("BEAKER_DB_STATEMENT_TIMEOUT_MS", "120000")
    })
    .await?;
    ensure!(env.add("held", 10).await?.ok());
    let lock = env.db.lock_row("held").await?;
    let client = env.client.clone();
    let stuck = tokio::spawn(async move {
        let request = async_nats::Request::new()
            .payload(r#"{"product-sku":"held","quantity":4}"#.into())
            .timeout(Some(Duration::from_secs(20)));
        client.send_request("stock.remove", request).await
    });
    beaker_testkit::wait_until(
        "the remove to wait for the lock",
        Duration::from_secs(30),
        || env.db.host_waits_for_a_lock(),
    )
    .await?;

    let (code, took) = terminate(&mut env.beaker)?;
    ensure!(
        took <= DEADLINE + MARGIN,
        "the host took {took:?} to stop; its deadline is {DEADLINE:?}"
    );
    ensure!(
        code == Some(1),
        "exit status {code:?}: a cut-off stop is not clean"
    );
    let report = message_logged(&env.beaker, "stopped at the shutdown deadline")
        .context("the stop does not say what it abandoned")?;
    ensure!(report["requests_in_flight"] == 1, "{report}");
    ensure!(report["outbox_pending"] == "0", "{report}");

    // The abandoned change is not applied: its transaction ended with the
    // process.
    drop(lock);
    ensure!(
        stuck.await?.is_err(),
        "the abandoned request was answered after all"
    );
    ensure!(env.db.level("held").await? == Some(10));
    let moved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stock_movements WHERE product_sku = 'held' AND operation = 'remove'",
    )
    .fetch_one(&env.db.pool)
    .await?;
    ensure!(moved == 0, "the abandoned remove reached the ledger");
    Ok(())
}
