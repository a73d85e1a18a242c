//! Fault injection: a Postgres cluster of the test's own that it can stop
//! and start, a load driver that records every request and what came of
//! it, and the books check that holds the service to what its callers were
//! told.
//!
//! Every request carries a W3C `traceparent` with a trace id of its own.
//! The host writes that trace id into the ledger row of every change it
//! applies, so a request whose answer was lost in a fault can be settled
//! afterwards: it was applied exactly when the ledger holds its trace id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use async_nats::{HeaderMap, RequestErrorKind};
use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;

use crate::{answer_from, free_port, output_dir, stream_events};

// --- a Postgres cluster of the test's own ----------------------------------

/// How to stop the cluster (`pg_ctl stop -m MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Ends every session (their transactions roll back), then stops.
    Fast,
    /// Stops at once, like a crash; the next start replays the WAL.
    Immediate,
}

impl StopMode {
    fn name(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A PostgreSQL cluster in a temporary folder, listening on a free port of
/// 127.0.0.1 only, so that a test can stop and start it without touching
/// the machine's shared server. Postgres refuses to run as root: then the
/// cluster belongs to, and runs as, the `postgres` user.
#[derive(Debug)]
pub struct LocalPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// uid and gid to run as, when the test runs as root.
    run_as: Option<(u32, u32)>,
    running: bool,
    /// Where the server log is copied when the cluster goes away.
    log_copy: PathBuf,
}

impl LocalPostgres {
    /// Creates the cluster (`initdb`) and starts it.
    pub fn start(name: &str) -> Result<Self> {
        let bin = postgres_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("beaker-pg-").tempdir()?;
        let run_as = if current_uid()? == 0 {
            let uid = id_of("-u")?;
            let gid = id_of("-g")?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .with_context(|| format!("chown {} to postgres", dir.path().display()))?;
            Some((uid, gid))
        } else {
            None
        };
        let mut cluster = Self {
            dir,
            bin,
            port: free_port()?,
            run_as,
            running: false,
            log_copy: output_dir(name).join("postgres.log"),
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        cluster.start_again()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A URL of a database on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server and waits until it accepts connections
    /// (`pg_ctl -w`). `fsync` is off: the faults here end processes, not
    /// the machine, and the page cache outlives a process.
    pub fn start_again(&mut self) -> Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data_dir();
        let log = self.log_path();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "start".as_ref(),
            ],
        )
        .with_context(|| format!("see {}", self.log_path().display()))?;
        self.running = true;
        Ok(())
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self, mode: StopMode) -> Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.name().as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "stop".as_ref(),
            ],
        )?;
        self.running = false;
        Ok(())
    }

    /// A small pool on a database of this cluster.
    pub async fn pool(&self, database: &str) -> Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.url(database))
            .await?)
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output> {
        let mut command = Command::new(self.bin.join(program));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        let output = command
            .output()
            .with_context(|| format!("cannot run {}", self.bin.join(program).display()))?;
        if !output.status.success() {
            bail!(
                "{program} {} failed ({}): {}{}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output)
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop(StopMode::Immediate);
        }
        let _ = std::fs::copy(self.log_path(), &self.log_copy);
        // The TempDir removes the folder.
    }
}

/// The folder of `initdb` and `pg_ctl`: `BEAKER_TEST_PG_BINDIR`, else the
/// newest `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`.
fn postgres_bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("BEAKER_TEST_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    let output = Command::new("pg_config").arg("--bindir").output();
    if let Ok(output) = output
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    bail!(
        "cannot find initdb and pg_ctl (install PostgreSQL's server package, \
         or set BEAKER_TEST_PG_BINDIR)"
    )
}

fn current_uid() -> Result<u32> {
    id(&["-u"])
}

/// The uid (`-u`) or gid (`-g`) of the `postgres` user.
fn id_of(flag: &str) -> Result<u32> {
    id(&[flag, "postgres"]).context(
        "tests run as root, and Postgres refuses root: a `postgres` user must exist to run it",
    )
}

fn id(args: &[&str]) -> Result<u32> {
    let output = Command::new("id").args(args).output()?;
    if !output.status.success() {
        bail!(
            "id {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}

// --- the load ---------------------------------------------------------------

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Get,
}

impl Op {
    pub fn subject(self) -> &'static str {
        match self {
            Op::Add => "stock.add",
            Op::Remove => "stock.remove",
            Op::Get => "stock.get",
        }
    }

    fn ledger_name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Get => "get",
        }
    }
}

/// One request, decided before the load starts.
#[derive(Debug, Clone)]
pub struct Planned {
    pub op: Op,
    pub sku: String,
    pub quantity: u32,
    /// Idempotency key (`Nats-Msg-Id`), on a share of the requests.
    pub key: Option<String>,
    /// The trace id its `traceparent` carries: how the ledger names it.
    pub trace_id: String,
}

impl Planned {
    pub fn new(op: Op, sku: &str, quantity: u32, key: Option<String>) -> Self {
        Self {
            op,
            sku: sku.to_string(),
            quantity,
            key,
            trace_id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    fn payload(&self) -> String {
        match self.op {
            Op::Get => serde_json::json!({"product-sku": self.sku}).to_string(),
            _ => {
                serde_json::json!({"product-sku": self.sku, "quantity": self.quantity}).to_string()
            }
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        // Any non-zero span id: the caller's span, which nobody exports.
        headers.insert(
            "traceparent",
            format!("00-{}-{}-01", self.trace_id, &self.trace_id[..16]).as_str(),
        );
        if let Some(key) = &self.key {
            headers.insert("Nats-Msg-Id", key.as_str());
        }
        headers
    }

    /// The change to the level if it is applied.
    pub fn delta(&self) -> i64 {
        match self.op {
            Op::Add => i64::from(self.quantity),
            Op::Remove => -i64::from(self.quantity),
            Op::Get => 0,
        }
    }
}

/// What came of one attempt at a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A successful reply, with the level it reports.
    Ok { level: i64, body: String },
    /// An error reply (`Nats-Service-Error-Code`; 0 when it had none).
    Refused { code: u16, body: String },
    /// Nobody was subscribed: NATS said so at once. Never delivered.
    NoResponders,
    /// No answer within the client's timeout, or the connection failed:
    /// the request may or may not have been applied.
    Lost { reason: String },
}

impl Outcome {
    fn answered(&self) -> bool {
        matches!(self, Outcome::Ok { .. } | Outcome::Refused { .. })
    }

    /// Worth retrying: the service said "later", or said nothing.
    fn retryable(&self) -> bool {
        matches!(
            self,
            Outcome::Refused { code: 503, .. } | Outcome::NoResponders | Outcome::Lost { .. }
        )
    }
}

/// A request and every attempt at it.
#[derive(Debug, Clone)]
pub struct Record {
    pub planned: Planned,
    /// Sent during the seeding that precedes the load.
    pub seed: bool,
    /// First sent after the fault was over ([`Load::release`]).
    pub after_recovery: bool,
    pub attempts: Vec<Outcome>,
}

/// A record's settled status, across its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Acknowledged,
    /// A definitive error reply (4xx, 500).
    Refused(u16),
    /// Only 503s, or 503s and lost answers.
    Unavailable,
    /// Never delivered.
    NoResponders,
    /// Never answered: settled through the ledger.
    Lost,
}

impl Record {
    pub fn status(&self) -> Status {
        if self
            .attempts
            .iter()
            .any(|a| matches!(a, Outcome::Ok { .. }))
        {
            return Status::Acknowledged;
        }
        if let Some(code) = self.attempts.iter().find_map(|a| match a {
            Outcome::Refused { code, .. } if *code != 503 => Some(*code),
            _ => None,
        }) {
            return Status::Refused(code);
        }
        if self
            .attempts
            .iter()
            .any(|a| matches!(a, Outcome::Lost { .. }))
        {
            return Status::Lost;
        }
        if self
            .attempts
            .iter()
            .any(|a| matches!(a, Outcome::Refused { .. }))
        {
            return Status::Unavailable;
        }
        Status::NoResponders
    }
}

/// A deterministic plan: `requests` adds, removes and gets spread over
/// `skus`; every `keyed_every`-th request, if it is a change, carries an
/// idempotency key.
pub fn plan(skus: &[&str], requests: usize, keyed_every: usize, seed: u64) -> Vec<Planned> {
    let mut rng = SplitMix(seed);
    let run = uuid::Uuid::new_v4().simple().to_string();
    (0..requests)
        .map(|i| {
            let sku = skus[rng.below(skus.len() as u64) as usize];
            let roll = rng.below(100);
            let op = if roll < 48 {
                Op::Remove
            } else if roll < 85 {
                Op::Add
            } else {
                Op::Get
            };
            let quantity = 1 + rng.below(5) as u32;
            // A get changes nothing and takes no key.
            let key = (op != Op::Get && keyed_every > 0 && i % keyed_every == 0)
                .then(|| format!("{run}-{i}"));
            Planned::new(op, sku, quantity, key)
        })
        .collect()
}

/// splitmix64: a seeded sequence, so that a failing plan can be replayed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Sends one attempt and classifies what came back.
pub async fn attempt(client: &async_nats::Client, planned: &Planned, timeout: Duration) -> Outcome {
    let request = async_nats::Request::new()
        .payload(planned.payload().into())
        .headers(planned.headers())
        .timeout(Some(timeout));
    match client.send_request(planned.op.subject(), request).await {
        Ok(message) => {
            let answer = answer_from(message);
            let body = String::from_utf8_lossy(&answer.raw).into_owned();
            match (answer.ok(), answer.level()) {
                (true, Some(level)) => Outcome::Ok { level, body },
                _ => Outcome::Refused {
                    code: answer.code.unwrap_or(0),
                    body,
                },
            }
        }
        Err(e) if e.kind() == RequestErrorKind::NoResponders => Outcome::NoResponders,
        Err(e) => Outcome::Lost {
            reason: e.to_string(),
        },
    }
}

/// Counts of what the load has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub done: usize,
    pub ok: usize,
    pub refused: usize,
    pub unavailable: usize,
    pub no_responders: usize,
    pub lost: usize,
}

impl Tally {
    fn count(&mut self, outcome: &Outcome) {
        self.done += 1;
        match outcome {
            Outcome::Ok { .. } => self.ok += 1,
            Outcome::Refused { code: 503, .. } => self.unavailable += 1,
            Outcome::Refused { .. } => self.refused += 1,
            Outcome::NoResponders => self.no_responders += 1,
            Outcome::Lost { .. } => self.lost += 1,
        }
    }
}

/// A bounded load in progress: `clients` concurrent clients, each on its
/// own NATS connection, each sending one request at a time from a shared
/// plan. With a fault to wait out, requests from `hold_at` on wait for
/// [`Load::release`], so that the last part of the load runs after the
/// fault, whatever its length; without (`None`), nothing waits.
pub struct Load {
    tally: watch::Receiver<Tally>,
    release: watch::Sender<bool>,
    clients: Vec<tokio::task::JoinHandle<Vec<(usize, Record)>>>,
    size: usize,
}

impl std::fmt::Debug for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("tally", &*self.tally.borrow())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// How long a client waits for one answer before it counts it as lost.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

impl Load {
    pub async fn start(
        nats_url: &str,
        plan: Vec<Planned>,
        clients: usize,
        hold_at: Option<usize>,
    ) -> Result<Self> {
        let size = plan.len();
        let plan = Arc::new(plan);
        let next = Arc::new(AtomicUsize::new(0));
        let (tally_tx, tally) = watch::channel(Tally::default());
        let tally_tx = Arc::new(tally_tx);
        let (release, released) = watch::channel(false);
        let faulty = hold_at.is_some();
        let hold_at = hold_at.unwrap_or(usize::MAX);
        // Every client connects before any sends, so that a burst (one
        // request per client) is sent at once.
        let mut connected = Vec::new();
        for _ in 0..clients.max(1) {
            connected.push(async_nats::connect(nats_url).await?);
        }
        let mut handles = Vec::new();
        for client in connected {
            let (plan, next, tally_tx) = (plan.clone(), next.clone(), tally_tx.clone());
            let mut released = released.clone();
            handles.push(tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(planned) = plan.get(index) else {
                        break;
                    };
                    if index >= hold_at {
                        let _ = released.wait_for(|r| *r).await;
                    }
                    let after_recovery = faulty && *released.borrow();
                    let outcome = attempt(&client, planned, ANSWER_TIMEOUT).await;
                    tally_tx.send_modify(|t| t.count(&outcome));
                    done.push((
                        index,
                        Record {
                            planned: planned.clone(),
                            seed: false,
                            after_recovery,
                            attempts: vec![outcome],
                        },
                    ));
                }
                done
            }));
        }
        Ok(Self {
            tally,
            release,
            clients: handles,
            size,
        })
    }

    /// What the load has seen so far.
    pub fn tally(&self) -> Tally {
        *self.tally.borrow()
    }

    /// Waits until the tally satisfies `condition`: the load itself is the
    /// signal that a fault has taken effect.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&Tally) -> bool,
    ) -> Result<Tally> {
        let mut tally = self.tally.clone();
        match tokio::time::timeout(timeout, tally.wait_for(|t| condition(t))).await {
            Ok(Ok(t)) => Ok(*t),
            Ok(Err(_)) => bail!("the load ended before {what}: {:?}", self.tally()),
            Err(_) => bail!(
                "timed out after {timeout:?} waiting for {what}: {:?}",
                self.tally()
            ),
        }
    }

    /// Lets the held part of the load go: the fault is over.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }

    /// Waits for every client and returns the records in plan order.
    pub async fn finish(self) -> Result<Vec<Record>> {
        self.release();
        let mut all = Vec::with_capacity(self.size);
        for handle in self.clients {
            all.extend(
                handle
                    .await
                    .map_err(|e| anyhow!("a load client failed: {e}"))?,
            );
        }
        all.sort_by_key(|(index, _)| *index);
        Ok(all.into_iter().map(|(_, record)| record).collect())
    }
}

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
        let outcome = attempt(client, &planned, ANSWER_TIMEOUT).await;
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
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats_url)
        .await?;
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

// --- the books ----------------------------------------------------------------

/// The low-stock threshold of the default rules: a remove that leaves
/// fewer units emits an event.
pub const LOW_STOCK_BELOW: i32 = 10;

/// What a scenario's books show. Every count named "mismatch", "anomaly",
/// "missing", "duplicated" or "unexpected" must be zero.
#[derive(Debug, Clone, Default)]
pub struct Books {
    pub scenario: String,
    pub sent: usize,
    pub acknowledged: usize,
    pub refused_rule: usize,
    pub refused_other: usize,
    pub unavailable: usize,
    pub no_responders: usize,
    /// Requests with at least one attempt whose answer was lost.
    pub answers_lost: usize,
    /// Of those, the ones a retry with the same key settled.
    pub settled_by_retry: usize,
    /// Never answered, applied according to the ledger.
    pub lost_applied: usize,
    /// Never answered, not applied according to the ledger.
    pub lost_not_applied: usize,
    /// Repeated keyed requests answered, all byte-identical to the first.
    pub replays: usize,
    /// Σ |quantity| of the requests never answered: how far the books may
    /// be from the acknowledged changes alone.
    pub lost_bound: i64,
    pub level_mismatches: Vec<String>,
    pub ledger_anomalies: Vec<String>,
    pub events_expected: usize,
    pub events_missing: Vec<String>,
    pub events_duplicated: Vec<String>,
    pub events_unexpected: Vec<String>,
    /// Of the requests sent after recovery: not answered, or answered 503.
    pub after_recovery_failures: usize,
    pub after_recovery: usize,
}

/// One ledger row.
#[derive(Debug, Clone)]
struct LedgerRow {
    sku: String,
    operation: String,
    quantity: i32,
    level_before: i32,
    level_after: i32,
    trace_id: Option<String>,
}

impl Books {
    /// Settles every request against the database and the stream. Waits
    /// (at most a minute) for the outbox to drain first.
    pub async fn check(
        scenario: &str,
        pool: &PgPool,
        nats: &async_nats::Client,
        stream: &str,
        records: &[Record],
    ) -> Result<Self> {
        wait_outbox_drained(pool, Duration::from_secs(60)).await?;
        let mut books = Books {
            scenario: scenario.to_string(),
            ..Books::default()
        };
        let ledger: Vec<LedgerRow> =
            sqlx::query_as::<_, (String, String, i32, i32, i32, Option<String>)>(
                "SELECT product_sku, operation, quantity, level_before, level_after, trace_id \
             FROM stock_movements ORDER BY id",
            )
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(
                |(sku, operation, quantity, level_before, level_after, trace_id)| LedgerRow {
                    sku,
                    operation,
                    quantity,
                    level_before,
                    level_after,
                    trace_id,
                },
            )
            .collect();
        let mut by_trace: HashMap<&str, Vec<&LedgerRow>> = HashMap::new();
        for row in &ledger {
            match row.trace_id.as_deref() {
                Some(trace) => by_trace.entry(trace).or_default().push(row),
                None => books
                    .ledger_anomalies
                    .push(format!("ledger row without a trace id: {row:?}")),
            }
        }

        // Each request against its ledger rows.
        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        let mut ours: HashSet<&str> = HashSet::new();
        for record in records {
            let planned = &record.planned;
            ours.insert(planned.trace_id.as_str());
            expected.entry(planned.sku.clone()).or_insert(0);
            if !record.seed {
                books.sent += 1;
            }
            let rows = by_trace
                .get(planned.trace_id.as_str())
                .cloned()
                .unwrap_or_default();
            let status = record.status();
            if record
                .attempts
                .iter()
                .any(|a| matches!(a, Outcome::Lost { .. }))
            {
                books.answers_lost += 1;
                if status != Status::Lost {
                    books.settled_by_retry += 1;
                }
            }
            if record.after_recovery {
                books.after_recovery += 1;
                if !record.attempts.first().is_some_and(|a| {
                    a.answered() && !matches!(a, Outcome::Refused { code: 503, .. })
                }) {
                    books.after_recovery_failures += 1;
                }
            }
            books.check_replays(record);
            let describe = || {
                format!(
                    "{} {} {} (trace {}, key {:?}): {:?}",
                    planned.op.subject(),
                    planned.sku,
                    planned.quantity,
                    planned.trace_id,
                    planned.key,
                    record.attempts
                )
            };
            if rows.len() > 1 {
                books.ledger_anomalies.push(format!(
                    "applied {} times: {}",
                    rows.len(),
                    describe()
                ));
            }
            if let Some(row) = rows.first()
                && (row.sku != planned.sku
                    || row.operation != planned.op.ledger_name()
                    || i64::from(row.quantity) != i64::from(planned.quantity)
                    || i64::from(row.level_after - row.level_before) != planned.delta())
            {
                books
                    .ledger_anomalies
                    .push(format!("ledger row {row:?} does not match {}", describe()));
            }
            let applied = !rows.is_empty();
            match status {
                Status::Acknowledged => {
                    if !record.seed {
                        books.acknowledged += 1;
                    }
                    if planned.op != Op::Get && !applied {
                        books
                            .ledger_anomalies
                            .push(format!("acknowledged, not in the ledger: {}", describe()));
                    }
                    *expected.entry(planned.sku.clone()).or_insert(0) += planned.delta();
                }
                Status::Refused(code) => {
                    if code == 409 {
                        books.refused_rule += 1;
                    } else {
                        books.refused_other += 1;
                    }
                    if applied {
                        books
                            .ledger_anomalies
                            .push(format!("refused with {code}, yet applied: {}", describe()));
                    }
                }
                Status::Unavailable => {
                    books.unavailable += 1;
                    if applied {
                        books
                            .ledger_anomalies
                            .push(format!("answered 503, yet applied: {}", describe()));
                    }
                }
                Status::NoResponders => {
                    books.no_responders += 1;
                    if applied {
                        books
                            .ledger_anomalies
                            .push(format!("never delivered, yet applied: {}", describe()));
                    }
                }
                Status::Lost => {
                    books.lost_bound += i64::from(planned.quantity);
                    if applied {
                        books.lost_applied += 1;
                        *expected.entry(planned.sku.clone()).or_insert(0) += planned.delta();
                    } else {
                        books.lost_not_applied += 1;
                    }
                }
            }
        }
        for row in &ledger {
            if let Some(trace) = row.trace_id.as_deref()
                && !ours.contains(trace)
            {
                books
                    .ledger_anomalies
                    .push(format!("a change nobody asked for: {row:?}"));
            }
        }

        // Each product: level, ledger and what the callers were told.
        for (sku, want) in &expected {
            let level: Option<i32> =
                sqlx::query_scalar("SELECT stock_level FROM inventory WHERE product_sku = $1")
                    .bind(sku)
                    .fetch_optional(pool)
                    .await?;
            let level = i64::from(level.unwrap_or(0));
            let ledger_sum: i64 = ledger
                .iter()
                .filter(|r| &r.sku == sku)
                .map(|r| i64::from(r.level_after - r.level_before))
                .sum();
            let lowest = ledger
                .iter()
                .filter(|r| &r.sku == sku)
                .map(|r| r.level_after)
                .min()
                .unwrap_or(0);
            if level != *want || ledger_sum != level || level < 0 || lowest < 0 {
                books.level_mismatches.push(format!(
                    "{sku}: level {level}, expected {want}, ledger sums to {ledger_sum}, lowest {lowest}"
                ));
            }
        }

        books.check_events(pool, nats, stream, &ledger).await?;
        Ok(books)
    }

    /// Every answered repeat of a keyed request must be the first answer,
    /// byte for byte.
    fn check_replays(&mut self, record: &Record) {
        let mut answers = record.attempts.iter().filter(|a| a.answered()).filter(|a| {
            // A 503 is not stored under the key: the retry decides anew.
            !matches!(a, Outcome::Refused { code: 503, .. })
        });
        let Some(first) = answers.next() else { return };
        for other in answers {
            if other == first {
                self.replays += 1;
            } else {
                self.ledger_anomalies.push(format!(
                    "a retry with key {:?} was answered {other:?}, first {first:?}",
                    record.planned.key
                ));
            }
        }
    }

    /// Every remove that left fewer than [`LOW_STOCK_BELOW`] units has one
    /// outbox row and one message in the stream with the same id and the
    /// same content; the stream holds nothing else.
    async fn check_events(
        &mut self,
        pool: &PgPool,
        nats: &async_nats::Client,
        stream: &str,
        ledger: &[LedgerRow],
    ) -> Result<()> {
        let committed: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(
            "SELECT m.request_id::text, m.product_sku, m.level_after, o.msg_id::text \
             FROM stock_movements m LEFT JOIN outbox o ON o.request_id = m.request_id \
             WHERE m.operation = 'remove' AND m.level_after < $1",
        )
        .bind(LOW_STOCK_BELOW)
        .fetch_all(pool)
        .await?;
        let low_changes = ledger
            .iter()
            .filter(|r| r.operation == "remove" && r.level_after < LOW_STOCK_BELOW)
            .count();
        self.events_expected = low_changes;
        let mut expected: HashMap<String, (String, i32)> = HashMap::new();
        for (request, sku, level, msg_id) in committed {
            match msg_id {
                None => self.events_missing.push(format!(
                    "no outbox row for request {request} ({sku} → {level})"
                )),
                Some(id) => {
                    if expected.insert(id.clone(), (sku, level)).is_some() {
                        self.events_duplicated.push(format!("outbox id {id} twice"));
                    }
                }
            }
        }
        let strays: Vec<String> = sqlx::query_scalar(
            "SELECT o.msg_id::text FROM outbox o WHERE NOT EXISTS ( \
               SELECT 1 FROM stock_movements m WHERE m.request_id = o.request_id \
               AND m.operation = 'remove' AND m.level_after < $1)",
        )
        .bind(LOW_STOCK_BELOW)
        .fetch_all(pool)
        .await?;
        for id in strays {
            self.events_unexpected
                .push(format!("outbox row {id} without a low-stock change"));
        }

        let events = stream_events(nats, stream).await?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for event in &events {
            let Some(id) = event.msg_id.clone() else {
                self.events_unexpected
                    .push(format!("message {} without Nats-Msg-Id", event.sequence));
                continue;
            };
            match expected.get(&id) {
                None => self
                    .events_unexpected
                    .push(format!("message {} ({id}) not committed", event.sequence)),
                Some((sku, level)) => {
                    let content = (
                        event.payload["product-sku"].as_str(),
                        event.payload["stock-level"].as_i64(),
                    );
                    if content != (Some(sku.as_str()), Some(i64::from(*level))) {
                        self.events_unexpected.push(format!(
                            "message {} says {} where the ledger says {sku} → {level}",
                            event.sequence, event.payload
                        ));
                    }
                }
            }
            *seen.entry(id).or_insert(0) += 1;
        }
        for (id, count) in &seen {
            if *count > 1 {
                self.events_duplicated
                    .push(format!("{id} in the stream {count} times"));
            }
        }
        for id in expected.keys() {
            if !seen.contains_key(id) {
                self.events_missing.push(format!("{id} not in the stream"));
            }
        }
        Ok(())
    }

    /// The scenario's table, for `--no-capture` runs and the test's folder.
    pub fn table(&self) -> String {
        let rows: Vec<(&str, String)> = vec![
            ("requests sent", self.sent.to_string()),
            ("  acknowledged", self.acknowledged.to_string()),
            (
                "  refused by the rules (409)",
                self.refused_rule.to_string(),
            ),
            (
                "  refused otherwise (4xx/500)",
                self.refused_other.to_string(),
            ),
            (
                "  refused as unavailable (503)",
                self.unavailable.to_string(),
            ),
            (
                "  no responders (never delivered)",
                self.no_responders.to_string(),
            ),
            ("answers lost in the fault", self.answers_lost.to_string()),
            (
                "  settled by a retry with the key",
                self.settled_by_retry.to_string(),
            ),
            (
                "  never answered: applied / not",
                format!("{} / {}", self.lost_applied, self.lost_not_applied),
            ),
            (
                "keyed retries replayed identically",
                self.replays.to_string(),
            ),
            (
                "sent after recovery: failed / all",
                format!("{} / {}", self.after_recovery_failures, self.after_recovery),
            ),
            ("level mismatches", self.level_mismatches.len().to_string()),
            ("ledger anomalies", self.ledger_anomalies.len().to_string()),
            (
                "low-stock changes committed",
                self.events_expected.to_string(),
            ),
            ("events missing", self.events_missing.len().to_string()),
            (
                "events duplicated",
                self.events_duplicated.len().to_string(),
            ),
            (
                "events unexpected",
                self.events_unexpected.len().to_string(),
            ),
        ];
        let mut text = format!("\n| {} | |\n| --- | ---: |\n", self.scenario);
        for (name, value) in rows {
            text.push_str(&format!("| {name} | {value} |\n"));
        }
        text
    }

    /// Prints the table, keeps it and every request's history in the
    /// scenario's folder, and fails with the details of every broken
    /// promise.
    pub fn assert_clean(&self, name: &str, records: &[Record]) -> Result<()> {
        let table = self.table();
        println!("{table}");
        let _ = std::fs::write(output_dir(name).join("books.md"), &table);
        let history: String = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{i} {} {} {} key={:?} trace={} seed={} after_recovery={} {:?}\n",
                    r.planned.op.subject(),
                    r.planned.sku,
                    r.planned.quantity,
                    r.planned.key,
                    r.planned.trace_id,
                    r.seed,
                    r.after_recovery,
                    r.attempts
                )
            })
            .collect();
        let _ = std::fs::write(output_dir(name).join("requests.txt"), history);
        let mut broken = Vec::new();
        for (what, list) in [
            ("level mismatches", &self.level_mismatches),
            ("ledger anomalies", &self.ledger_anomalies),
            ("events missing", &self.events_missing),
            ("events duplicated", &self.events_duplicated),
            ("events unexpected", &self.events_unexpected),
        ] {
            if !list.is_empty() {
                let shown: Vec<&String> = list.iter().take(10).collect();
                broken.push(format!("{what} ({}): {shown:#?}", list.len()));
            }
        }
        if !broken.is_empty() {
            bail!(
                "{}: the books do not hold:\n{}",
                self.scenario,
                broken.join("\n")
            );
        }
        let accounted = self.acknowledged
            + self.refused_rule
            + self.refused_other
            + self.unavailable
            + self.no_responders
            + self.lost_applied
            + self.lost_not_applied;
        anyhow::ensure!(
            self.sent == accounted,
            "{} requests sent, {accounted} accounted for",
            self.sent
        );
        Ok(())
    }
}

/// Waits until every committed event has been published.
pub async fn wait_outbox_drained(pool: &PgPool, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(pool)
                .await?;
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{pending} events still unpublished after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every running instance's `$SRV.STATS.beaker`, once `count` have
/// answered (or after `timeout`, with those that did).
pub async fn service_stats(
    client: &async_nats::Client,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply("$SRV.STATS.beaker", inbox, bytes::Bytes::new())
        .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stats = Vec::new();
    while stats.len() < count {
        match tokio::time::timeout_at(deadline, replies.next()).await {
            Ok(Some(message)) => stats.push(serde_json::from_slice(&message.payload)?),
            _ => break,
        }
    }
    Ok(stats)
}

/// Requests an instance's statistics count over its `stock.*` endpoints.
pub fn requests_served(stats: &Value) -> u64 {
    stats["endpoints"]
        .as_array()
        .map(|endpoints| {
            endpoints
                .iter()
                .filter_map(|e| e["num_requests"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}
