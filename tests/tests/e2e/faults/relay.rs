//! Faults while the outbox relay has events in hand: every product is
//! stocked just above the low-stock threshold, a burst of concurrent
//! removes (one per product) commits one event each, and the fault
//! strikes while the relay publishes them. Every committed event must
//! reach the stream exactly once, and the backlog must drain promptly
//! once the fault is over.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use beaker_testkit::Beaker;
use beaker_testkit::campaign::{RunReport, Seed, campaign};
use beaker_testkit::faults::{Books, Load, Op, Planned, Record, StopMode, stock_up};

use super::{RECOVERY, Rig, run_name, settle};

/// Each product starts here: one unit removed leaves 8, below the default
/// rules' threshold of 10, so every remove commits one event.
const STOCK: u32 = 9;
/// The backlog must be gone this soon after NATS is back.
const DRAIN_AFTER_RECONNECTION: Duration = Duration::from_secs(1);

/// The products of a run, and a burst of keyed removes, one per product.
fn burst(products: usize, run: u64) -> (Vec<String>, Vec<Planned>) {
    let skus: Vec<String> = (0..products).map(|i| format!("relay-{i}")).collect();
    let removes = skus
        .iter()
        .enumerate()
        .map(|(i, sku)| Planned::new(Op::Remove, sku, 1, Some(format!("{run:016x}-{i}"))))
        .collect();
    (skus, removes)
}

/// Stocks the products, sends the burst (every remove from a client of
/// its own, all at once), lets `fault` strike, then retries every remove
/// whose answer was lost and settles the books.
async fn relay_run(
    rig: &mut Rig,
    title: &str,
    products: usize,
    run: u64,
    fault: impl AsyncFnOnce(&mut Rig, &Load) -> Result<()>,
) -> Result<Books> {
    let (skus, removes) = burst(products, run);
    let client = rig.nats.client().await?;
    let names: Vec<&str> = skus.iter().map(String::as_str).collect();
    let mut records: Vec<Record> = stock_up(&client, &names, STOCK).await?;
    let load = Load::start(&rig.nats.url(), removes, products, None).await?;
    fault(rig, &load).await?;
    records.extend(load.finish().await?);
    settle(rig, title, &mut records).await
}

/// Waits until the host logs that its NATS connection is back (after log
/// line `seen`), then until the outbox is empty; returns how long the
/// drain took after the reconnection, and how many events were pending
/// when it came.
async fn drain_after_reconnection(rig: &mut Rig, seen: usize) -> Result<(Duration, i64)> {
    let pool = rig.pool().await?;
    let host: &Beaker = rig.host()?;
    host.wait_for_log(seen, RECOVERY, |l| {
        l["message"] == "NATS connection (re-)established"
    })
    .await?;
    let reconnected = Instant::now();
    let pending = pending_events(&pool).await?;
    let bound = Duration::from_secs(30);
    loop {
        let left = pending_events(&pool).await?;
        if left == 0 {
            return Ok((reconnected.elapsed(), pending));
        }
        if reconnected.elapsed() > bound {
            bail!(
                "{left} of {pending} events still in the outbox {bound:?} after the host \
                 reconnected to NATS: the relay is not relaying"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// NATS killed, away for `outage`, started again on the same port and
/// store; returns how long the backlog took to drain after the host
/// reconnected, and how many events were pending then.
async fn nats_outage(rig: &mut Rig, outage: Duration) -> Result<(Duration, i64)> {
    let seen = rig.host()?.log_lines().len();
    rig.nats.kill();
    tokio::time::sleep(outage).await;
    rig.nats.restart()?;
    drain_after_reconnection(rig, seen).await
}

/// The drain must be prompt: within a second of the reconnection.
fn drained_promptly((took, backlog): (Duration, i64)) -> Result<()> {
    ensure!(
        took <= DRAIN_AFTER_RECONNECTION,
        "the backlog of {backlog} events took {took:?} to drain after the reconnection"
    );
    Ok(())
}

async fn pending_events(pool: &sqlx::PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(pool)
            .await?,
    )
}

/// Whether a host's transaction holds outbox rows claimed (`FOR UPDATE`
/// takes a row-share lock on the table for as long as the claim lasts).
async fn relay_holds_a_claim(pool: &sqlx::PgPool) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.relation = 'outbox'::regclass AND l.mode = 'RowShareLock' AND l.granted \
         AND a.application_name = 'beaker' AND a.datname = current_database())",
    )
    .fetch_one(pool)
    .await?)
}

/// Polls (about every millisecond) until the relay holds a claim while
/// events are pending.
async fn wait_for_a_claim(pool: &sqlx::PgPool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if relay_holds_a_claim(pool).await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the relay never held a claim within 30 s (nothing to relay?)");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_while_events_are_relayed_drains_the_backlog_on_reconnection() -> Result<()> {
    // The operator's report: 150 products at 9 units, 150 concurrent
    // removes, nats-server killed once about a tenth of the replies are
    // in, restarted a second later on the same port and store.
    campaign("nats_killed_while_relaying", |mut seed: Seed| async move {
        let name = run_name("nats_killed_while_relaying", &seed);
        let products = 150;
        let kill_at = (products as f64 * seed.fraction(0.05, 0.5)) as usize;
        let outage = seed.millis(200, 1500);
        let mut rig = Rig::with_shared_postgres(&name, |c| c).await?;
        let mut drain = (Duration::ZERO, 0);
        relay_run(
            &mut rig,
            "nats-server killed while events are relayed",
            products,
            seed.value,
            async |rig, load| {
                load.wait_for("a share of the replies", RECOVERY, |t| t.done >= kill_at)
                    .await?;
                drain = nats_outage(rig, outage).await?;
                Ok(())
            },
        )
        .await?;
        drained_promptly(drain)?;
        let (took, backlog) = drain;
        let mut report = RunReport::default();
        report
            .figure("drain after reconnection", took)
            .figure("outage", outage)
            .note(format!("{backlog} events pending at reconnection"));
        Ok(report)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_while_the_relay_holds_a_claimed_batch_loses_no_event() -> Result<()> {
    campaign(
        "nats_killed_with_a_claimed_batch",
        |mut seed: Seed| async move {
            let name = run_name("nats_killed_with_a_claimed_batch", &seed);
            let products = 300;
            // Small batches: many rounds, each holding its claim while it
            // publishes and waits for the acknowledgements.
            let batch = seed.between(1, 16);
            let outage = seed.millis(0, 1500);
            let mut rig = Rig::with_shared_postgres(&name, |c| {
                c.env("BEAKER_OUTBOX_BATCH_SIZE", batch.to_string())
            })
            .await?;
            let mut drain = (Duration::ZERO, 0);
            relay_run(
                &mut rig,
                "nats-server killed while the relay holds a claimed batch",
                products,
                seed.value,
                async |rig, _load| {
                    let pool = rig.pool().await?;
                    wait_for_a_claim(&pool).await?;
                    let seen = rig.host()?.log_lines().len();
                    rig.nats.kill();
                    tokio::time::sleep(outage).await;
                    rig.nats.restart()?;
                    drain = drain_after_reconnection(rig, seen).await?;
                    Ok(())
                },
            )
            .await?;
            let (took, backlog) = drain;
            ensure!(
                took <= DRAIN_AFTER_RECONNECTION,
                "the backlog of {backlog} events took {took:?} to drain after the reconnection"
            );
            let mut report = RunReport::default();
            report
                .figure("drain after reconnection", took)
                .note(format!("batch {batch}, {backlog} pending at reconnection"));
            Ok(report)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_while_the_relay_publishes_loses_no_event() -> Result<()> {
    campaign(
        "postgres_restarted_while_relaying",
        |mut seed: Seed| async move {
            let name = run_name("postgres_restarted_while_relaying", &seed);
            let products = 300;
            let batch = seed.between(1, 16);
            let mode = match seed.between(0, 1) {
                0 => StopMode::Fast,
                _ => StopMode::Immediate,
            };
            let mut rig = Rig::with_own_postgres(&name, |c| {
                c.env("BEAKER_OUTBOX_BATCH_SIZE", batch.to_string())
            })
            .await?;
            let mut drain = Duration::ZERO;
            relay_run(
                &mut rig,
                "Postgres restarted while the relay publishes",
                products,
                seed.value,
                async |rig, _load| {
                    let pool = rig.pool().await?;
                    wait_for_a_claim(&pool).await?;
                    pool.close().await;
                    rig.pg()?.stop(mode)?;
                    rig.pg()?.start_again()?;
                    let back = Instant::now();
                    let pool = rig.pool().await?;
                    beaker_testkit::wait_until("the outbox to drain", RECOVERY, || async {
                        Ok(pending_events(&pool).await? == 0)
                    })
                    .await
                    .context("after Postgres came back")?;
                    drain = back.elapsed();
                    Ok(())
                },
            )
            .await?;
            let mut report = RunReport::default();
            report
                .figure("drain after Postgres returned", drain)
                .note(format!("batch {batch}, stop -m {mode:?}"));
            Ok(report)
        },
    )
    .await
}
