//! The load itself: concurrent clients sending a shared plan, the part
//! after the fault held until it is released, a tally to wait on, and the
//! records in plan order at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use tokio::sync::watch;

use super::{Outcome, Planned, Record, attempt, connect};

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
    /// When every client had reached the hold: from then on no answer is
    /// expected, so a gap past it is the test waiting, not the service.
    all_held_at: Arc<Mutex<Option<Instant>>>,
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
        let all_held_at = Arc::new(Mutex::new(None));
        let held = Arc::new(AtomicUsize::new(0));
        let clients = clients.max(1);
        // Every client connects before any sends, so that a burst (one
        // request per client) is sent at once.
        let mut connected = Vec::new();
        for _ in 0..clients {
            connected.push(connect(nats_url).await?);
        }
        let mut handles = Vec::new();
        for client in connected {
            let (plan, next, tally_tx) = (plan.clone(), next.clone(), tally_tx.clone());
            let answered_at = answered_at.clone();
            let (held, all_held_at) = (held.clone(), all_held_at.clone());
            let mut released = released.clone();
            handles.push(tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(planned) = plan.get(index) else {
                        break;
                    };
                    if index >= hold_at {
                        if !*released.borrow() && held.fetch_add(1, Ordering::SeqCst) + 1 == clients
                        {
                            *all_held_at.lock().unwrap_or_else(PoisonError::into_inner) =
                                Some(Instant::now());
                        }
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
            all_held_at,
        })
    }

    /// The longest time without any answer between `from` and `to` (a
    /// failover's cost to callers).
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        // Once every client waits at the hold, no answer is due: the time
        // after that is the test's, not a gap in service.
        let held = *self
            .all_held_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let to = held.map_or(to, |held| held.clamp(from, to));
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
