//! Start-up, the command line, and graceful shutdown.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use beaker_testkit::secure::Permissions;
use beaker_testkit::{
    Beaker, BeakerConfig, EVENTS_STREAM, NatsServer, TestDb, TestEnv, beaker_bin, beaker_cli,
    output_dir, service_infos, sha256_file, stream_events, wait_for_rules, wasm,
};
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
async fn call_prints_the_reply_and_reports_errors_in_its_exit_status() -> Result<()> {
    let env = TestEnv::start("cli_call").await?;
    let run = |args: &[&str]| {
        Command::new(beaker_bin())
            .arg("call")
            .args(args)
            .env("NATS_URL", env.nats.url())
            .env_remove("RUST_LOG")
            .output()
    };
    let ok = run(&["stock.add", r#"{"product-sku":"cli","quantity":2}"#])?;
    assert_eq!(ok.status.code(), Some(0));
    // A call that works says nothing but its reply: no client chatter.
    assert_eq!(String::from_utf8_lossy(&ok.stderr), "");
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

/// A nats-server configuration list: `"a", "b"`.
fn quoted(subjects: &[String]) -> String {
    subjects
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nats_permissions_are_enough_to_serve_and_deploy() -> Result<()> {
    let name = "documented_permissions";
    let _ = std::fs::remove_dir_all(output_dir(name));
    // The permissions deploy/synadia/permissions.json gives the service's
    // user and the operator's user of `beaker rules …`, for the default
    // stream and bucket names (docs/operations.md shows them).
    let service_permissions = Permissions::documented_for_the_service()?;
    let operator_permissions = Permissions::documented_for_the_operator()?;

    // An account with three users: the service and the operator with only
    // the documented permissions, and a client allowed everything.
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("accounts.conf");
    let user = |name: &str, permissions: &Permissions| {
        format!(
            "{{ user: {name}, password: {name}-pw, permissions: {{ \
             subscribe: {{ allow: [{}] }}, publish: {{ allow: [{}] }} }} }}",
            quoted(&permissions.subscribe),
            quoted(&permissions.publish)
        )
    };
    std::fs::write(
        &conf,
        format!(
            "accounts {{ APP {{ jetstream: enabled, users: [\n{}\n{}\n{{ user: client, password: client-pw }}\n] }} }}\n",
            user("service", &service_permissions),
            user("operator", &operator_permissions),
        ),
    )?;
    let nats = NatsServer::start_with(name, &["-c", &conf.display().to_string()])?;
    let url = |user: &str| format!("nats://{user}:{user}-pw@127.0.0.1:{}", nats.port);
    let db = TestDb::create().await?;
    let mut config = BeakerConfig::new(name, &nats, &db);
    config.nats_url = url("service");
    let beaker = Beaker::start(&config)?;
    let client =
        async_nats::ConnectOptions::with_user_and_password("client".into(), "client-pw".into())
            .connect(nats.url())
            .await?;

    // The endpoints, discovery and a low-stock event into the stream.
    let add = r#"{"product-sku":"perm-1","quantity":12}"#;
    assert!(beaker_testkit::call(&client, "stock.add", add).await?.ok());
    let remove = r#"{"product-sku":"perm-1","quantity":5}"#;
    let removed = beaker_testkit::call(&client, "stock.remove", remove).await?;
    assert_eq!(removed.level(), Some(7), "{:?}", removed.body);
    assert_eq!(
        service_infos(&client, Duration::from_millis(300))
            .await?
            .len(),
        1
    );
    db.wait_outbox_drained(Duration::from_secs(30)).await?;
    let events = stream_events(&client, EVENTS_STREAM).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload["stock-level"], 7);

    // The operator deploys twice and rolls back; the service follows.
    let operator = url("operator");
    let default = wasm("beaker_rules");
    let threshold = wasm("beaker_rules_threshold");
    for (args, active) in [
        (
            vec!["deploy", default.to_str().unwrap_or_default()],
            &default,
        ),
        (
            vec!["deploy", threshold.to_str().unwrap_or_default()],
            &threshold,
        ),
        (vec!["rollback"], &default),
    ] {
        let output = beaker_cli(&operator, &[&["rules"], &args[..]].concat())?;
        assert_eq!(
            output.status.code(),
            Some(0),
            "rules {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let digest = sha256_file(active)?;
        wait_for_rules(&client, 1, "the rules", |r| r.digest == *digest).await?;
    }

    // Nothing was refused along the way, on either side.
    let server_log = std::fs::read_to_string(output_dir(name).join("nats-server.log"))?;
    let violations: Vec<&str> = server_log
        .lines()
        .filter(|l| l.contains("Violation"))
        .collect();
    assert!(violations.is_empty(), "{violations:#?}");
    let complaints = beaker.complaints();
    assert!(complaints.is_empty(), "{complaints:#?}");
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
        let name = command.join(" ");
        assert_eq!(code, Some(0), "{name}: {text}");
        // `Usage: <program> <command…> …`: the help of that very command
        // (the program's name is whatever the binary is called).
        let usage = text
            .lines()
            .find_map(|line| line.strip_prefix("Usage: "))
            .unwrap_or_default();
        let words: Vec<&str> = usage
            .split_whitespace()
            .skip(1)
            .take(command.len())
            .collect();
        assert_eq!(&words, command, "{name}: {text}");
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
