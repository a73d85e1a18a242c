//! `beaker rules …`: check a component offline ([`check`]), deploy it to
//! every running instance through the rules bucket and watch it arrive,
//! shadow, promote and roll back ([`deploy`]), and see what every instance
//! runs ([`status`]).

mod check;
mod deploy;
mod history;
mod new;
mod progress;
mod replay;
mod scaffold;
mod status;
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_nats::Client;
use clap::{Args, Subcommand};

use crate::config::{BucketReplicasArgs, NatsArgs, SandboxArgs};
use crate::nats;
use crate::rules::bucket::Bucket;
use crate::rules::{Rules, RulesEngine};

/// Exit status: the component or a case failed.
pub(super) const FAILED: u8 = 1;
/// Exit status: the component was refused before any case ran.
pub(super) const REFUSED: u8 = 2;
/// Exit status: NATS unreachable, or no instance answered.
pub(super) const UNREACHABLE: u8 = 3;
/// Exit status: instances did not all report in time.
pub(super) const TIMED_OUT: u8 = 4;
/// Exit status: the cases file cannot be read, or a line is not a case.
pub(super) const BAD_CASES: u8 = 5;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check a component offline (no NATS, no database): compile it, check
    /// it against the beaker:inventory/rules world, smoke-test it, and run
    /// a table of decision cases.
    ///
    /// Exit status: 0 all passed, 1 a case failed, 2 the component was
    /// refused (or the command line is wrong), 5 the cases file cannot be
    /// read or has a line that is not a case.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        /// A table of decision cases (the format: docs/rule-authors.md;
        /// examples: examples/cases/*.cases).
        #[arg(long, value_name = "FILE")]
        cases: Option<PathBuf>,
        /// How to print the results.
        #[arg(long = "format", value_enum, default_value = "table")]
        output: check::Format,
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
    /// sha256, since when they are active), its shadow, its last refusal,
    /// whether it lost the rules bucket or skipped entries of it; and what
    /// the bucket holds.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Re-activate earlier rules on every instance: the previous
    /// deployment, or the one --to names. Before the first deploy came the
    /// instances' own rules files (`--to file`), which can always be
    /// returned to.
    ///
    /// Exit status: as deploy's; 1 also when there is nothing to roll back
    /// to or --to names no earlier deployment.
    Rollback {
        /// The deployment to return to: its version (`1.2.0`), its
        /// `name@version`, the first six or more digits of its sha256, or
        /// `file` for each instance's rules file. See `beaker rules history`.
        #[arg(long, value_name = "VERSION|DIGEST|file")]
        to: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List the bucket's deployments, newest first: when, by whom, which
    /// rules (name, version, sha256), and which is active and which the
    /// shadow.
    History {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Run the ledger's recorded changes through a candidate component,
    /// each against the stock it saw, and report where the candidate would
    /// have decided otherwise (refused, another level, other events), with
    /// counts and examples. Reads the database only; changes nothing.
    ///
    /// Refused requests and reads are not recorded, so they are not
    /// replayed: shadow mode compares those on live traffic.
    ///
    /// Exit status: 0 no difference, 1 differences found, 2 the candidate
    /// was refused, 3 the database cannot be read.
    Replay {
        /// The candidate component (.wasm).
        file: PathBuf,
        /// Only changes recorded in this last span of time (e.g. `24h`,
        /// `7days`); all of them when not given.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// Only this product's changes.
        #[arg(long, value_name = "SKU")]
        product: Option<String>,
        /// How many differences to show.
        #[arg(long, default_value_t = 20)]
        examples: usize,
        /// Print JSON instead of a report.
        #[arg(long)]
        json: bool,
        /// Postgres URL of the service's database.
        #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(flatten)]
        sandbox: SandboxArgs,
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
    /// Start a rules project in a new folder: the default rules in Rust,
    /// JavaScript or Python, renamed NAME 0.1.0, with the WIT this binary
    /// speaks, pinned tools, a build script, a table of cases and a README
    /// with the commands from build to promote. Writing it needs no
    /// repository and no network.
    ///
    /// Exit status: 0 written, 1 a file could not be written, 2 a bad NAME
    /// or option, 3 DIR exists and is not empty.
    New(new::NewArgs),
    /// Print the WIT this binary speaks (the beaker:inventory/rules world a
    /// rules component implements), or write it to DIR/inventory.wit.
    ///
    /// Exit status: 0 printed or written, 1 it could not be.
    Wit(new::WitArgs),
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
    pub bucket_replicas: BucketReplicasArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn run(command: RulesCommand) -> ExitCode {
    match command {
        RulesCommand::Check {
            file,
            cases,
            output,
            sandbox,
        } => check::check(&file, cases.as_deref(), output, &sandbox).await,
        RulesCommand::Deploy {
            file,
            shadow,
            sandbox,
            remote,
        } => deploy::deploy(&file, shadow, &sandbox, &remote).await,
        RulesCommand::Status { json, remote } => status::status(&remote, json).await,
        RulesCommand::Rollback { to, remote } => deploy::rollback(&remote, to.as_deref()).await,
        RulesCommand::History { json, remote } => history::history(&remote, json).await,
        RulesCommand::Replay {
            file,
            since,
            product,
            examples,
            json,
            database_url,
            sandbox,
        } => {
            let args = replay::ReplayArgs {
                file: &file,
                since,
                product: product.as_deref(),
                examples,
                json,
                db: crate::store::DbConfig::for_client(database_url),
            };
            replay::replay(args, &sandbox).await
        }
        RulesCommand::Promote { remote } => deploy::promote(&remote).await,
        RulesCommand::DropShadow { remote } => deploy::drop_shadow(&remote).await,
        RulesCommand::New(args) => new::new(&args),
        RulesCommand::Wit(args) => new::wit(&args),
    }
}

/// Who changes the rules, as deployments record it: `BEAKER_OPERATOR` when
/// set (a pipeline names itself), else `user@host`, from the environment
/// (`USER` or `LOGNAME`) and the kernel's host name.
pub(super) fn operator() -> String {
    if let Ok(named) = std::env::var("BEAKER_OPERATOR")
        && !named.trim().is_empty()
    {
        return named.trim().to_string();
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}")
}

pub(super) fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("beaker rules: {message}");
    ExitCode::from(code)
}

/// Loads and checks a component as an instance would.
pub(super) async fn load_locally(
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

pub(super) async fn connect(remote: &RemoteArgs) -> Result<(Client, Bucket), ExitCode> {
    let client = nats::connect_once(&(&remote.nats).into(), "beaker-rules")
        .await
        .map_err(|e| fail(UNREACHABLE, e))?;
    let js = async_nats::jetstream::new(client.clone());
    let store = Bucket::open(
        &js,
        &remote.bucket,
        usize::from(remote.bucket_replicas.replicas),
    )
    .await
    .map_err(|e| fail(UNREACHABLE, e))?;
    Ok((client, store))
}
