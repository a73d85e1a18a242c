//! The baselines section: the same SQL without the service, and NATS
//! request/reply to an echo responder.

use std::fmt::Write as _;

use super::summary_cells;
use crate::run::Results;

impl Results {
    pub(super) fn baselines(&self, out: &mut String) {
        let _ = writeln!(out, "## Baselines\n");
        let _ = writeln!(
            out,
            "| baseline | in flight | req/s | p50 | p99 | p99.9 | errors | no reply |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
        );
        for (mix, concurrency, summary) in &self.sql {
            let _ = writeln!(
                out,
                "| same SQL, {} | {concurrency} | {} |",
                mix.label(),
                summary_cells(summary)
            );
        }
        for (concurrency, summary) in &self.echo {
            let _ = writeln!(
                out,
                "| NATS echo, 128 B | {concurrency} | {} |",
                summary_cells(summary)
            );
        }
        let _ = writeln!(
            out,
            "\n*Same SQL*: the host's own `Store::begin_change` + `Change::commit` (BEGIN; SELECT … FOR UPDATE; \
             one statement writing the level, the ledger row and the outbox; COMMIT) with one database \
             connection per request in flight, as `pgbench -c` (the host's own pool has 16 by default, \
             `--db-max-connections`); no NATS, no validation, no rules. \
             *NATS echo*: request/reply through the same nats-server to a responder in another process \
             that sends the payload back.\n"
        );
    }
}
