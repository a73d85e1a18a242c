//! Whether the relay is keeping up: the outbox backlog sampled for the
//! metrics, and a relay that is connected to NATS but makes no progress
//! reported — in a warning, in `beaker_outbox_relay_stalled`, and in
//! `/readyz` — so that a stall is seen long before anyone counts events.
//!
//! The sampler is a task of its own, apart from the relay's loop: a relay
//! stuck in an await cannot report itself, but it cannot stop the sampler
//! either.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::nats::Link;
use crate::shutdown::stopped;
use crate::store::Store;

/// How often the backlog is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for one sample: the database may be away.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the relay has done lately, shared by the relay (which reports its
/// progress), the sampler and the readiness check.
#[derive(Debug)]
pub struct Liveness {
    origin: Instant,
    /// Whether this instance runs a relay at all.
    relaying: bool,
    /// A relay with events pending that has made no progress for this
    /// long, while connected, is stalled.
    stall_after: Duration,
    /// Milliseconds from `origin` to the last round that made progress.
    progress_ms: AtomicU64,
    sampled: AtomicBool,
    backlog: AtomicU64,
    oldest_ms: AtomicU64,
    stalled: AtomicBool,
}

/// The relay's state, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayState {
    /// This instance runs no relay (`--outbox-relay=false`).
    Off,
    /// The backlog has not been sampled yet (or the database is away).
    Unknown,
    /// Nothing pending.
    UpToDate,
    /// Events pending, and the relay making progress.
    Behind { pending: u64, oldest: Duration },
    /// Events pending, connected, and no progress for `idle`.
    Stalled {
        pending: u64,
        oldest: Duration,
        idle: Duration,
    },
}

impl std::fmt::Display for RelayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |d: &Duration| d.as_secs();
        match self {
            Self::Off => write!(f, "no relay in this instance"),
            Self::Unknown => write!(f, "backlog not sampled yet"),
            Self::UpToDate => write!(f, "up to date"),
            Self::Behind { pending, oldest } => {
                write!(f, "{pending} pending, oldest {} s", secs(oldest))
            }
            Self::Stalled {
                pending,
                oldest,
                idle,
            } => write!(
                f,
                "stalled: {pending} pending, oldest {} s, nothing published for {} s",
                secs(oldest),
                secs(idle)
            ),
        }
    }
}

impl Liveness {
    pub fn new(relaying: bool, stall_after: Duration) -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            relaying,
            stall_after,
            progress_ms: AtomicU64::new(0),
            sampled: AtomicBool::new(false),
            backlog: AtomicU64::new(0),
            oldest_ms: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The relay finished a round that published what it claimed, or found
    /// nothing to claim.
    pub fn progressed(&self) {
        self.progress_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long since the relay last made progress.
    pub fn idle(&self) -> Duration {
        let last = self.progress_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// The state as of the last sample.
    pub fn state(&self) -> RelayState {
        if !self.relaying {
            return RelayState::Off;
        }
        if !self.sampled.load(Ordering::Relaxed) {
            return RelayState::Unknown;
        }
        let pending = self.backlog.load(Ordering::Relaxed);
        let oldest = Duration::from_millis(self.oldest_ms.load(Ordering::Relaxed));
        match (pending, self.stalled.load(Ordering::Relaxed)) {
            (0, _) => RelayState::UpToDate,
            (_, true) => RelayState::Stalled {
                pending,
                oldest,
                idle: self.idle(),
            },
            (_, false) => RelayState::Behind { pending, oldest },
        }
    }

    /// Records a sample and decides whether the relay is stalled: events
    /// pending longer than `stall_after`, the connection up, and no
    /// progress for as long. Returns whether it just became stalled or
    /// recovered, for the log.
    fn record(&self, pending: u64, oldest: Duration, connected: bool) -> Option<bool> {
        self.backlog.store(pending, Ordering::Relaxed);
        self.oldest_ms.store(
            u64::try_from(oldest.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.sampled.store(true, Ordering::Relaxed);
        let stalled = self.relaying
            && connected
            && pending > 0
            && oldest > self.stall_after
            && self.idle() > self.stall_after;
        let was = self.stalled.swap(stalled, Ordering::Relaxed);
        (was != stalled).then_some(stalled)
    }
}

/// Samples the backlog every few seconds until `stop`: the metrics'
/// gauges, and the stall warning (repeated every `stall_after` while it
/// lasts).
pub async fn sample(
    store: Store,
    liveness: Arc<Liveness>,
    metrics: Arc<Metrics>,
    link: watch::Receiver<Link>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_warning: Option<Instant> = None;
    loop {
        let sample = tokio::time::timeout(SAMPLE_TIMEOUT, store.outbox_backlog()).await;
        if let Ok(Ok((count, oldest))) = sample {
            let pending = u64::try_from(count).unwrap_or(0);
            metrics
                .gauges
                .outbox_backlog
                .store(pending, Ordering::Relaxed);
            metrics.gauges.outbox_oldest_ms.store(
                u64::try_from(oldest.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let connected = link.borrow().up;
            let change = liveness.record(pending, oldest, connected);
            let state = liveness.state();
            let stalled = matches!(state, RelayState::Stalled { .. });
            metrics
                .gauges
                .relay_stalled
                .store(u64::from(stalled), Ordering::Relaxed);
            let due = last_warning.is_none_or(|at| at.elapsed() >= liveness.stall_after);
            if stalled && (change == Some(true) || due) {
                tracing::warn!(
                    pending,
                    oldest_s = oldest.as_secs(),
                    idle_s = liveness.idle().as_secs(),
                    "the outbox relay is connected to NATS but has published nothing lately; \
                     events are safe in the outbox and wait"
                );
                last_warning = Some(Instant::now());
            } else if change == Some(false) {
                tracing::info!(pending, "the outbox relay is making progress again");
                last_warning = None;
            }
        }
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connected_relay_without_progress_is_stalled_and_recovers() {
        let liveness = Liveness::new(true, Duration::ZERO);
        assert_eq!(liveness.state(), RelayState::Unknown);
        std::thread::sleep(Duration::from_millis(5));
        // Pending, old, connected, no progress since start: stalled.
        assert_eq!(
            liveness.record(3, Duration::from_secs(40), true),
            Some(true)
        );
        assert!(matches!(
            liveness.state(),
            RelayState::Stalled { pending: 3, .. }
        ));
        // Still stalled: no change to report.
        assert_eq!(liveness.record(3, Duration::from_secs(42), true), None);
        // Disconnected: not the relay's fault, not a stall.
        assert_eq!(
            liveness.record(3, Duration::from_secs(44), false),
            Some(false)
        );
        // Drained.
        assert_eq!(liveness.record(0, Duration::ZERO, true), None);
        assert_eq!(liveness.state(), RelayState::UpToDate);
    }

    #[test]
    fn progress_and_young_events_are_not_a_stall() {
        let liveness = Liveness::new(true, Duration::from_secs(30));
        liveness.progressed();
        assert_eq!(liveness.record(5, Duration::from_secs(60), true), None);
        assert!(matches!(liveness.state(), RelayState::Behind { .. }));
        let off = Liveness::new(false, Duration::ZERO);
        assert_eq!(off.record(5, Duration::from_secs(60), true), None);
        assert_eq!(off.state(), RelayState::Off);
        assert_eq!(
            RelayState::Stalled {
                pending: 148,
                oldest: Duration::from_secs(35),
                idle: Duration::from_secs(35)
            }
            .to_string(),
            "stalled: 148 pending, oldest 35 s, nothing published for 35 s"
        );
    }
}
