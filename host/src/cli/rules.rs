//! `beaker rules …`: check a component offline, deploy it to every running
//! instance through the rules bucket, watch it arrive, shadow, promote and
//! roll back.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_nats::Client;
use async_nats::jetstream::object_store::ObjectStore;
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::Value;

use crate::app::SERVICE_NAME;
use crate::config::{NatsArgs, SandboxArgs};
use crate::nats;
use crate::rules::bucket::{self, ACTIVE, Deployment, Pointer, SHADOW};
use crate::rules::cases;
use crate::rules::{Rules, RulesEngine};

/// Exit status: the component or a case failed.
const FAILED: u8 = 1;
/// Exit status: the component was refused before any case ran.
const REFUSED: u8 = 2;
/// Exit status: NATS unreachable, or no instance answered.
const UNREACHABLE: u8 = 3;
/// Exit status: instances did not all report in time.
const TIMED_OUT: u8 = 4;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check a component offline (no NATS, no database): compile it, check
    /// it against the beaker:inventory/rules world, smoke-test it, and run
    /// a table of decision cases.
    ///
    /// Exit status: 0 all passed, 1 a case failed, 2 the component was refused.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        /// A table of decision cases (see examples/cases/*.cases).
        #[arg(long, value_name = "FILE")]
        cases: Option<PathBuf>,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Check a component, upload it to the rules bucket, make it the active
    /// rules (or, with --shadow, the shadow), and wait until every running
    /// instance reports it.
    ///
    /// Exit status: 0 every instance switched, 1 an instance refused it,
    /// 2 the local check refused it, 3 NATS unreachable or no instance
    /// answered, 4 not every instance reported in time.
    Deploy {
        /// The component (.wasm).
        file: PathBuf,
        /// Run it beside the active rules on live traffic without applying
        /// its decisions; compare with `beaker rules status`, then
        /// `beaker rules promote` or `beaker rules drop-shadow`.
        #[arg(long)]
        shadow: bool,
        #[command(flatten)]
        sandbox: SandboxArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List every running instance with its active rules (name, version,
    /// sha256, since when), its shadow and its last refusal, and what the
    /// bucket holds.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Re-activate the previously deployed rules on every instance.
    Rollback {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Make the shadow rules the active rules on every instance.
    Promote {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Stop running the shadow rules.
    DropShadow {
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// Where the instances and the bucket are.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The rules bucket (NATS Object Store).
    #[arg(
        long = "rules-bucket",
        env = "BEAKER_RULES_BUCKET",
        default_value = "beaker-rules"
    )]
    pub bucket: String,
    /// How long to wait for every instance to report.
    #[arg(long = "wait", default_value = "30s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// How long to listen for instances answering discovery.
    #[arg(long = "discovery-window", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub discovery_window: Duration,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn run(command: RulesCommand) -> ExitCode {
    match command {
        RulesCommand::Check {
            file,
            cases,
            sandbox,
        } => check(&file, cases.as_deref(), &sandbox).await,
        RulesCommand::Deploy {
            file,
            shadow,
            sandbox,
            remote,
        } => deploy(&file, shadow, &sandbox, &remote).await,
        RulesCommand::Status { json, remote } => status(&remote, json).await,
        RulesCommand::Rollback { remote } => rollback(&remote).await,
        RulesCommand::Promote { remote } => promote(&remote).await,
        RulesCommand::DropShadow { remote } => drop_shadow(&remote).await,
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("beaker rules: {message}");
    ExitCode::from(code)
}

/// Loads and checks a component as an instance would.
async fn load_locally(
    file: &Path,
    sandbox: &SandboxArgs,
) -> Result<(RulesEngine, Rules, Vec<u8>, Duration), ExitCode> {
    let bytes = std::fs::read(file)
        .map_err(|e| fail(REFUSED, format!("cannot read {}: {e}", file.display())))?;
    let engine = RulesEngine::with_options(sandbox.limits(4), sandbox.engine_options())
        .map_err(|e| fail(REFUSED, e))?;
    let started = Instant::now();
    let rules = engine
        .load(&bytes)
        .await
        .map_err(|e| fail(REFUSED, format!("{} refused: {e}", file.display())))?;
    Ok((engine, rules, bytes, started.elapsed()))
}

async fn check(file: &Path, cases_file: Option<&Path>, sandbox: &SandboxArgs) -> ExitCode {
    let (engine, rules, _, took) = match load_locally(file, sandbox).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    println!(
        "{} {}  sha256 {}  compiled, linked and smoke-tested in {} ms",
        rules.name,
        rules.version,
        rules.digest,
        took.as_millis()
    );
    let Some(cases_file) = cases_file else {
        return ExitCode::SUCCESS;
    };
    let text = match std::fs::read_to_string(cases_file) {
        Ok(text) => text,
        Err(e) => return fail(FAILED, format!("cannot read {}: {e}", cases_file.display())),
    };
    let cases = match cases::parse(&text) {
        Ok(cases) => cases,
        Err(e) => return fail(FAILED, format!("{}: {e}", cases_file.display())),
    };
    let results = cases::run(&engine, &rules, &cases).await;
    println!(
        "{:>5}  {:<28}  {:<24}  {:<40}  RESULT",
        "LINE", "CASE", "EXPECTED", "GOT"
    );
    let mut failed = 0;
    for result in &results {
        let case = &result.case;
        let what = format!(
            "{} with {}",
            crate::rules::describe_operation(case.operation),
            case.current.map_or("none".to_string(), |l| l.to_string())
        );
        let got = crate::schema::shorten(&result.got);
        let got: String = got.chars().take(40).collect();
        println!(
            "{:>5}  {:<28}  {:<24}  {:<40}  {}",
            case.line,
            what,
            cases::describe_expected(&case.expected),
            got,
            if result.passed { "pass" } else { "FAIL" }
        );
        if !result.passed {
            failed += 1;
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

async fn connect(remote: &RemoteArgs) -> Result<(Client, ObjectStore), ExitCode> {
    let client = nats::connect_once(&remote.nats, "beaker-rules")
        .await
        .map_err(|e| fail(UNREACHABLE, e))?;
    let js = async_nats::jetstream::new(client.clone());
    let store = bucket::open(&js, &remote.bucket)
        .await
        .map_err(|e| fail(UNREACHABLE, e))?;
    Ok((client, store))
}

/// Every running instance's `$SRV.INFO`, keyed by instance id.
async fn discover(client: &Client, window: Duration) -> BTreeMap<String, Value> {
    let mut instances = BTreeMap::new();
    let inbox = client.new_inbox();
    let Ok(mut replies) = client.subscribe(inbox.clone()).await else {
        return instances;
    };
    let subject = format!("$SRV.INFO.{SERVICE_NAME}");
    if client
        .publish_with_reply(subject, inbox, bytes::Bytes::new())
        .await
        .is_err()
    {
        return instances;
    }
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
        if let Ok(info) = serde_json::from_slice::<Value>(&message.payload)
            && let Some(id) = info["id"].as_str()
        {
            instances.insert(id.to_string(), info);
        }
    }
    instances
}

fn meta<'a>(info: &'a Value, key: &str) -> &'a str {
    info["metadata"][key].as_str().unwrap_or("")
}

/// What an instance says about a digest it was asked to take.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Report {
    Waiting,
    Done,
    Refused(String),
}

fn report(info: &Value, digest: &str, shadow: bool) -> Report {
    let key = if shadow {
        "shadow_digest"
    } else {
        "rules_digest"
    };
    if meta(info, key) == digest {
        Report::Done
    } else if meta(info, "rules_refused_digest") == digest {
        Report::Refused(meta(info, "rules_refused_reason").to_string())
    } else {
        Report::Waiting
    }
}

/// Waits until every instance found has taken `digest` (or refused it),
/// showing progress; prints each instance's result.
async fn wait_for(client: &Client, remote: &RemoteArgs, digest: &str, shadow: bool) -> ExitCode {
    let short = digest.get(..12).unwrap_or(digest);
    let what = if shadow { "shadow" } else { "active" };
    let deadline = Instant::now() + remote.wait;
    let tty = std::io::stderr().is_terminal();
    let spinner = ['|', '/', '-', '\\'];
    let mut tick = 0usize;
    let mut last_line = String::new();
    loop {
        let instances = discover(client, remote.discovery_window).await;
        if instances.is_empty() {
            if tty {
                eprintln!();
            }
            return fail(
                UNREACHABLE,
                format!(
                    "no running instance answered on $SRV.INFO.{SERVICE_NAME}: the rules are in the bucket \
                     and will be loaded by instances when they start, but nothing confirms them yet"
                ),
            );
        }
        let reports: BTreeMap<&String, Report> = instances
            .iter()
            .map(|(id, info)| (id, report(info, digest, shadow)))
            .collect();
        let done = reports.values().filter(|r| **r == Report::Done).count();
        let refused = reports
            .values()
            .filter(|r| matches!(r, Report::Refused(_)))
            .count();
        let waiting = reports.len() - done - refused;
        let line = format!(
            "{} waiting for {} instance(s) to make {short} {what}: {done} done, {refused} refused",
            spinner[tick % spinner.len()],
            reports.len()
        );
        tick += 1;
        if tty {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        } else if line[1..] != last_line.get(1..).unwrap_or("")[..] {
            eprintln!("{line}");
        }
        last_line = line;
        if waiting == 0 || Instant::now() > deadline {
            if tty {
                eprintln!();
            }
            for (id, result) in &reports {
                let text = match result {
                    Report::Done => format!("{what}: {short}"),
                    Report::Refused(reason) => format!("REFUSED: {reason}"),
                    Report::Waiting => "did not report in time".to_string(),
                };
                println!("{id}  {text}");
            }
            return if refused > 0 {
                ExitCode::from(FAILED)
            } else if waiting > 0 {
                ExitCode::from(TIMED_OUT)
            } else {
                ExitCode::SUCCESS
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn deploy(file: &Path, shadow: bool, sandbox: &SandboxArgs, remote: &RemoteArgs) -> ExitCode {
    let (_engine, rules, bytes, took) = match load_locally(file, sandbox).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    eprintln!(
        "checked {} {} (sha256 {}) in {} ms",
        rules.name,
        rules.version,
        rules.short_digest(),
        took.as_millis()
    );
    let (client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    if let Err(e) = bucket::store_component(&store, &bytes).await {
        return fail(UNREACHABLE, e);
    }
    let pointer = Pointer {
        digest: rules.digest.clone(),
        name: rules.name.clone(),
        version: rules.version.clone(),
        deployed_at: chrono::Utc::now(),
    };
    let written = if shadow {
        bucket::write_json(&store, SHADOW, &pointer).await
    } else {
        match bucket::read_json::<Deployment>(&store, ACTIVE).await {
            Ok(previous) => {
                bucket::write_json(&store, ACTIVE, &Deployment::succeed(previous, pointer)).await
            }
            Err(e) => Err(e),
        }
    };
    if let Err(e) = written {
        return fail(UNREACHABLE, e);
    }
    eprintln!(
        "deployed to bucket {} as {}",
        remote.bucket,
        if shadow { SHADOW } else { ACTIVE }
    );
    wait_for(&client, remote, &rules.digest, shadow).await
}

async fn rollback(remote: &RemoteArgs) -> ExitCode {
    let (client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    let current = match bucket::read_json::<Deployment>(&store, ACTIVE).await {
        Ok(Some(current)) => current,
        Ok(None) => {
            return fail(
                FAILED,
                "nothing was deployed through the bucket: nothing to roll back",
            );
        }
        Err(e) => return fail(UNREACHABLE, e),
    };
    let mut history = current.history.into_iter();
    let Some(mut previous) = history.next() else {
        return fail(
            FAILED,
            "only one deployment so far: nothing to roll back to",
        );
    };
    let digest = previous.digest.clone();
    eprintln!(
        "rolling back from {} {} to {} {}",
        current.current.name, current.current.version, previous.name, previous.version
    );
    previous.deployed_at = chrono::Utc::now();
    let rolled_back = Deployment {
        current: previous,
        history: history.collect(),
    };
    if let Err(e) = bucket::write_json(&store, ACTIVE, &rolled_back).await {
        return fail(UNREACHABLE, e);
    }
    wait_for(&client, remote, &digest, false).await
}

async fn promote(remote: &RemoteArgs) -> ExitCode {
    let (client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    let shadow = match bucket::read_json::<Pointer>(&store, SHADOW).await {
        Ok(Some(shadow)) => shadow,
        Ok(None) => return fail(FAILED, "there are no shadow rules to promote"),
        Err(e) => return fail(UNREACHABLE, e),
    };
    let previous = match bucket::read_json::<Deployment>(&store, ACTIVE).await {
        Ok(previous) => previous,
        Err(e) => return fail(UNREACHABLE, e),
    };
    let digest = shadow.digest.clone();
    let next = Pointer {
        deployed_at: chrono::Utc::now(),
        ..shadow
    };
    if let Err(e) = bucket::write_json(&store, ACTIVE, &Deployment::succeed(previous, next)).await {
        return fail(UNREACHABLE, e);
    }
    if let Err(e) = bucket::delete(&store, SHADOW).await {
        return fail(UNREACHABLE, e);
    }
    eprintln!(
        "promoted the shadow rules {}",
        digest.get(..12).unwrap_or(&digest)
    );
    wait_for(&client, remote, &digest, false).await
}

async fn drop_shadow(remote: &RemoteArgs) -> ExitCode {
    let (_client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    match bucket::delete(&store, SHADOW).await {
        Ok(()) => {
            eprintln!("the shadow rules are dropped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(UNREACHABLE, e),
    }
}

async fn status(remote: &RemoteArgs, json: bool) -> ExitCode {
    let (client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    let active = bucket::read_json::<Deployment>(&store, ACTIVE)
        .await
        .ok()
        .flatten();
    let shadow = bucket::read_json::<Pointer>(&store, SHADOW)
        .await
        .ok()
        .flatten();
    let instances = discover(&client, remote.discovery_window).await;
    if json {
        let document = serde_json::json!({
            "bucket": {
                "name": remote.bucket,
                "active": active,
                "shadow": shadow,
            },
            "instances": instances.values().map(|info| info["metadata"].clone().as_object().cloned().map(|mut m| {
                m.insert("id".into(), info["id"].clone());
                Value::Object(m)
            }).unwrap_or(Value::Null)).collect::<Vec<_>>(),
        });
        println!("{document:#}");
    } else {
        match &active {
            Some(d) => println!(
                "bucket {}: active {} {} ({}), deployed {}; {} earlier deployment(s)",
                remote.bucket,
                d.current.name,
                d.current.version,
                d.current.digest.get(..12).unwrap_or(&d.current.digest),
                d.current.deployed_at.format("%Y-%m-%d %H:%M:%S UTC"),
                d.history.len()
            ),
            None => println!(
                "bucket {}: nothing deployed (instances serve their rules file)",
                remote.bucket
            ),
        }
        if let Some(s) = &shadow {
            println!(
                "bucket {}: shadow {} {} ({})",
                remote.bucket,
                s.name,
                s.version,
                s.digest.get(..12).unwrap_or(&s.digest)
            );
        }
        if !instances.is_empty() {
            println!(
                "{:<32}  {:<32}  {:<12}  {:<25}  SHADOW",
                "INSTANCE", "RULES", "SHA256", "SINCE"
            );
        }
        for (id, info) in &instances {
            let digest = meta(info, "rules_digest");
            let shadow_text = if meta(info, "shadow_digest").is_empty() {
                "-".to_string()
            } else {
                format!(
                    "{} {} ({}): {} agree, {} diverge, {} failed",
                    meta(info, "shadow_name"),
                    meta(info, "shadow_version"),
                    meta(info, "shadow_digest").get(..12).unwrap_or(""),
                    meta(info, "shadow_agreements"),
                    meta(info, "shadow_divergences"),
                    meta(info, "shadow_failures"),
                )
            };
            println!(
                "{:<32}  {:<32}  {:<12}  {:<25}  {}",
                id,
                format!(
                    "{} {}",
                    meta(info, "rules_name"),
                    meta(info, "rules_version")
                ),
                digest.get(..12).unwrap_or(digest),
                meta(info, "rules_since").get(..19).unwrap_or(""),
                shadow_text
            );
            if !meta(info, "rules_refused_digest").is_empty() {
                println!(
                    "{:<32}  last refused {} at {}: {}",
                    "",
                    meta(info, "rules_refused_digest").get(..12).unwrap_or(""),
                    meta(info, "rules_refused_at").get(..19).unwrap_or(""),
                    meta(info, "rules_refused_reason")
                );
            }
        }
    }
    if instances.is_empty() {
        return fail(
            UNREACHABLE,
            format!("no running instance answered on $SRV.INFO.{SERVICE_NAME}"),
        );
    }
    ExitCode::SUCCESS
}
