//! Faults under load: NATS killed, Postgres stopped or crashed, the host
//! killed or stopped, the connection pool exhausted, three hosts at once.
//! Each scenario runs a bounded load from concurrent clients against real
//! processes (its own nats-server, its own Postgres cluster, the `beaker`
//! binary), injects the fault a third of the way in, recovers, retries
//! every request that carried an idempotency key, and then checks the
//! books: every level is what the callers were told (plus the changes
//! whose answers the fault lost, settled through the ledger), nothing is
//! applied twice, and every committed low-stock change is in the stream
//! exactly once.
//!
//! `make test-faults` runs them with their tables printed.

use std::time::Duration;

use anyhow::Result;
use beaker_tests::faults::{
    Books, Load, LocalPostgres, Record, StopMode, plan, requests_served, retry_keyed, seed,
    service_stats, wait_until_serving,
};
use beaker_tests::{
    Beaker, BeakerConfig, EVENTS_STREAM, NatsServer, TestDb, default_rules, output_dir,
};
use nix::sys::signal::Signal;

const SKUS: [&str; 4] = ["bolt", "nut", "gear", "cog"];
/// Units each product starts with: removes of 1–5 outpace adds a little,
/// so levels drift down into refusals and low-stock events.
const INITIAL: u32 = 40;
/// Requests in one scenario's load (seeding aside).
const LOAD: usize = 900;
const CLIENTS: usize = 8;
/// Every third request, if it is a change, carries an idempotency key.
const KEYED_EVERY: usize = 3;
/// How long a recovery may take before the scenario fails.
const RECOVERY: Duration = Duration::from_secs(60);

/// One scenario's processes.
struct Rig {
    name: String,
    pg: LocalPostgres,
    nats: NatsServer,
    config: BeakerConfig,
    host: Option<Beaker>,
}

impl Rig {
    async fn start(name: &str, adjust: impl FnOnce(BeakerConfig) -> BeakerConfig) -> Result<Self> {
        let _ = std::fs::remove_dir_all(output_dir(name));
        let pg = LocalPostgres::start(name)?;
        let nats = NatsServer::start(name)?;
        let config = adjust(BeakerConfig {
            name: name.to_string(),
            command: "serve".to_string(),
            nats_url: nats.url(),
            database_url: pg.url("beaker"),
            rules: default_rules(),
            env: vec![("RUST_LOG".into(), "info".into())],
            args: Vec::new(),
        });
        let host = Some(Beaker::start(&config)?);
        Ok(Self {
            name: name.to_string(),
            pg,
            nats,
            config,
            host,
        })
    }

    fn host(&mut self) -> Result<&mut Beaker> {
        self.host
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no host running"))
    }

    async fn serving(&self) -> Result<()> {
        wait_until_serving(&self.nats.url(), SKUS[0], RECOVERY).await
    }
}

/// Seeds, runs the load with `fault` injected a third of the way in (it
/// must also recover: the last third waits until it has), retries every
/// keyed request, and checks the books.
async fn scenario(
    rig: &mut Rig,
    title: &str,
    clients: usize,
    fault: impl AsyncFnOnce(&mut Rig, &Load) -> Result<()>,
) -> Result<Books> {
    let client = rig.nats.client().await?;
    let mut records: Vec<Record> = seed(&client, &SKUS, INITIAL).await?;
    let load = Load::start(
        &rig.nats.url(),
        plan(&SKUS, LOAD, KEYED_EVERY, 0x5EED_0008),
        clients,
        Some(LOAD * 2 / 3),
    )
    .await?;
    load.wait_for("a third of the load", RECOVERY, |t| t.done >= LOAD / 3)
        .await?;
    fault(rig, &load).await?;
    load.release();
    records.extend(load.finish().await?);

    let client = rig.nats.client().await?;
    retry_keyed(&client, &mut records, 3).await?;
    let pool = rig.pg.pool("beaker").await?;
    let books = Books::check(title, &pool, &client, EVENTS_STREAM, &records).await?;
    books.assert_clean(&rig.name, &records);
    Ok(books)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_mid_load_keeps_the_books() -> Result<()> {
    let mut rig = Rig::start("faults_nats_restart", |c| c).await?;
    let books = scenario(
        &mut rig,
        "nats-server killed (SIGKILL) and restarted",
        CLIENTS,
        async |rig, _load| {
            rig.nats.kill();
            // Same port, same JetStream store; everyone reconnects alone.
            rig.nats.restart()?;
            rig.serving().await
        },
    )
    .await?;
    assert_eq!(
        books.after_recovery_failures, 0,
        "requests sent after recovery all answered"
    );
    Ok(())
}

/// Postgres goes away mid-load and comes back: meanwhile the host answers
/// 503 (it does not hang), and it serves again without being restarted.
async fn postgres_outage(name: &str, title: &str, mode: StopMode) -> Result<()> {
    let mut rig = Rig::start(name, |c| c).await?;
    let books = scenario(&mut rig, title, CLIENTS, async |rig, load| {
        let before = load.tally().unavailable;
        rig.pg.stop(mode)?;
        // The outage lasts until every client has been told 503 at least
        // once.
        load.wait_for("503s while the database is down", RECOVERY, |t| {
            t.unavailable >= before + CLIENTS
        })
        .await?;
        rig.pg.start_again()?;
        rig.serving().await
    })
    .await?;
    assert!(books.unavailable > 0, "the outage was answered with 503s");
    assert_eq!(
        books.answers_lost, 0,
        "every request got an answer during the outage"
    );
    assert_eq!(
        books.after_recovery_failures, 0,
        "the host recovered by itself"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_load_answers_503_and_recovers_alone() -> Result<()> {
    postgres_outage(
        "faults_postgres_stop",
        "Postgres stopped (pg_ctl stop -m fast) and restarted",
        StopMode::Fast,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashed_mid_load_loses_no_acknowledged_change() -> Result<()> {
    // Immediate mode: no checkpoint, no goodbye; the restart replays the WAL.
    postgres_outage(
        "faults_postgres_crash",
        "Postgres crashed (pg_ctl stop -m immediate) and restarted",
        StopMode::Immediate,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_killed_mid_load_loses_no_acknowledged_change() -> Result<()> {
    let mut rig = Rig::start("faults_host_kill", |c| c).await?;
    let books = scenario(
        &mut rig,
        "host killed (SIGKILL) and restarted",
        CLIENTS,
        async |rig, _load| {
            rig.host()?
                .signal_and_wait(Signal::SIGKILL, Duration::from_secs(5))?;
            rig.host = Some(Beaker::start(&rig.config)?);
            rig.serving().await
        },
    )
    .await?;
    assert_eq!(books.after_recovery_failures, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_sigterm_mid_load_answers_what_it_took_and_exits_zero() -> Result<()> {
    let mut rig = Rig::start("faults_host_sigterm", |c| c).await?;
    let books = scenario(
        &mut rig,
        "host stopped (SIGTERM) and restarted",
        CLIENTS,
        async |rig, _load| {
            let status = rig
                .host()?
                .signal_and_wait(Signal::SIGTERM, Duration::from_secs(20))?;
            assert!(status.success(), "exit status {status}");
            rig.host = Some(Beaker::start(&rig.config)?);
            rig.serving().await
        },
    )
    .await?;
    // A drained host answers everything it took: an unanswered request
    // can only be one NATS routed to it as it unsubscribed, never applied.
    assert_eq!(books.lost_applied, 0, "every applied change was answered");
    assert_eq!(books.after_recovery_failures, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_connection_pool_answers_everything_and_keeps_the_books() -> Result<()> {
    // Two connections against 48 concurrent clients. Mid-load a session
    // of ours locks one product's row: the requests for it wait on the
    // lock holding both connections, and everyone else finds none free.
    // The host's bound on an answer is the statement timeout (here 1 s)
    // plus the wait for a connection; the clients wait 5 s.
    let mut rig = Rig::start("faults_pool_exhausted", |c| {
        c.env("BEAKER_DB_MAX_CONNECTIONS", "2")
            .env("BEAKER_DB_ACQUIRE_TIMEOUT_MS", "200")
            .env("BEAKER_DB_STATEMENT_TIMEOUT_MS", "1000")
    })
    .await?;
    let books = scenario(
        &mut rig,
        "connection pool exhausted (2 connections held, 48 clients)",
        48,
        async |rig, load| {
            let pool = rig.pg.pool("beaker").await?;
            let mut lock = pool.begin().await?;
            sqlx::query("SELECT 1 FROM inventory WHERE product_sku = $1 FOR UPDATE")
                .bind(SKUS[0])
                .execute(&mut *lock)
                .await?;
            let before = load.tally().unavailable;
            load.wait_for("503s while no connection is free", RECOVERY, |t| {
                t.unavailable >= before + 10
            })
            .await?;
            lock.rollback().await?;
            rig.serving().await
        },
    )
    .await?;
    assert_eq!(books.answers_lost, 0, "every request got an answer");
    assert_eq!(books.no_responders, 0);
    assert_eq!(books.refused_other, 0, "only 409s and clean 503s");
    assert!(books.unavailable >= 10, "the pool ran out (else: no test)");
    assert_eq!(
        books.after_recovery_failures, 0,
        "served again once connections were free"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_load_and_keep_the_books() -> Result<()> {
    let name = "faults_three_instances";
    let _ = std::fs::remove_dir_all(output_dir(name));
    let nats = NatsServer::start(name)?;
    let db = TestDb::create().await?;
    let hosts: Vec<Beaker> = (0..3)
        .map(|i| {
            let config = BeakerConfig::new(name, &nats, &db).env("RUST_LOG", "info");
            let config = BeakerConfig {
                name: format!("{name}/host-{i}"),
                ..config
            };
            Beaker::start(&config)
        })
        .collect::<Result<_>>()?;

    let client = nats.client().await?;
    let mut records = seed(&client, &SKUS, INITIAL).await?;
    let load = Load::start(
        &nats.url(),
        plan(&SKUS, 1200, KEYED_EVERY, 0x3_1A57),
        12,
        None,
    )
    .await?;
    records.extend(load.finish().await?);
    retry_keyed(&client, &mut records, 1).await?;
    let books = Books::check(
        "three hosts, one NATS, one database, shared products",
        &db.pool,
        &client,
        EVENTS_STREAM,
        &records,
    )
    .await?;

    // Every answer came from one of the three, and each took its share.
    let stats = service_stats(&client, hosts.len(), Duration::from_secs(5)).await?;
    let served: Vec<(String, u64)> = stats
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                requests_served(s),
            )
        })
        .collect();
    let mut table = String::from("\n| instance | requests served |\n| --- | ---: |\n");
    for (id, count) in &served {
        table.push_str(&format!("| {id} | {count} |\n"));
    }
    println!("{table}");
    books.assert_clean(name, &records);

    let answered: u64 = records.iter().map(|r| r.attempts.len() as u64).sum();
    assert_eq!(books.answers_lost + books.no_responders, 0);
    assert_eq!(served.len(), 3, "three instances answer $SRV.STATS");
    assert_eq!(
        served.iter().map(|(_, n)| n).sum::<u64>(),
        answered,
        "the instances served every request once between them"
    );
    for (id, count) in &served {
        assert!(
            *count * 5 >= answered,
            "instance {id} served {count} of {answered}: not a fair share"
        );
    }
    drop(hosts);
    Ok(())
}
