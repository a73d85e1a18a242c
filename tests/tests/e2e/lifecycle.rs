//! Start-up, the command line, and graceful shutdown.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use beaker_tests::{BeakerConfig, NatsServer, TestDb, TestEnv, beaker_bin};
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
    env.client.flush().await?;
    let status = env
        .beaker
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(15))?;
    assert!(status.success(), "exit status {status}");

    let mut answered = 0;
    let mut lost = 0;
    for result in burst.await? {
        match result {
            Ok(reply) => {
                let answer = beaker_tests::answer_from(reply);
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
async fn call_prints_the_reply_and_reports_errors_in_its_exit_status() -> Result<()> {
    let env = TestEnv::start("cli_call").await?;
    let run = |args: &[&str]| {
        Command::new(beaker_bin())
            .arg("call")
            .args(args)
            .env("NATS_URL", env.nats.url())
            .output()
    };
    let ok = run(&["stock.add", r#"{"product-sku":"cli","quantity":2}"#])?;
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        r#"{"ok":true,"product-sku":"cli","quantity":2}"#
    );

    let refused = run(&["stock.remove", r#"{"product-sku":"cli","quantity":5}"#])?;
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Nats-Service-Error-Code: 409"), "{stderr}");

    let nobody = run(&["stock.nothing", "{}"])?;
    assert_eq!(nobody.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no service is listening"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_command_prints_the_history_and_its_sum() -> Result<()> {
    let env = TestEnv::start("cli_ledger").await?;
    env.add("led", 10).await?;
    env.remove("led", 3).await?;
    let output = Command::new(beaker_bin())
        .args(["ledger", "led"])
        .env("DATABASE_URL", &env.db.url)
        .output()?;
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(" add ") || l.contains(" remove "))
            .count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("led: level 7; the changes sum to 7"),
        "{text}"
    );

    let json = Command::new(beaker_bin())
        .args(["ledger", "led", "--json"])
        .env("DATABASE_URL", &env.db.url)
        .output()?;
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["level_after"], 7);
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
    let port = beaker_tests::free_port()?;
    let output = Command::new(beaker_bin())
        .arg("serve")
        .env("NATS_URL", format!("nats://127.0.0.1:{port}"))
        .env("NATS_CONNECT_TIMEOUT_MS", "500")
        .env("DATABASE_URL", &db.url)
        .env("BEAKER_RULES", beaker_tests::default_rules())
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

/// `beaker [COMMAND…] --help`: its exit status and its text.
fn help(command: &[&str]) -> Result<(Option<i32>, String)> {
    let output = Command::new(beaker_bin())
        .args(command)
        .arg("--help")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()?;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

/// The subcommands a help text lists under `Commands:`, without `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter(|line| !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_has_help_and_serve_names_its_variables() -> Result<()> {
    let (code, top) = help(&[])?;
    assert_eq!(code, Some(0), "{top}");
    let commands = subcommands(&top);
    for expected in [
        "serve", "gateway", "openapi", "migrate", "call", "ledger", "rules",
    ] {
        assert!(commands.iter().any(|c| c == expected), "{expected}: {top}");
    }
    let (code, rules) = help(&["rules"])?;
    assert_eq!(code, Some(0), "{rules}");
    let rules_commands = subcommands(&rules);
    for expected in [
        "check",
        "deploy",
        "status",
        "rollback",
        "promote",
        "drop-shadow",
    ] {
        assert!(
            rules_commands.iter().any(|c| c == expected),
            "rules {expected}: {rules}"
        );
    }

    let mut every: Vec<Vec<&str>> = commands.iter().map(|c| vec![c.as_str()]).collect();
    every.extend(rules_commands.iter().map(|c| vec!["rules", c.as_str()]));
    for command in &every {
        let (code, text) = help(command)?;
        let usage = format!("Usage: beaker {}", command.join(" "));
        assert_eq!(code, Some(0), "{usage}: {text}");
        assert!(text.contains(&usage), "{usage}: {text}");
    }

    // The main settings of serve, each with the variable that sets it
    // (shown as `[env: NAME=]`, or `[env: NAME]` for hidden values).
    let (_, serve) = help(&["serve"])?;
    for variable in [
        "NATS_URL",
        "DATABASE_URL",
        "BEAKER_RULES",
        "BEAKER_METRICS_ADDR",
        "BEAKER_GATEWAY_ADDR",
    ] {
        assert!(
            serve.contains(&format!("[env: {variable}="))
                || serve.contains(&format!("[env: {variable}]")),
            "serve --help does not name {variable}:\n{serve}"
        );
    }
    Ok(())
}
