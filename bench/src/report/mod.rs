//! The table `make bench` prints and writes to BENCHMARKS.md.
//!
//! One module per section of the report; the lookups and cell formats the
//! sections share live here.

mod baselines;
mod figures;
mod goals;
mod scaling;
mod service;

use std::fmt::Write as _;

use crate::format::millis;
use crate::load::Summary;
use crate::mix::Mix;
use crate::run::Results;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// CPU time per call, in µs: what the goals are stated in.
fn cpu_cell(s: &Summary) -> String {
    s.cpu_per_call().map_or("–".into(), |cpu| {
        format!("{:.0} µs", cpu.as_secs_f64() * 1e6)
    })
}

fn percent(share: Option<f64>) -> String {
    share.map_or("–".into(), |s| format!("{:.2} %", s * 100.0))
}

impl Results {
    fn sql(&self, mix: Mix, concurrency: usize) -> Option<&Summary> {
        self.sql
            .iter()
            .find(|(m, c, _)| *m == mix && *c == concurrency)
            .map(|(_, _, s)| s)
    }

    fn echo(&self, concurrency: usize) -> Option<&Summary> {
        self.echo
            .iter()
            .find(|(c, _)| *c == concurrency)
            .map(|(_, s)| s)
    }

    /// Service throughput over the same-SQL baseline's, same mix and load.
    fn ratio(&self, mix: Mix, concurrency: usize, service: &Summary) -> Option<f64> {
        let baseline = self.sql(mix, concurrency)?;
        (baseline.throughput > 0.0).then(|| service.throughput / baseline.throughput)
    }

    /// The report in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(out, "Date: {} UTC  ", self.date.format("%Y-%m-%d %H:%M"));
        let _ = writeln!(out, "Machine: {}  ", self.machine.line());
        if let Some(revision) = &s.revision {
            let _ = writeln!(out, "Host: built from {revision}  ");
        }
        let _ = writeln!(
            out,
            "Load: closed loop, a fixed number of requests in flight; each phase {:.1} s measured after {:.1} s of warm-up; \
             {} hot products, {} cold ones, each stocked with 1,000,000 units; adds and removes of 1–5 units, half each, \
             so no change is refused and none raises an event.",
            s.measure.as_secs_f64(),
            s.warmup.as_secs_f64(),
            s.products.hot,
            s.products.cold,
        );
        out.push('\n');
        self.goals(&mut out);
        self.baselines(&mut out);
        for variant in &self.variants {
            self.service(&mut out, variant);
        }
        self.other_figures(&mut out);
        self.scaling(&mut out);
        out
    }
}

/// req/s, p50, p99, p99.9, errors, no reply.
fn summary_cells(s: &Summary) -> String {
    let errors = if s.refused_total() == 0 {
        "0".to_string()
    } else {
        s.refused_by_code()
    };
    format!(
        "{:.0} | {} | {} | {} | {errors} | {}",
        s.throughput,
        millis(s.p50),
        millis(s.p99),
        millis(s.p999),
        s.no_reply()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::format::signed_millis;

    #[test]
    fn durations_read_well() {
        assert_eq!(millis(Duration::from_micros(270)), "0.27 ms");
        assert_eq!(millis(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(millis(Duration::from_millis(1234)), "1234 ms");
        assert_eq!(signed_millis(-1_500_000), "−1.50 ms");
        assert_eq!(mib(96 << 20), "96.0 MiB");
        assert_eq!(percent(Some(0.0123)), "1.23 %");
    }
}
