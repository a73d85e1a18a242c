//! `beaker-bench run`: every measurement of `make bench`, in one run and in
//! this order — the same-SQL baseline, the NATS echo baseline, then for
//! each service configuration a fresh host, its load phases, its event
//! phases and its memory; the rules swap on the last configuration.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::error::BenchError;
use crate::events::{self, EventLatency};
use crate::host::{Host, HostConfig};
use crate::load::{self, Phase, Summary};
use crate::machine::Machine;
use crate::mix::{Mix, Products};
use crate::nats;
use crate::scaling::{self, ScalingResults};
use crate::sql;
use crate::swap::{self, SwapTiming};

/// One service configuration: a name and extra `beaker serve` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub args: Vec<String>,
}

impl Variant {
    /// Parses `name:args;name:args`, e.g. `default:;no-batch:--group-commit=false`.
    pub fn parse_list(text: &str) -> Result<Vec<Variant>, BenchError> {
        let bad = |message: String| BenchError::Setting {
            setting: "BENCH_SERVICE_VARIANTS",
            message,
        };
        let mut variants: Vec<Variant> = Vec::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, args) = entry.split_once(':').unwrap_or((entry, ""));
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(bad(format!(
                    "{entry:?}: a name of letters, digits, - _ . must come before the colon"
                )));
            }
            if variants.iter().any(|v| v.name == name) {
                return Err(bad(format!("{name} is named twice")));
            }
            variants.push(Variant {
                name: name.to_string(),
                args: args.split_whitespace().map(str::to_string).collect(),
            });
        }
        if variants.is_empty() {
            return Err(bad("no configuration given".into()));
        }
        Ok(variants)
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub nats_url: String,
    pub database_url: String,
    pub beaker: PathBuf,
    pub rules: PathBuf,
    pub swap_rules: PathBuf,
    pub concurrency: Vec<usize>,
    pub warmup: Duration,
    pub measure: Duration,
    pub products: Products,
    pub event_products: usize,
    pub event_concurrency: Vec<usize>,
    pub variants: Vec<Variant>,
    pub log_dir: PathBuf,
    /// What the host under test was built from, for the report.
    pub revision: Option<String>,
    /// Requests in flight of the scaling measurement (one host, then three,
    /// on a NATS cluster); `None`: not measured.
    pub scaling: Option<usize>,
}

/// One measured phase of the service.
#[derive(Debug, Clone)]
pub struct ServicePhase {
    pub mix: Mix,
    pub concurrency: usize,
    pub summary: Summary,
    /// Rules time over request time, from the host's histograms.
    pub rules_share: Option<f64>,
}

/// What one service configuration measured.
#[derive(Debug, Clone)]
pub struct VariantResults {
    pub variant: Variant,
    pub start_to_ready: Duration,
    pub phases: Vec<ServicePhase>,
    pub rules_share: Option<f64>,
    pub peak_rss: u64,
    pub events: Vec<EventLatency>,
    /// Measured on the last configuration only.
    pub swap: Option<SwapResults>,
}

#[derive(Debug, Clone)]
pub struct SwapResults {
    pub timing: SwapTiming,
    /// Start to ready of the second instance.
    pub second_start_to_ready: Duration,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Results {
    pub machine: Machine,
    pub date: chrono::DateTime<chrono::Utc>,
    pub settings: Settings,
    pub sql: Vec<(Mix, usize, Summary)>,
    pub echo: Vec<(usize, Summary)>,
    pub variants: Vec<VariantResults>,
    pub scaling: Option<ScalingResults>,
}

/// The mixes the same-SQL baseline runs: the service's changes.
pub const SQL_MIXES: [Mix; 2] = [Mix::ChangeHot, Mix::ChangeCold];
/// The mixes the service runs.
pub const SERVICE_MIXES: [Mix; 3] = [Mix::ChangeHot, Mix::ChangeCold, Mix::Get];

fn progress(what: &str, summary: &Summary) {
    let mut line = format!(
        "    {what}: {:.0}/s, p50 {}, p99 {}, p99.9 {}, max {}",
        summary.throughput,
        crate::format::millis(summary.p50),
        crate::format::millis(summary.p99),
        crate::format::millis(summary.p999),
        crate::format::millis(summary.max),
    );
    if summary.refused_total() > 0 {
        line.push_str(&format!(", error replies {}", summary.refused_by_code()));
    }
    if summary.no_reply() > 0 {
        line.push_str(&format!(", no reply {}", summary.no_reply()));
    }
    if let Some(failure) = &summary.first_failure {
        line.push_str(&format!(" (first failure: {failure})"));
    }
    eprintln!("{line}");
}

fn step(what: &str) {
    eprintln!("\x1b[1m==> {what}\x1b[0m");
}

/// Runs every measurement.
pub async fn run(settings: Settings) -> Result<Results, BenchError> {
    std::fs::create_dir_all(&settings.log_dir).map_err(|source| BenchError::Write {
        path: settings.log_dir.clone(),
        source,
    })?;
    let client = nats::connect(&settings.nats_url, "beaker-bench load").await?;
    step("preparing the database (migrations, products)");
    sql::prepare(&settings.database_url).await?;
    let machine = Machine::describe(&settings.database_url, &client).await?;
    let date = chrono::Utc::now();
    eprintln!("    {}", machine.line());
    let event_phases: Vec<(usize, usize)> = (0..settings.event_concurrency.len())
        .map(|phase| (phase, settings.event_products))
        .collect();
    sql::reset(
        &settings.database_url,
        settings.products,
        &[],
        events::THRESHOLD,
    )
    .await?;

    let phase = |concurrency: usize| Phase {
        concurrency,
        warmup: settings.warmup,
        measure: settings.measure,
    };

    step(
        "baseline: the service's SQL, one transaction per request (Store::begin_change + Change::commit)",
    );
    let mut sql_results = Vec::new();
    for mix in SQL_MIXES {
        for &concurrency in &settings.concurrency {
            let summary = sql::baseline(
                &settings.database_url,
                mix,
                settings.products,
                phase(concurrency),
            )
            .await?;
            progress(&format!("{} × {concurrency}", mix.label()), &summary);
            sql_results.push((mix, concurrency, summary));
        }
    }

    step("baseline: NATS request/reply to an echo responder (128 B)");
    let echo_results = echo_baseline(&settings, &client, &phase).await?;

    let mut variants = Vec::new();
    let last = settings.variants.len().saturating_sub(1);
    for (index, variant) in settings.variants.iter().enumerate() {
        variants.push(service(&settings, &client, variant, &event_phases, index == last).await?);
    }

    let scaling = match settings.scaling {
        Some(concurrency) => {
            step(&format!(
                "scaling out: {} × {concurrency} against one host, then three, on a NATS cluster of three",
                Mix::ChangeCold.label()
            ));
            Some(scaling::measure(&settings, Mix::ChangeCold, concurrency).await?)
        }
        None => None,
    };

    Ok(Results {
        machine,
        date,
        settings,
        sql: sql_results,
        echo: echo_results,
        variants,
        scaling,
    })
}

async fn echo_baseline(
    settings: &Settings,
    client: &async_nats::Client,
    phase: &impl Fn(usize) -> Phase,
) -> Result<Vec<(usize, Summary)>, BenchError> {
    let me = std::env::current_exe().map_err(|source| BenchError::Spawn {
        what: "the echo responder".into(),
        source,
    })?;
    let mut responder = Command::new(me)
        .args(["echo", "--nats-url", &settings.nats_url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BenchError::Spawn {
            what: "the echo responder".into(),
            source,
        })?;
    let stdout = responder.stdout.take().ok_or_else(|| BenchError::Exited {
        what: "the echo responder".into(),
        log: PathBuf::from("stderr"),
    })?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    if !matches!(ready, Ok(Ok(Some(ref line))) if line == "ready") {
        return Err(BenchError::Exited {
            what: "the echo responder".into(),
            log: PathBuf::from("stderr"),
        });
    }
    let payload = nats::echo_payload();
    let mut results = Vec::new();
    for &concurrency in &settings.concurrency {
        let client = client.clone();
        let payload = payload.clone();
        let summary = load::closed_loop(phase(concurrency), move |_, _| {
            let client = client.clone();
            let payload = payload.clone();
            async move { nats::call(&client, nats::ECHO_SUBJECT, payload).await }
        })
        .await;
        progress(&format!("echo × {concurrency}"), &summary);
        results.push((concurrency, summary));
    }
    let _ = responder.start_kill();
    let _ = responder.wait().await;
    Ok(results)
}

async fn service(
    settings: &Settings,
    client: &async_nats::Client,
    variant: &Variant,
    event_phases: &[(usize, usize)],
    with_swap: bool,
) -> Result<VariantResults, BenchError> {
    step(&format!(
        "service `{}`: beaker serve {}",
        variant.name,
        variant.args.join(" ")
    ));
    sql::reset(
        &settings.database_url,
        settings.products,
        event_phases,
        events::THRESHOLD,
    )
    .await?;
    let config = |instance: usize| HostConfig {
        beaker: settings.beaker.clone(),
        nats_url: settings.nats_url.clone(),
        database_url: settings.database_url.clone(),
        rules: settings.rules.clone(),
        extra_args: variant.args.clone(),
        log: settings
            .log_dir
            .join(format!("beaker-{}-{instance}.log", variant.name)),
    };
    let host = Host::start(&config(1)).await?;
    eprintln!(
        "    ready {} after start (log: {})",
        crate::format::millis(host.start_to_ready()),
        host.log().display()
    );
    let http = reqwest::Client::new();
    let first = host.histograms(&http).await?;
    let mut phases = Vec::new();
    for mix in SERVICE_MIXES {
        for &concurrency in &settings.concurrency {
            let before = host.histograms(&http).await?;
            let client = client.clone();
            let products = settings.products;
            let summary = load::closed_loop(
                Phase {
                    concurrency,
                    warmup: settings.warmup,
                    measure: settings.measure,
                },
                move |worker, sequence| {
                    let client = client.clone();
                    let pick = mix.pick(products, worker, sequence);
                    async move { nats::call(&client, pick.subject(), pick.payload()).await }
                },
            )
            .await;
            let after = host.histograms(&http).await?;
            progress(&format!("{} × {concurrency}", mix.label()), &summary);
            phases.push(ServicePhase {
                mix,
                concurrency,
                summary,
                rules_share: after.rules_share_since(&before),
            });
        }
    }
    let last = host.histograms(&http).await?;

    let mut event_results = Vec::new();
    for (&(phase, products), &concurrency) in event_phases.iter().zip(&settings.event_concurrency) {
        let latency = events::measure(&settings.nats_url, phase, products, concurrency).await?;
        eprintln!(
            "    events × {concurrency}: reply → event p50 {}, p99 {}; {} of {} matched",
            crate::format::signed_millis(latency.reply_to_event_p50),
            crate::format::signed_millis(latency.reply_to_event_p99),
            latency.matched,
            latency.removes,
        );
        event_results.push(latency);
    }
    let peak_rss = host.peak_rss()?;

    let swap = if with_swap {
        let second = Host::start(&config(2)).await?;
        let timing = swap::measure(
            &settings.nats_url,
            &settings.beaker,
            &settings.swap_rules,
            2,
            settings
                .log_dir
                .join(format!("rules-deploy-{}.log", variant.name)),
        )
        .await;
        let second_start_to_ready = second.start_to_ready();
        second.stop().await?;
        let timing = timing?;
        eprintln!(
            "    rules swap on {} instances: {} after `deployed to bucket`, {} after the command started",
            timing.instances,
            timing
                .from_deployed
                .map_or("?".into(), crate::format::millis),
            crate::format::millis(timing.from_command),
        );
        Some(SwapResults {
            timing,
            second_start_to_ready,
        })
    } else {
        None
    };
    let start_to_ready = host.start_to_ready();
    host.stop().await?;
    Ok(VariantResults {
        variant: variant.clone(),
        start_to_ready,
        phases,
        rules_share: last.rules_share_since(&first),
        peak_rss,
        events: event_results,
        swap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_variants() {
        let parsed =
            Variant::parse_list("default:;no-batch:--group-commit=false --db-max-connections 8")
                .expect("valid");
        assert_eq!(
            parsed,
            vec![
                Variant {
                    name: "default".into(),
                    args: vec![]
                },
                Variant {
                    name: "no-batch".into(),
                    args: vec![
                        "--group-commit=false".into(),
                        "--db-max-connections".into(),
                        "8".into()
                    ]
                },
            ]
        );
        assert_eq!(Variant::parse_list("default").expect("valid").len(), 1);
        for bad in ["", ";", ":--x", "a:;a:", "with space:"] {
            assert!(Variant::parse_list(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
