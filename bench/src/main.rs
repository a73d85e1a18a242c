//! `beaker-bench`: the load generator and the measurements behind
//! `make bench` (scripts/bench.sh), and the load of `make profile`.

mod burst;
mod cpu;
mod error;
mod events;
mod format;
mod host;
mod load;
mod machine;
mod mix;
mod nats;
mod report;
mod run;
mod scaling;
mod sql;
mod swap;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sqlx::migrate::MigrateDatabase;

use crate::mix::{Mix, Products};

#[derive(Debug, Parser)]
#[command(name = "beaker-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every measurement of `make bench`: baselines, service phases, events,
    /// memory, start-up and a rules swap; prints the table and writes it to
    /// --output. Needs a NATS server and a database of its own: it empties
    /// the database and deploys rules to every instance on that server.
    Run(Box<RunArgs>),
    /// A steady load on a running service until --seconds have passed; prints
    /// throughput, latency and errors. `make profile` drives the host with it.
    Load(LoadArgs),
    /// Answers every request on `bench.echo` with its own payload (the NATS
    /// baseline of `run`, in a process of its own).
    Echo {
        #[arg(long = "nats-url", env = "BENCH_NATS_URL")]
        nats_url: String,
    },
    /// Drops a benchmark database (its name must start with `beaker_bench`).
    DropDatabase {
        #[arg(long = "database-url", env = "BENCH_DATABASE_URL")]
        database_url: String,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The benchmark's own NATS server (with JetStream).
    #[arg(long = "nats-url", env = "BENCH_NATS_URL")]
    nats_url: String,
    /// The benchmark's own database; its name must start with `beaker_bench`.
    #[arg(long = "database-url", env = "BENCH_DATABASE_URL")]
    database_url: String,
    /// The host binary under test.
    #[arg(long, default_value = "target/release/beaker")]
    beaker: PathBuf,
    /// The rules the service runs.
    #[arg(long, default_value = "target/wasm32-wasip2/release/beaker_rules.wasm")]
    rules: PathBuf,
    /// The rules deployed for the swap measurement.
    #[arg(
        long = "swap-rules",
        default_value = "target/wasm32-wasip2/release/beaker_rules_threshold.wasm"
    )]
    swap_rules: PathBuf,
    /// Measured seconds of each phase.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 4.0)]
    seconds: f64,
    /// Warm-up seconds before each phase's measurement.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 1.0)]
    warmup: f64,
    /// Requests in flight, one phase each.
    #[arg(
        long,
        env = "BENCH_CONCURRENCY",
        value_delimiter = ',',
        default_value = "1,8,32,64"
    )]
    concurrency: Vec<usize>,
    /// Hot products: every change mix request goes to one of these.
    #[arg(long = "hot-skus", env = "BENCH_HOT_SKUS", default_value_t = 4)]
    hot_skus: usize,
    /// Cold products.
    #[arg(long = "cold-skus", env = "BENCH_COLD_SKUS", default_value_t = 10_000)]
    cold_skus: usize,
    /// Products of each event phase (10 removes and 10 events each).
    #[arg(long = "event-skus", env = "BENCH_EVENT_SKUS", default_value_t = 100)]
    event_skus: usize,
    /// Requests in flight of the event phases, one phase each.
    #[arg(
        long = "event-concurrency",
        env = "BENCH_EVENT_CONCURRENCY",
        value_delimiter = ',',
        default_value = "1,32"
    )]
    event_concurrency: Vec<usize>,
    /// Service configurations, `name:extra serve arguments` separated by `;`.
    #[arg(long, env = "BENCH_SERVICE_VARIANTS", default_value = "default:")]
    variants: String,
    /// Requests in flight of the scaling measurement: one host, then three,
    /// on a NATS cluster of three servers; 0: not measured.
    #[arg(long, env = "BENCH_SCALING", default_value_t = 64)]
    scaling: usize,
    /// Changes released at once in the burst phase of each configuration;
    /// 0: no burst.
    #[arg(long, env = "BENCH_BURST", default_value_t = 3000)]
    burst: usize,
    /// Where the report goes (Markdown); none: only printed.
    #[arg(long)]
    output: Option<PathBuf>,
    /// The command line to name in the report.
    #[arg(long = "command", default_value = "beaker-bench run")]
    command_line: String,
    /// Where the logs of the hosts go.
    #[arg(long = "log-dir", default_value = "target/bench")]
    log_dir: PathBuf,
    /// What the host was built from (e.g. a commit), named in the report.
    #[arg(long)]
    revision: Option<String>,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    #[arg(long, env = "LOAD_SECONDS", default_value_t = 20.0)]
    seconds: f64,
    /// Requests in flight.
    #[arg(long, env = "LOAD_CLIENTS", default_value_t = 16)]
    concurrency: usize,
    /// Products (the cold ones; `change-hot` uses 4 hot ones).
    #[arg(long, env = "LOAD_SKUS", default_value_t = 64)]
    skus: usize,
    #[arg(long, env = "LOAD_MIX", value_enum, default_value_t = Mix::Mixed)]
    mix: Mix,
    /// The host's process id: its CPU time per answered request is
    /// reported too (from /proc/<pid>/stat).
    #[arg(long = "host-pid", env = "LOAD_HOST_PID")]
    host_pid: Option<u32>,
}

/// The database name every benchmark database starts with, so that a
/// mistyped URL cannot empty someone's data.
const DATABASE_PREFIX: &str = "beaker_bench";

fn check_database(url: &str) -> Result<()> {
    let name = url::Url::parse(url)
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_string())
        .unwrap_or_default();
    if !name.starts_with(DATABASE_PREFIX) {
        bail!(
            "refusing database {name:?}: the benchmark empties its database, so its name must start with {DATABASE_PREFIX}"
        );
    }
    Ok(())
}

fn seconds(value: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero() || what == "warm-up")
        .with_context(|| format!("{what} must be a positive number of seconds, not {value}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command.execute().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beaker-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    async fn execute(self) -> Result<()> {
        match self {
            Command::Run(args) => run(*args).await,
            Command::Load(args) => load(args).await,
            Command::Echo { nats_url } => Ok(nats::echo(&nats_url).await?),
            Command::DropDatabase { database_url } => {
                check_database(&database_url)?;
                sqlx::Postgres::force_drop_database(&database_url)
                    .await
                    .context("cannot drop the benchmark database")
            }
        }
    }
}

async fn run(args: RunArgs) -> Result<()> {
    check_database(&args.database_url)?;
    for (what, path) in [
        ("the host", &args.beaker),
        ("the rules", &args.rules),
        ("the swap rules", &args.swap_rules),
    ] {
        if !path.exists() {
            bail!(
                "{what} ({}) is missing: run `make build` first",
                path.display()
            );
        }
    }
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("BENCH_CONCURRENCY must list numbers of requests in flight, each at least 1");
    }
    let settings = run::Settings {
        nats_url: args.nats_url,
        database_url: args.database_url,
        beaker: args.beaker,
        rules: args.rules,
        swap_rules: args.swap_rules,
        concurrency: args.concurrency,
        warmup: seconds(args.warmup, "warm-up")?,
        measure: seconds(args.seconds, "BENCH_SECONDS")?,
        products: Products {
            hot: args.hot_skus.max(1),
            cold: args.cold_skus.max(1),
        },
        event_products: args.event_skus,
        event_concurrency: args.event_concurrency,
        variants: run::Variant::parse_list(&args.variants)?,
        log_dir: args.log_dir,
        revision: args.revision,
        scaling: (args.scaling > 0).then_some(args.scaling),
        burst: (args.burst > 0).then_some(args.burst),
    };
    let results = run::run(settings).await?;
    let table = results.markdown();
    println!("\n{table}");
    if let Some(output) = args.output {
        let document = format!(
            "# Benchmarks\n\n\
             The latest run of `make bench`, written by it: what each figure means is in \
             [docs/benchmarks.md](docs/benchmarks.md). The machine is shared and noisy, so compare \
             figures within one run (the ratios), not across runs.\n\n\
             Produced by:\n\n```sh\n{}\n```\n\n{table}",
            args.command_line
        );
        std::fs::write(&output, document)
            .with_context(|| format!("cannot write {}", output.display()))?;
        eprintln!("written to {}", output.display());
    }
    Ok(())
}

async fn load(args: LoadArgs) -> Result<()> {
    let client = nats::connect(&args.nats_url, "beaker-bench load").await?;
    let products = Products {
        hot: 4,
        cold: args.skus.max(1),
    };
    eprintln!(
        "load: {} ({}) with {} in flight for {} s against {}",
        args.mix.label(),
        match args.mix {
            Mix::ChangeHot => format!("{} products", products.hot),
            _ => format!("{} products", products.cold),
        },
        args.concurrency,
        args.seconds,
        args.nats_url
    );
    let mix = args.mix;
    let summary = load::closed_loop(
        load::Phase {
            concurrency: args.concurrency.max(1),
            warmup: Duration::ZERO,
            measure: seconds(args.seconds, "LOAD_SECONDS")?,
        },
        args.host_pid.as_slice(),
        {
            let client = client.clone();
            move |worker, sequence| {
                let client = client.clone();
                let pick = mix.pick(products, worker, sequence);
                async move { nats::call(&client, pick.subject(), pick.payload()).await }
            }
        },
    )
    .await;
    println!(
        "load: {} requests ({:.0}/s): {} ok, {} error replies{}, {} without reply; p50 {}, p99 {}, p99.9 {}",
        summary.calls,
        summary.throughput,
        summary.ok,
        summary.refused_total(),
        if summary.refused.is_empty() {
            String::new()
        } else {
            format!(" ({})", summary.refused_by_code())
        },
        summary.no_reply(),
        format::millis(summary.p50),
        format::millis(summary.p99),
        format::millis(summary.p999),
    );
    if let Some(pid) = args.host_pid {
        match summary.cpu_per_call() {
            Some(cpu) => println!(
                "load: host (pid {pid}) CPU per request {:.1} µs",
                cpu.as_secs_f64() * 1e6
            ),
            None => println!("load: the CPU time of pid {pid} could not be read"),
        }
    }
    client
        .drain()
        .await
        .context("cannot drain the NATS connection")?;
    if summary.ok == 0 {
        bail!(
            "no request succeeded: is Beaker serving at {}?{}",
            args.nats_url,
            summary
                .first_failure
                .map(|f| format!(" (first failure: {f})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
