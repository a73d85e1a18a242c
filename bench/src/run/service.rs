//! One service configuration measured: a fresh host, its load phases with
//! their rules share, its event phases, its memory, and on the last one
//! the rules swap across two instances.

use super::{
    SERVICE_MIXES, ServicePhase, Settings, SwapResults, Variant, VariantResults, progress, step,
};
use crate::burst;
use crate::error::BenchError;
use crate::events;
use crate::host::{Host, HostConfig};
use crate::load::{self, Phase};
use crate::nats;
use crate::sql;
use crate::swap;

pub(super) async fn service(
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
    let metered: Vec<u32> = host.pid().into_iter().collect();
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
                &metered,
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

    let burst = match settings.burst {
        Some(requests) => {
            let results = burst::measure(client, settings.products, requests, host.pid()).await?;
            eprintln!(
                "    burst of {requests}: {} served, {} refused, {} unanswered, the last after {}",
                results.ok,
                results.refused.values().sum::<usize>(),
                results.unanswered,
                crate::format::millis(results.drained)
            );
            Some(results)
        }
        None => None,
    };

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
        burst,
        swap,
    })
}
