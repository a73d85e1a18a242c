//! Stopping: the signal that starts it, the flag every long-running task
//! watches, and the deadline that bounds it.
//!
//! Every loop that waits selects on [`stopped`] so that it can be stopped,
//! and every step of the shutdown runs under one [`Deadline`] so that the
//! whole stop is bounded: an orchestrator's grace period (often 30 s) is
//! spent on purpose, not waiting on a dependency that is gone.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits for SIGTERM or SIGINT.
pub async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = int.recv() => tracing::info!("received SIGINT"),
    }
    Ok(())
}

/// The moment by which a shutdown must be over, and the steps that missed
/// it.
#[derive(Debug)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
    missed: Vec<&'static str>,
}

impl Deadline {
    pub fn after(limit: Duration) -> Self {
        Self {
            at: Instant::now() + limit,
            limit,
            missed: Vec::new(),
        }
    }

    /// The whole allowance.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Runs one step of the shutdown until it ends or the deadline comes;
    /// `None` (and the step named among the missed) if the deadline came
    /// first. The step's future is dropped then, which cancels it.
    pub async fn step<T>(
        &mut self,
        name: &'static str,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        match tokio::time::timeout_at(self.at, work).await {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(step = name, "shutdown step cut off at the deadline");
                self.missed.push(name);
                None
            }
        }
    }

    /// The steps the deadline cut off, in order.
    pub fn missed(&self) -> &[&'static str] {
        &self.missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_past_the_deadline_are_cut_off_and_named() {
        let mut deadline = Deadline::after(Duration::from_millis(50));
        assert_eq!(deadline.step("quick", async { 7 }).await, Some(7));
        let stuck = deadline.step("stuck", std::future::pending::<()>()).await;
        assert_eq!(stuck, None);
        // Later steps get no time at all.
        assert_eq!(
            deadline
                .step("late", tokio::time::sleep(Duration::from_millis(1)))
                .await,
            None
        );
        assert_eq!(deadline.missed(), ["stuck", "late"]);
        assert_eq!(deadline.remaining(), Duration::ZERO);
    }

    #[tokio::test]
    async fn stopped_resolves_when_the_flag_turns_or_the_sender_goes() {
        let (tx, mut rx) = watch::channel(false);
        let _ = tx.send(true);
        stopped(&mut rx).await;
        let (tx, mut rx) = watch::channel(false);
        drop(tx);
        stopped(&mut rx).await;
    }
}
