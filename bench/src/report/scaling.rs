//! The scaling section: one host and three on a NATS cluster, beside the
//! database's ceiling.

use std::fmt::Write as _;

use super::cpu_cell;
use crate::format::millis;
use crate::run::Results;

impl Results {
    /// One host and three on a NATS cluster, beside the database's ceiling.
    pub(super) fn scaling(&self, out: &mut String) {
        let Some(s) = &self.scaling else { return };
        let _ = writeln!(
            out,
            "\n## Scaling out\n\n{} at {} in flight, on a cluster of three nats-servers (the stream and the bucket with three replicas) and the one Postgres:\n",
            s.mix.label(),
            s.concurrency
        );
        let _ = writeln!(
            out,
            "| hosts | throughput | p50 | p99 | errors | hosts' CPU/req |\n| --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for (hosts, summary) in [(1, &s.one_host), (3, &s.three_hosts)] {
            let _ = writeln!(
                out,
                "| {hosts} | {:.0}/s | {} | {} | {} | {} |",
                summary.throughput,
                millis(summary.p50),
                millis(summary.p99),
                summary.refused_total() + summary.no_reply(),
                cpu_cell(summary)
            );
        }
        let ratio = s.three_hosts.throughput / s.one_host.throughput.max(f64::MIN_POSITIVE);
        let ceiling = self
            .sql
            .iter()
            .filter(|(mix, _, _)| *mix == s.mix)
            .map(|(_, _, summary)| summary.throughput)
            .fold(0.0_f64, f64::max);
        let _ = writeln!(
            out,
            "\nThree hosts serve {ratio:.2}× one host. The same SQL alone, one transaction per request, peaks at {ceiling:.0}/s in this run: the database's ceiling for one transaction per change, which group commit lifts."
        );
    }
}
