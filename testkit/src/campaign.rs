//! Fault scenarios run as campaigns: the same scenario repeated with
//! seeded random choices (when the fault strikes, how long it lasts, the
//! shape of the load), because a fault test that passes once proves
//! little.
//!
//! - `FAULT_RUNS` (default 3) runs per scenario, each with a fresh random
//!   seed; `make soak FAULT_RUNS=50` runs many.
//! - `FAULT_SEED=0x…` runs each selected scenario once with that seed: the
//!   replay of a failure. A seed replays every choice the scenario makes;
//!   the interleaving of real processes around those choices is the
//!   machine's, so a timing bug may need a few replays.
//!
//! Every run is carried out whatever the earlier ones did, so a soak
//! counts failures instead of stopping at the first. A failing run prints
//! its seed and the command that replays it; the campaign then fails with
//! the list. Each campaign writes its table to
//! `target/test-output/campaigns/<scenario>.md`.

use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::output_dir;

/// The seed of one run, and the random choices made from it.
#[derive(Debug, Clone)]
pub struct Seed {
    pub value: u64,
    state: u64,
}

impl Seed {
    pub fn new(value: u64) -> Self {
        Self {
            value,
            state: value,
        }
    }

    /// The next number of the seed's sequence (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi.saturating_sub(lo) + 1)
    }

    /// A fraction in `lo..hi`.
    pub fn fraction(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    /// A duration in `lo..=hi`, to the millisecond.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }

    /// A seed of its own for a part of the run (e.g. the load's plan), so
    /// that adding a choice elsewhere does not change that part.
    pub fn fork(&mut self) -> u64 {
        self.next_u64()
    }
}

/// What one run measured, for the campaign's table: named figures, in
/// the order they were recorded.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub figures: Vec<(String, Duration)>,
    pub notes: Vec<String>,
}

impl RunReport {
    pub fn figure(&mut self, name: &str, value: Duration) -> &mut Self {
        self.figures.push((name.to_string(), value));
        self
    }

    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.notes.push(text.into());
        self
    }
}

/// How many runs a campaign makes: `FAULT_RUNS`, default 3.
pub fn runs() -> usize {
    std::env::var("FAULT_RUNS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3)
}

/// The seed to replay, from `FAULT_SEED` (decimal or `0x` hex).
pub fn replay_seed() -> Result<Option<u64>> {
    let Ok(text) = std::env::var("FAULT_SEED") else {
        return Ok(None);
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    match parsed {
        Ok(seed) => Ok(Some(seed)),
        Err(e) => bail!("FAULT_SEED={text} is not a number: {e}"),
    }
}

/// One run's result.
#[derive(Debug)]
struct RunResult {
    seed: u64,
    took: Duration,
    outcome: std::result::Result<RunReport, String>,
}

/// Runs `scenario` [`runs`] times (or once with `FAULT_SEED`), each with
/// its own seed, in a task of its own so that a panic fails that run
/// only; prints a line per run and a table at the end, and fails if any
/// run failed, naming every failing seed.
pub async fn campaign<F, Fut>(name: &str, mut scenario: F) -> Result<()>
where
    F: FnMut(Seed) -> Fut,
    Fut: Future<Output = Result<RunReport>> + Send + 'static,
{
    let (seeds, fixed) = match replay_seed()? {
        Some(seed) => (vec![seed], true),
        None => ((0..runs()).map(|_| fastrand::u64(..)).collect(), false),
    };
    let total = seeds.len();
    // The test's own name (libtest names its thread after it), which is
    // what `make test-faults FAULTS=…` selects by.
    let test = std::thread::current()
        .name()
        .filter(|n| n.contains("::"))
        .unwrap_or(name)
        .to_string();
    let mut results = Vec::with_capacity(total);
    for (i, seed) in seeds.into_iter().enumerate() {
        let started = Instant::now();
        let run = tokio::spawn(scenario(Seed::new(seed)));
        let outcome = match run.await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(e) => Err(panic_text(e)),
        };
        let took = started.elapsed();
        match &outcome {
            Ok(report) => println!(
                "{name}: run {}/{total} seed {seed:#018x}: ok in {:.1} s{}",
                i + 1,
                took.as_secs_f64(),
                describe(report)
            ),
            Err(why) => println!(
                "{name}: run {}/{total} seed {seed:#018x}: FAILED after {:.1} s: {why}\n  \
                 replay: FAULT_SEED={seed:#018x} make test-faults FAULTS='{test}'",
                i + 1,
                took.as_secs_f64()
            ),
        }
        results.push(RunResult {
            seed,
            took,
            outcome,
        });
    }
    let table = summary(name, fixed, &results);
    println!("{table}");
    let dir = output_dir("campaigns");
    let _ = std::fs::write(dir.join(format!("{name}.md")), &table);
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r.outcome
                .as_ref()
                .err()
                .map(|why| format!("seed {:#018x}: {why}", r.seed))
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "{name}: {} of {total} runs failed (replay one with FAULT_SEED=<seed> make test-faults FAULTS='{test}'):\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
    Ok(())
}

fn describe(report: &RunReport) -> String {
    let mut text = String::new();
    for (name, value) in &report.figures {
        let _ = write!(text, "; {name} {}", millis(*value));
    }
    for note in &report.notes {
        let _ = write!(text, "; {note}");
    }
    text
}

fn millis(value: Duration) -> String {
    format!("{} ms", value.as_millis())
}

/// The campaign's table: runs, failures, time per run, and for every
/// figure the runs recorded, its median, 99th percentile and maximum.
fn summary(name: &str, fixed: bool, results: &[RunResult]) -> String {
    let failures = results.iter().filter(|r| r.outcome.is_err()).count();
    let mut text = format!(
        "\n| {name} | |\n| --- | ---: |\n| runs{} | {} |\n| failures | {failures} |\n",
        if fixed { " (replayed seed)" } else { "" },
        results.len()
    );
    let mut took: Vec<Duration> = results.iter().map(|r| r.took).collect();
    took.sort();
    let _ = writeln!(
        text,
        "| time per run: median / max | {:.1} s / {:.1} s |",
        quantile(&took, 0.5).as_secs_f64(),
        took.last().copied().unwrap_or_default().as_secs_f64()
    );
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if let Ok(report) = &r.outcome {
            for (figure, _) in &report.figures {
                if !names.contains(&figure.as_str()) {
                    names.push(figure);
                }
            }
        }
    }
    for figure in names {
        let mut values: Vec<Duration> = results
            .iter()
            .filter_map(|r| r.outcome.as_ref().ok())
            .flat_map(|report| report.figures.iter())
            .filter(|(n, _)| n == figure)
            .map(|(_, v)| *v)
            .collect();
        values.sort();
        let _ = writeln!(
            text,
            "| {figure}: median / p99 / max | {} / {} / {} |",
            millis(quantile(&values, 0.5)),
            millis(quantile(&values, 0.99)),
            millis(values.last().copied().unwrap_or_default())
        );
    }
    text
}

/// The `q` quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn panic_text(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".to_string()),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_choices() {
        let mut a = Seed::new(42);
        let mut b = Seed::new(42);
        let first: Vec<u64> = (0..8).map(|_| a.between(0, 1000)).collect();
        let second: Vec<u64> = (0..8).map(|_| b.between(0, 1000)).collect();
        assert_eq!(first, second);
        let mut c = Seed::new(43);
        let third: Vec<u64> = (0..8).map(|_| c.between(0, 1000)).collect();
        assert_ne!(first, third);
    }

    #[test]
    fn choices_stay_in_their_ranges() {
        let mut seed = Seed::new(7);
        for _ in 0..10_000 {
            let n = seed.between(3, 9);
            assert!((3..=9).contains(&n));
            let f = seed.fraction(0.1, 0.6);
            assert!((0.1..0.6).contains(&f));
        }
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&values, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
