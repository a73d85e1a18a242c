//! `beaker-bench run`: every measurement of `make bench`, in one run and in
//! this order — the same-SQL baseline, the NATS echo baseline, then for
//! each service configuration a fresh host, its load phases, its event
//! phases and its memory; the rules swap on the last configuration.
//!
//! The order of the run and its progress lines live here; the settings,
//! the results, the echo baseline and each service configuration's
//! measurements have modules of their own.

mod echo;
mod results;
mod service;
mod settings;

pub use results::{Results, ServicePhase, SwapResults, VariantResults};
pub use settings::{Settings, Variant};

use echo::echo_baseline;
use service::service;

use crate::error::BenchError;
use crate::events;
use crate::load::{Phase, Summary};
use crate::machine::Machine;
use crate::mix::Mix;
use crate::nats;
use crate::scaling;
use crate::sql;

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
