//! Faults under load, as campaigns: every scenario runs several times
//! (`FAULT_RUNS`, default 3) with seeded random choices — when the fault
//! strikes, how long it lasts, how many clients, which requests — and
//! every run is held to the same books. A failing run prints its seed;
//! `FAULT_SEED=… make test-faults FAULTS=<scenario>` replays it (see
//! `beaker_testkit::campaign`).
//!
//! Each run starts its own processes (nats-server, the `beaker` binary,
//! and a Postgres cluster of its own where Postgres is the fault, else a
//! fresh database on the shared server), runs a bounded load from
//! concurrent clients, injects the fault, recovers, retries every request
//! that carried an idempotency key, and settles the books: every level is
//! what the callers were told (plus the changes whose answers the fault
//! lost, settled through the ledger), nothing is applied twice, and every
//! committed low-stock change is in the stream exactly once.
//!
//! `make test-faults` runs them with their tables printed; `make soak
//! FAULT_RUNS=50` runs each fifty times.

mod cluster;
mod host;
mod instances;
mod nats;
mod pool;
mod postgres;
mod relay;

use std::time::Duration;

use anyhow::Result;
use beaker_testkit::campaign::Seed;
use beaker_testkit::faults::{
    Books, Load, LocalPostgres, Record, plan, retry_keyed, stock_up, wait_until_serving,
};
use beaker_testkit::{Beaker, BeakerConfig, EVENTS_STREAM, NatsServer, TestDb, output_dir};

const SKUS: [&str; 4] = ["bolt", "nut", "gear", "cog"];
/// Units each product starts with: removes of 1–5 outpace adds a little,
/// so levels drift down into refusals and low-stock events.
const INITIAL: u32 = 40;
/// Every third request, if it is a change, carries an idempotency key.
const KEYED_EVERY: usize = 3;
/// How long a recovery may take before the run fails.
const RECOVERY: Duration = Duration::from_secs(60);

/// Where a run keeps its data: a Postgres cluster of its own, which it
/// can stop and crash, or a fresh database on the shared server.
enum Database {
    Own(LocalPostgres),
    Shared(TestDb),
}

/// One run's processes.
struct Rig {
    name: String,
    database: Database,
    nats: NatsServer,
    config: BeakerConfig,
    host: Option<Beaker>,
}

impl Rig {
    /// A rig whose Postgres the run may stop and crash.
    async fn with_own_postgres(
        name: &str,
        adjust: impl FnOnce(BeakerConfig) -> BeakerConfig,
    ) -> Result<Self> {
        let _ = std::fs::remove_dir_all(output_dir(name));
        let pg = LocalPostgres::start(name)?;
        let url = pg.url("beaker");
        Self::start(name, Database::Own(pg), url, adjust).await
    }

    /// A rig on a fresh database of the shared Postgres.
    async fn with_shared_postgres(
        name: &str,
        adjust: impl FnOnce(BeakerConfig) -> BeakerConfig,
    ) -> Result<Self> {
        let _ = std::fs::remove_dir_all(output_dir(name));
        let db = TestDb::create().await?;
        let url = db.url.clone();
        Self::start(name, Database::Shared(db), url, adjust).await
    }

    async fn start(
        name: &str,
        database: Database,
        database_url: String,
        adjust: impl FnOnce(BeakerConfig) -> BeakerConfig,
    ) -> Result<Self> {
        let nats = NatsServer::start(name)?;
        let config = adjust(BeakerConfig {
            name: name.to_string(),
            command: "serve".to_string(),
            nats_url: nats.url(),
            database_url,
            rules: beaker_testkit::default_rules(),
            env: vec![("RUST_LOG".into(), "info".into())],
            args: Vec::new(),
            bin: None,
            log: None,
        });
        let host = Some(Beaker::start(&config)?);
        Ok(Self {
            name: name.to_string(),
            database,
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

    fn pg(&mut self) -> Result<&mut LocalPostgres> {
        match &mut self.database {
            Database::Own(pg) => Ok(pg),
            Database::Shared(_) => anyhow::bail!("this rig has no Postgres of its own"),
        }
    }

    /// A pool on the run's database, for the books.
    async fn pool(&self) -> Result<sqlx::PgPool> {
        match &self.database {
            Database::Own(pg) => pg.pool("beaker").await,
            Database::Shared(db) => Ok(db.pool.clone()),
        }
    }

    async fn serving(&self) -> Result<()> {
        wait_until_serving(&self.nats.url(), SKUS[0], RECOVERY).await
    }

    /// A new host in place of the one that stopped, serving.
    async fn start_host_again(&mut self) -> Result<()> {
        self.host = Some(Beaker::start(&self.config)?);
        self.serving().await
    }
}

/// The random shape of one run's load.
#[derive(Debug, Clone, Copy)]
struct Shape {
    requests: usize,
    clients: usize,
    /// The fault strikes once this many requests are answered.
    fault_at: usize,
    plan_seed: u64,
}

impl Shape {
    /// 300 to 600 requests from `clients` clients; the fault strikes
    /// between a tenth and three fifths of the way in.
    fn draw(seed: &mut Seed, clients: std::ops::RangeInclusive<usize>) -> Self {
        Self::draw_striking(seed, clients, 0.1..0.6)
    }

    /// The same, the fault striking within `strike` (fractions of the
    /// load): a fault that must be seen by many requests strikes early.
    fn draw_striking(
        seed: &mut Seed,
        clients: std::ops::RangeInclusive<usize>,
        strike: std::ops::Range<f64>,
    ) -> Self {
        let requests = seed.between(300, 600) as usize;
        let clients = seed.between(*clients.start() as u64, *clients.end() as u64) as usize;
        let fault_at = (requests as f64 * seed.fraction(strike.start, strike.end)) as usize;
        Self {
            requests,
            clients,
            fault_at,
            plan_seed: seed.fork(),
        }
    }
}

/// Seeds, runs the load with `fault` injected at the shape's moment (it
/// must also recover: the rest of the load waits until it has), retries
/// every keyed request, and checks the books.
async fn run_load(
    rig: &mut Rig,
    title: &str,
    shape: Shape,
    fault: impl AsyncFnOnce(&mut Rig, &Load) -> Result<()>,
) -> Result<Books> {
    let client = rig.nats.client().await?;
    let mut records: Vec<Record> = stock_up(&client, &SKUS, INITIAL).await?;
    // The part of the load after the fault waits for the recovery, so
    // that it measures the recovered service whatever the fault's length.
    let hold_at = shape.fault_at + (shape.requests - shape.fault_at) / 2;
    let load = Load::start(
        &rig.nats.url(),
        plan(&SKUS, shape.requests, KEYED_EVERY, shape.plan_seed),
        shape.clients,
        Some(hold_at),
    )
    .await?;
    load.wait_for("the moment of the fault", RECOVERY, |t| {
        t.done >= shape.fault_at
    })
    .await?;
    fault(rig, &load).await?;
    load.release();
    records.extend(load.finish().await?);

    settle(rig, title, &mut records).await
}

/// After the load: every keyed request retried (a client that lost track
/// would), then the books settled and held to every promise.
async fn settle(rig: &Rig, title: &str, records: &mut [Record]) -> Result<Books> {
    let client = rig.nats.client().await?;
    retry_keyed(&client, records, 3).await?;
    let pool = rig.pool().await?;
    let books = Books::check(title, &pool, &client, EVENTS_STREAM, records).await?;
    books.assert_clean(&rig.name, records)?;
    Ok(books)
}

/// The folder name of one run: the scenario and its seed.
fn run_name(scenario: &str, seed: &Seed) -> String {
    format!("faults/{scenario}/{:016x}", seed.value)
}
