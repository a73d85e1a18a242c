//! The load of a fault scenario: requests planned from a seed, sent by
//! concurrent clients each on a NATS connection of its own, every attempt
//! recorded; the part after the fault held until it is over; keyed
//! requests retried as a client that lost track would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use async_nats::{HeaderMap, RequestErrorKind};
use futures::StreamExt;
use tokio::sync::watch;

use crate::campaign::Seed;
use crate::client::answer_from;

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

    pub(crate) fn ledger_name(self) -> &'static str {
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
    pub(crate) fn answered(&self) -> bool {
        matches!(self, Outcome::Ok { .. } | Outcome::Refused { .. })
    }

    /// Worth retrying: the service said "later", or said nothing.
    pub(crate) fn retryable(&self) -> bool {
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
    let mut rng = Seed::new(seed);
    let run = uuid::Uuid::new_v4().simple().to_string();
    (0..requests)
        .map(|i| {
            let sku = skus[rng.between(0, skus.len() as u64 - 1) as usize];
            let roll = rng.between(0, 99);
            let op = if roll < 48 {
                Op::Remove
            } else if roll < 85 {
                Op::Add
            } else {
                Op::Get
            };
            let quantity = rng.between(1, 5) as u32;
            // A get changes nothing and takes no key.
            let key = (op != Op::Get && keyed_every > 0 && i % keyed_every == 0)
                .then(|| format!("{run}-{i}"));
            Planned::new(op, sku, quantity, key)
        })
        .collect()
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
    /// When each answer (ok or refused) came, for the gaps in service.
    answered_at: Arc<Mutex<Vec<Instant>>>,
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
        let answered_at = Arc::new(Mutex::new(Vec::new()));
        // Every client connects before any sends, so that a burst (one
        // request per client) is sent at once.
        let mut connected = Vec::new();
        for _ in 0..clients.max(1) {
            connected.push(connect(nats_url).await?);
        }
        let mut handles = Vec::new();
        for client in connected {
            let (plan, next, tally_tx) = (plan.clone(), next.clone(), tally_tx.clone());
            let answered_at = answered_at.clone();
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
                    if outcome.answered() {
                        answered_at
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(Instant::now());
                    }
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
            answered_at,
        })
    }

    /// The longest time without any answer between `from` and `to` (a
    /// failover's cost to callers).
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut times: Vec<Instant> = self
            .answered_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .filter(|t| *t >= from && *t <= to)
            .collect();
        times.sort();
        let mut edges = vec![from];
        edges.extend(times);
        edges.push(to);
        edges
            .windows(2)
            .map(|w| w[1].saturating_duration_since(w[0]))
            .max()
            .unwrap_or_default()
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
