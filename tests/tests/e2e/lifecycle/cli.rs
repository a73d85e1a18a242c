//! The client commands (`call`, `ledger`), the help of every command and
//! the shell completions.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result};
use beaker_testkit::{TestEnv, beaker_bin, workspace_root};

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

/// `beaker call SUBJECT -` with `stdin` as its standard input.
fn call_with_stdin(nats_url: &str, subject: &str, stdin: Stdio, input: &[u8]) -> Result<Output> {
    let mut child = Command::new(beaker_bin())
        .args(["call", subject, "-"])
        .env("NATS_URL", nats_url)
        .env_remove("RUST_LOG")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(input)?;
    }
    Ok(child.wait_with_output()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_reads_the_body_from_stdin_given_a_dash() -> Result<()> {
    let env = TestEnv::start("cli_call_stdin").await?;
    let url = env.nats.url();
    // As a pipe gives it: with a final newline.
    let piped = call_with_stdin(
        &url,
        "stock.add",
        Stdio::piped(),
        b"{\"product-sku\":\"piped\",\"quantity\":3}\n",
    )?;
    assert_eq!(
        piped.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&piped.stdout).trim(),
        r#"{"ok":true,"product-sku":"piped","quantity":3}"#
    );
    assert_eq!(env.db.level("piped").await?, Some(3));

    // An empty stdin is a mistake upstream: refused, nothing sent.
    let empty = call_with_stdin(&url, "stock.add", Stdio::piped(), b"")?;
    assert_eq!(empty.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert!(stderr.contains("stdin was empty"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&empty.stdout), "");

    // A stdin that cannot be read (a directory) says why.
    let directory = std::fs::File::open(workspace_root())?;
    let unreadable = call_with_stdin(&url, "stock.add", Stdio::from(directory), b"")?;
    assert_eq!(unreadable.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unreadable.stderr);
    assert!(
        stderr.contains("cannot read the body from stdin"),
        "{stderr}"
    );
    assert_eq!(env.db.level("piped").await?, Some(3));
    Ok(())
}

#[test]
fn completions_cover_the_commands_in_each_shell() -> Result<()> {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(beaker_bin())
            .args(["completions", shell])
            .output()?;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{shell}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let script = String::from_utf8_lossy(&output.stdout);
        // Commands, a nested one, and an option (fish spells it `-l nats-url`).
        for word in ["serve", "call", "asyncapi", "rules", "deploy", "nats-url"] {
            assert!(script.contains(word), "{shell} lacks {word}:\n{script}");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir()?;
            let file = dir.path().join("beaker.bash");
            std::fs::write(&file, script.as_bytes())?;
            let check = Command::new("bash")
                .arg("-n")
                .arg(&file)
                .output()
                .context("cannot run bash")?;
            assert!(
                check.status.success(),
                "bash -n: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let unknown = Command::new(beaker_bin())
        .args(["completions", "cmd.exe"])
        .output()?;
    assert_eq!(unknown.status.code(), Some(2));
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
        "serve",
        "gateway",
        "openapi",
        "asyncapi",
        "migrate",
        "call",
        "ledger",
        "rules",
        "completions",
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
