//! The steps one client takes around the load: stocking the products,
//! retrying keyed requests, waiting until the service answers again, and
//! connecting with retries while the servers start.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt;

use super::{ANSWER_TIMEOUT, Op, Outcome, Planned, Record, attempt};

/// How long one seeding add may take.
const SEED_TIMEOUT: Duration = Duration::from_secs(30);

/// Stocks each product with `initial` units through `stock.add`, one
/// request at a time, recorded like the rest.
pub async fn stock_up(
    client: &async_nats::Client,
    skus: &[&str],
    initial: u32,
) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for sku in skus {
        let planned = Planned::new(Op::Add, sku, initial, None);
        // Not what a scenario measures: the stock must be there before the
        // load, however slowly the database commits (a COMMIT took 5 s on a
        // machine busy writing to its disk), so the seed waits longer than
        // a request of the load.
        let outcome = attempt(client, &planned, SEED_TIMEOUT).await;
        if !matches!(outcome, Outcome::Ok { .. }) {
            bail!("seeding {sku} failed: {outcome:?}");
        }
        records.push(Record {
            planned,
            seed: true,
            after_recovery: false,
            attempts: vec![outcome],
        });
    }
    Ok(records)
}

/// A client that lost track retries with the same key: every keyed request
/// is sent again once, and those still without an answer (or with a 503)
/// up to `rounds` times. Answers must be replays of the first; the books
/// check proves nothing was applied twice.
pub async fn retry_keyed(
    client: &async_nats::Client,
    records: &mut [Record],
    rounds: usize,
) -> Result<()> {
    for round in 0..rounds.max(1) {
        let pending: Vec<usize> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.planned.key.is_some())
            .filter(|(_, r)| round == 0 || r.attempts.last().is_some_and(Outcome::retryable))
            .map(|(i, _)| i)
            .collect();
        if pending.is_empty() {
            break;
        }
        let outcomes: Vec<(usize, Outcome)> = futures::stream::iter(pending)
            .map(|i| {
                let planned = records[i].planned.clone();
                async move { (i, attempt(client, &planned, ANSWER_TIMEOUT).await) }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (i, outcome) in outcomes {
            records[i].attempts.push(outcome);
        }
    }
    Ok(())
}

/// Waits until the service answers a `stock.get` again: the sign that the
/// whole path (NATS, host, database) is back.
pub async fn wait_until_serving(nats_url: &str, sku: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let client = connect(nats_url).await?;
    let probe = Planned::new(Op::Get, sku, 0, None);
    loop {
        let outcome = attempt(&client, &probe, Duration::from_secs(1)).await;
        if matches!(outcome, Outcome::Ok { .. }) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the service did not answer again within {timeout:?}: last {outcome:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client of `urls` (one, or several comma-separated: a cluster), that
/// keeps trying while the servers start.
pub async fn connect(urls: &str) -> Result<async_nats::Client> {
    let servers: Vec<&str> = urls.split(',').map(str::trim).collect();
    let connecting = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(servers);
    match tokio::time::timeout(Duration::from_secs(30), connecting).await {
        Ok(client) => Ok(client?),
        Err(_) => bail!("no NATS server of {urls} answered within 30 s"),
    }
}
