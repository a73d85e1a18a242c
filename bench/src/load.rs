//! A closed loop: a fixed number of requests in flight, each worker sending
//! its next request as soon as the previous one is answered, for a warm-up
//! and then a measured window. Every latency in the window is kept (a few
//! hundred thousand numbers at most), so percentiles are exact.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// A successful reply.
    Ok,
    /// An error reply, with its `Nats-Service-Error-Code` (or, for the
    /// same-SQL baseline, the code the service would have sent).
    Refused(u16),
    /// No reply within the request timeout.
    TimedOut,
    /// Nobody was subscribed to the subject.
    NoResponders,
    /// The call itself failed (connection lost, database error).
    Failed(String),
}

/// A phase's length and load.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub concurrency: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one phase measured.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Calls that started and ended inside the measured window.
    pub calls: u64,
    pub ok: u64,
    /// Error replies by code.
    pub refused: BTreeMap<u16, u64>,
    pub timed_out: u64,
    pub no_responders: u64,
    pub failed: u64,
    /// The first failure's message, to say what went wrong.
    pub first_failure: Option<String>,
    /// Calls per second over the window.
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    /// CPU time the metered processes used in the window (see
    /// [`closed_loop`]); `None` when nothing was metered.
    pub cpu: Option<Duration>,
}

impl Summary {
    /// Every error reply, whatever its code.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    /// Calls that got no reply at all.
    pub fn no_reply(&self) -> u64 {
        self.timed_out + self.no_responders + self.failed
    }

    /// CPU time per call in the window, of the metered processes.
    pub fn cpu_per_call(&self) -> Option<Duration> {
        let calls = u32::try_from(self.calls).ok().filter(|&n| n > 0)?;
        Some(self.cpu? / calls)
    }

    /// Error replies as `409×3 503×1`.
    pub fn refused_by_code(&self) -> String {
        self.refused
            .iter()
            .map(|(code, n)| format!("{code}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<u64>,
    ok: u64,
    refused: BTreeMap<u16, u64>,
    timed_out: u64,
    no_responders: u64,
    failed: u64,
    first_failure: Option<String>,
}

/// Runs `call(worker, sequence)` in a closed loop on `phase.concurrency`
/// workers; only calls that start after the warm-up and end before the
/// window closes are counted. The CPU time the processes `metered` use in
/// the window is read from the kernel at its start and its end.
pub async fn closed_loop<F, Fut>(phase: Phase, metered: &[u32], call: F) -> Summary
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = CallResult> + Send,
{
    let started = Instant::now();
    let window_start = started + phase.warmup;
    let window_end = window_start + phase.measure;
    let meter = (!metered.is_empty()).then(|| {
        let pids = metered.to_vec();
        tokio::spawn(async move {
            tokio::time::sleep_until(window_start.into()).await;
            let before = crate::cpu::total(&pids)?;
            tokio::time::sleep_until(window_end.into()).await;
            let after = crate::cpu::total(&pids)?;
            Some(after.saturating_sub(before))
        })
    });
    let workers: Vec<_> = (0..phase.concurrency.max(1))
        .map(|worker| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut sequence = 0u64;
                loop {
                    let sent = Instant::now();
                    if sent >= window_end {
                        break;
                    }
                    let result = call(worker, sequence).await;
                    sequence += 1;
                    let answered = Instant::now();
                    if sent < window_start || answered > window_end {
                        continue;
                    }
                    let nanos = u64::try_from((answered - sent).as_nanos()).unwrap_or(u64::MAX);
                    tally.latencies.push(nanos);
                    match result {
                        CallResult::Ok => tally.ok += 1,
                        CallResult::Refused(code) => *tally.refused.entry(code).or_default() += 1,
                        CallResult::TimedOut => tally.timed_out += 1,
                        CallResult::NoResponders => tally.no_responders += 1,
                        CallResult::Failed(message) => {
                            tally.failed += 1;
                            tally.first_failure.get_or_insert(message);
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        // A worker only panics on a defect here; count it as a failure.
        let tally = worker.await.unwrap_or_else(|e| Tally {
            failed: 1,
            first_failure: Some(format!("a load worker failed: {e}")),
            ..Tally::default()
        });
        total.latencies.extend(tally.latencies);
        total.ok += tally.ok;
        for (code, n) in tally.refused {
            *total.refused.entry(code).or_default() += n;
        }
        total.timed_out += tally.timed_out;
        total.no_responders += tally.no_responders;
        total.failed += tally.failed;
        if total.first_failure.is_none() {
            total.first_failure = tally.first_failure;
        }
    }
    let mut summary = summarize(total, phase.measure);
    if let Some(meter) = meter {
        summary.cpu = meter.await.ok().flatten();
    }
    summary
}

fn summarize(mut tally: Tally, window: Duration) -> Summary {
    tally.latencies.sort_unstable();
    let calls = tally.latencies.len() as u64;
    let quantile = |q: f64| Duration::from_nanos(percentile(&tally.latencies, q));
    Summary {
        calls,
        ok: tally.ok,
        refused: tally.refused,
        timed_out: tally.timed_out,
        no_responders: tally.no_responders,
        failed: tally.failed,
        first_failure: tally.first_failure,
        throughput: calls as f64 / window.as_secs_f64().max(f64::EPSILON),
        p50: quantile(0.50),
        p99: quantile(0.99),
        p999: quantile(0.999),
        max: Duration::from_nanos(tally.latencies.last().copied().unwrap_or(0)),
        cpu: None,
    }
}

/// The nearest-rank percentile of sorted values: the smallest value that
/// at least `q` of all values do not exceed. 0 for no values.
pub fn percentile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&values, 0.5), 500);
        assert_eq!(percentile(&values, 0.99), 990);
        assert_eq!(percentile(&values, 0.999), 999);
        assert_eq!(percentile(&values, 1.0), 1000);
        assert_eq!(percentile(&[7u64], 0.999), 7);
        assert_eq!(percentile::<u64>(&[], 0.5), 0);
    }

    #[tokio::test]
    async fn counts_only_the_window_and_sorts_outcomes() {
        let phase = Phase {
            concurrency: 4,
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(300),
        };
        let summary = closed_loop(phase, &[], |worker, _| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            match worker {
                0 => CallResult::Refused(409),
                1 => CallResult::TimedOut,
                2 => CallResult::Failed("boom".into()),
                _ => CallResult::Ok,
            }
        })
        .await;
        // 4 workers, each at most one call per 2 ms, 300 ms of window.
        assert!(summary.calls > 0 && summary.calls <= 600, "{summary:?}");
        assert_eq!(
            summary.calls,
            summary.ok + summary.refused_total() + summary.no_reply()
        );
        assert!(summary.ok > 0 && summary.timed_out > 0 && summary.failed > 0);
        assert_eq!(
            summary.refused_by_code(),
            format!("409×{}", summary.refused_total())
        );
        assert_eq!(summary.first_failure.as_deref(), Some("boom"));
        assert!(summary.p50 >= Duration::from_millis(2));
        assert!(summary.p50 <= summary.p99 && summary.p99 <= summary.max);
    }
}
