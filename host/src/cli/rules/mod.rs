//! `beaker rules …`: check a component offline ([`check`]), deploy it to
//! every running instance through the rules bucket and watch it arrive,
//! shadow, promote and roll back ([`deploy`]), and see what every instance
//! runs ([`status`]).

mod check;
mod deploy;
mod progress;
mod status;

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
    pub bucket_replicas: BucketReplicasArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn run(command: RulesCommand) -> ExitCode {
    match command {
        RulesCommand::Check {
            file,
            cases,
            sandbox,
        } => check::check(&file, cases.as_deref(), &sandbox).await,
        RulesCommand::Deploy {
            file,
            shadow,
            sandbox,
            remote,
        } => deploy::deploy(&file, shadow, &sandbox, &remote).await,
        RulesCommand::Status { json, remote } => status::status(&remote, json).await,
        RulesCommand::Rollback { remote } => deploy::rollback(&remote).await,
        RulesCommand::Promote { remote } => deploy::promote(&remote).await,
        RulesCommand::DropShadow { remote } => deploy::drop_shadow(&remote).await,
    }
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
