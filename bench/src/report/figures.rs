//! The section of single figures per configuration: event latency,
//! memory, start-up and the rules swap, with how each was measured.

use std::fmt::Write as _;

use super::{mib, percent};
use crate::events::EventLatency;
use crate::format::{millis, signed_millis};
use crate::run::{Results, VariantResults};

impl Results {
    pub(super) fn other_figures(&self, out: &mut String) {
        let _ = writeln!(out, "## Events, memory, start-up, rules swap\n");
        let mut header = "| figure |".to_string();
        let mut rule = "| --- |".to_string();
        for v in &self.variants {
            let _ = write!(header, " `{}` |", v.variant.name);
            rule.push_str(" ---: |");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        let event_count = self
            .variants
            .iter()
            .map(|v| v.events.len())
            .max()
            .unwrap_or(0);
        for index in 0..event_count {
            let concurrency = self
                .settings
                .event_concurrency
                .get(index)
                .copied()
                .unwrap_or(0);
            self.row(
                out,
                &format!("event latency, reply → stream, p50 / p99 ({concurrency} in flight)"),
                |v| {
                    v.events.get(index).map(|e: &EventLatency| {
                        format!(
                            "{} / {}",
                            signed_millis(e.reply_to_event_p50),
                            signed_millis(e.reply_to_event_p99)
                        )
                    })
                },
            );
            self.row(
                out,
                &format!(
                    "event latency, request sent → stream, p50 / p99 ({concurrency} in flight)"
                ),
                |v| {
                    v.events.get(index).map(|e| {
                        format!(
                            "{} / {}",
                            signed_millis(e.request_to_event_p50),
                            signed_millis(e.request_to_event_p99)
                        )
                    })
                },
            );
            self.row(
                out,
                &format!("events seen / removes applied ({concurrency} in flight)"),
                |v| {
                    v.events.get(index).map(|e| {
                        let mut text = format!("{} / {}", e.matched, e.removes);
                        if e.missing > 0 {
                            let _ = write!(text, ", {} never arrived", e.missing);
                        }
                        if e.before_reply > 0 {
                            let _ = write!(text, ", {} before their reply", e.before_reply);
                        }
                        if e.failed > 0 {
                            let _ = write!(text, " ({} removes failed)", e.failed);
                        }
                        text
                    })
                },
            );
        }
        self.row(
            out,
            "burst: served / refused / unanswered, last reply after",
            |v| {
                v.burst.as_ref().map(|b| {
                    let refused: usize = b.refused.values().sum();
                    format!(
                        "{} / {refused} / {} of {}, {}",
                        b.ok,
                        b.unanswered,
                        b.requests,
                        millis(b.drained)
                    )
                })
            },
        );
        self.row(out, "burst: host CPU per request", |v| {
            v.burst.as_ref().and_then(|b| {
                b.host_cpu_per_request
                    .map(|c| format!("{:.0} µs", c.as_secs_f64() * 1e6))
            })
        });
        self.row(out, "rules share of request time, every phase", |v| {
            Some(percent(v.rules_share))
        });
        self.row(out, "host peak RSS (VmHWM)", |v| Some(mib(v.peak_rss)));
        self.row(out, "process start → `ready`", |v| {
            Some(millis(v.start_to_ready))
        });
        self.row(out, "second instance start → `ready`", |v| {
            v.swap.as_ref().map(|s| millis(s.second_start_to_ready))
        });
        self.row(
            out,
            "rules swap on all instances, from `deployed to bucket`",
            |v| {
                v.swap.as_ref().map(|s| {
                    s.timing
                        .from_deployed
                        .map_or("the command printed no `deployed` line".into(), millis)
                })
            },
        );
        self.row(
            out,
            "rules swap on all instances, from starting `beaker rules deploy`",
            |v| {
                v.swap.as_ref().map(|s| {
                    let mut text = millis(s.timing.from_command);
                    if s.timing.command_status != Some(0) {
                        let _ = write!(
                            text,
                            " (the command exited with {:?})",
                            s.timing.command_status
                        );
                    }
                    text
                })
            },
        );
        let _ = writeln!(
            out,
            "\n*Event latency*: products stocked at the low-stock threshold (10) are taken down one unit at a time, \
             so every remove commits one `events.low_stock` event, named uniquely by product and level. A core \
             NATS subscriber sees each event when nats-server takes the outbox relay's publish into the \
             `BEAKER_EVENTS` stream. *Reply → stream* is from the remove's reply reaching the client (the host \
             replies right after COMMIT) to its event reaching the subscriber: the relay's delay from commit to \
             stream, negative when the event wins the race. *Request sent → stream* adds the request's own time.\n\n\
             *Burst*: after the load phases, one client publishes that many adds and removes over the cold \
             products at once (each with its own reply subject) and waits up to 20 s for every reply; \
             *refused* are error replies (503: no slot within `BEAKER_MAX_WAIT`).\n\n\
             *Rules share*: the sum of `beaker_rules_call_duration_seconds_sum` over the sum of \
             `messaging_process_duration_seconds_sum`, from the host's own /metrics, between the start and the \
             end of the phases (a fresh sandboxed instance per call is included).\n\n\
             *Peak RSS*: `VmHWM` in `/proc/<pid>/status` of the first instance after every phase.\n\n\
             *Start → ready*: from spawning `beaker serve` (database already migrated) to its `ready` log line.\n\n\
             *Rules swap*: a second instance is started, `beaker rules deploy` uploads the threshold rules \
             (examples/rules-threshold) to the rules bucket, and `$SRV.INFO.beaker` is asked every 5 ms until \
             both instances report the new `rules_digest`. The command first compiles and checks the component \
             itself; its `deployed to bucket` line marks the moment the hosts' part begins."
        );
    }

    fn row(
        &self,
        out: &mut String,
        figure: &str,
        cell: impl Fn(&VariantResults) -> Option<String>,
    ) {
        let _ = write!(out, "| {figure} |");
        for v in &self.variants {
            let _ = write!(out, " {} |", cell(v).unwrap_or_else(|| "–".into()));
        }
        out.push('\n');
    }
}
