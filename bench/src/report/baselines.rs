//! The baselines section: the same SQL without the service, and NATS
//! request/reply to an echo responder.

use std::fmt::Write as _;

use super::{cpu_cell, summary_cells};
use crate::run::Results;

impl Results {
    pub(super) fn baselines(&self, out: &mut String) {
        let _ = writeln!(out, "## Baselines\n");
        let _ = writeln!(
            out,
            "| baseline | in flight | req/s | p50 | p99 | p99.9 | errors | no reply | CPU/req |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
        );
        for (mix, concurrency, summary) in &self.sql {
            let _ = writeln!(
                out,
                "| same SQL, {} | {concurrency} | {} | {} |",
                mix.label(),
                summary_cells(summary),
                cpu_cell(summary)
            );
        }
        for (concurrency, summary) in &self.echo {
            let _ = writeln!(
                out,
                "| NATS echo, 128 B | {concurrency} | {} | {} |",
                summary_cells(summary),
                cpu_cell(summary)
            );
        }
        let _ = writeln!(
            out,
            "\n*Same SQL*: the host's own `Store::begin_change` + `Change::commit` (BEGIN; SELECT … FOR UPDATE; \
             one statement writing the level, the ledger row and the outbox; COMMIT) with one database \
             connection per request in flight, as `pgbench -c` (the host's own pool has 16 by default, \
             `--db-max-connections`); no NATS, no validation, no rules. \
             *NATS echo*: request/reply through the same nats-server to a responder in another process \
             that sends the payload back. \
             *CPU/req*: user + system time from the kernel's accounting (`/proc/<pid>/stat`) over the \
             measured window, divided by the requests answered in it: of the client process that runs \
             the transactions for *same SQL* (load loop included), of the responder for *NATS echo*.\n"
        );
    }
}
