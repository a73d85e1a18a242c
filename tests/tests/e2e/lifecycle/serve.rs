//! The `serve` command's start and stop: the drain on SIGTERM, start-up
//! failures with clear messages, and the migrations, at start and by
//! `beaker migrate`.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use beaker_testkit::{BeakerConfig, NatsServer, TestDb, TestEnv, beaker_bin};
use futures::future::join_all;
use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_everything_received_and_exits_zero() -> Result<()> {
    let mut env = TestEnv::start("sigterm_drains").await?;
    for n in 0..30 {
        env.add(&format!("drain-{n}"), 1_000).await?;
    }

    // A burst of requests, then SIGTERM while they are in flight.
    let client = env.client.clone();
    let burst = tokio::spawn(async move {
        join_all((0..300).map(|n| {
            let client = client.clone();
            async move {
                let body = format!(r#"{{"product-sku":"drain-{}","quantity":1}}"#, n % 30);
                // Generous: a slow machine must not turn into a false alarm.
                let request = async_nats::Request::new()
                    .payload(body.into())
                    .timeout(Some(Duration::from_secs(20)));
                client.send_request("stock.remove", request).await
            }
        }))
        .await
    });
    // Let the burst reach the server, then stop.
    beaker_testkit::server_roundtrip(&env.client).await?;
    let status = env
        .beaker
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(15))?;
    assert!(status.success(), "exit status {status}");

    let mut answered = 0;
    let mut lost = 0;
    for result in burst.await? {
        match result {
            Ok(reply) => {
                let answer = beaker_testkit::answer_from(reply);
                if answer.ok() {
                    answered += 1;
                } else {
                    // Past the limit of requests in flight: an immediate 503.
                    assert_eq!(answer.code, Some(503), "{:?}", answer.body);
                }
            }
            // After the unsubscription, the server says so at once.
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {}
            // A request published in the very moment the server processes
            // the unsubscription can be routed to it yet arrive after the
            // subscription is gone: NATS drops it. It was never handled,
            // so it must not have been applied (checked below).
            Err(e) if e.kind() == async_nats::RequestErrorKind::TimedOut => lost += 1,
            Err(e) => return Err(e.into()),
        }
    }
    assert!(lost <= 10, "{lost} requests unanswered");
    // The books agree with what the callers were told: every applied
    // change was answered.
    let mut total: i64 = 0;
    for n in 0..30 {
        let sku = format!("drain-{n}");
        let level = i64::from(env.db.level(&sku).await?.unwrap_or(-1));
        assert_eq!(env.db.ledger_sum(&sku).await?, level);
        total += level;
    }
    assert_eq!(total, 30 * 1_000 - answered);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_rules_file_stops_start_up_with_a_clear_message() -> Result<()> {
    let nats = NatsServer::start("missing_rules")?;
    let db = TestDb::create().await?;
    let mut config = BeakerConfig::new("missing_rules", &nats, &db);
    config.rules = "/nonexistent/rules.wasm".into();
    let output = Command::new(beaker_bin())
        .arg("serve")
        .env("NATS_URL", &config.nats_url)
        .env("DATABASE_URL", &config.database_url)
        .env("BEAKER_RULES", &config.rules)
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read rules component /nonexistent/rules.wasm"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_nats_stops_start_up_with_a_clear_message() -> Result<()> {
    let db = TestDb::create().await?;
    let port = beaker_testkit::free_port()?;
    let output = Command::new(beaker_bin())
        .arg("serve")
        .env("NATS_URL", format!("nats://127.0.0.1:{port}"))
        .env("NATS_CONNECT_TIMEOUT_MS", "500")
        .env("DATABASE_URL", &db.url)
        .env("BEAKER_RULES", beaker_testkit::default_rules())
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot connect to NATS at nats://127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_database_and_is_idempotent() -> Result<()> {
    let db = TestDb::create().await?;
    // A database that does not exist yet, next to the test one.
    let fresh = format!("{}_fresh", db.name);
    let url = db.url.replace(&db.name, &fresh);
    for _ in 0..2 {
        let output = Command::new(beaker_bin())
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .output()?;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let pool = sqlx::PgPool::connect(&url).await?;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('inventory', 'stock_movements')",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE {fresh} WITH (FORCE)"))
        .execute(&db.pool)
        .await?;
    assert_eq!(tables, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_migrations_do_not_depend_on_the_pools_acquire_timeout() -> Result<()> {
    // A request may wait 1 ms for a connection; opening the first one takes
    // longer. The migrations at start must not be held to that.
    let env = TestEnv::start_with("tiny_acquire_timeout", |c| {
        c.env("BEAKER_DB_ACQUIRE_TIMEOUT_MS", "1")
    })
    .await?;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables \
         WHERE table_name IN ('inventory', 'stock_movements', 'outbox', 'idempotency')",
    )
    .fetch_one(&env.db.pool)
    .await?;
    assert_eq!(tables, 4);
    Ok(())
}
