//! The table `make bench` prints and writes to BENCHMARKS.md.

use std::fmt::Write as _;
use std::time::Duration;

use crate::events::EventLatency;
use crate::format::{millis, signed_millis};
use crate::load::Summary;
use crate::mix::Mix;
use crate::run::{Results, VariantResults};

/// Issue 7's goals, as numbers.
const GOAL_RATIO: f64 = 2.0;
const GOAL_P99: Duration = Duration::from_millis(20);
const GOAL_SINGLE_FACTOR: f64 = 1.3;
const GOAL_RULES_SHARE: f64 = 0.02;
const GOAL_RSS: u64 = 64 << 20;
const GOAL_READY: Duration = Duration::from_millis(500);
const GOAL_SWAP: Duration = Duration::from_millis(250);

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn percent(share: Option<f64>) -> String {
    share.map_or("–".into(), |s| format!("{:.2} %", s * 100.0))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
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

    /// One host and three on a NATS cluster, beside the database's ceiling.
    fn scaling(&self, out: &mut String) {
        let Some(s) = &self.scaling else { return };
        let _ = writeln!(
            out,
            "\n## Scaling out\n\n{} at {} in flight, on a cluster of three nats-servers (the stream and the bucket with three replicas) and the one Postgres:\n",
            s.mix.label(),
            s.concurrency
        );
        let _ = writeln!(
            out,
            "| hosts | throughput | p50 | p99 | errors |\n| --- | ---: | ---: | ---: | ---: |"
        );
        for (hosts, summary) in [(1, &s.one_host), (3, &s.three_hosts)] {
            let _ = writeln!(
                out,
                "| {hosts} | {:.0}/s | {} | {} | {} |",
                summary.throughput,
                millis(summary.p50),
                millis(summary.p99),
                summary.refused_total() + summary.no_reply()
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

    fn goals(&self, out: &mut String) {
        let _ = writeln!(out, "## Performance goals\n");
        let mut header = "| goal |".to_string();
        let mut rule = "| --- |".to_string();
        for v in &self.variants {
            let _ = write!(header, " `{}` |", v.variant.name);
            rule.push_str(" --- |");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for mix in [Mix::ChangeCold, Mix::ChangeHot] {
            let _ = write!(
                out,
                "| {}: throughput at 32–64 in flight ≥ {GOAL_RATIO}× the same-SQL baseline, p99 ≤ {} |",
                mix.label(),
                millis(GOAL_P99)
            );
            for v in &self.variants {
                let mut parts = Vec::new();
                let mut met = None;
                for phase in v
                    .phases
                    .iter()
                    .filter(|p| p.mix == mix && (32..=64).contains(&p.concurrency))
                {
                    let ratio = self.ratio(mix, phase.concurrency, &phase.summary);
                    let ok =
                        ratio.is_some_and(|r| r >= GOAL_RATIO) && phase.summary.p99 <= GOAL_P99;
                    met = Some(met.unwrap_or(true) && ok);
                    parts.push(format!(
                        "{}: {}×, p99 {}",
                        phase.concurrency,
                        ratio.map_or("–".into(), |r| format!("{r:.2}")),
                        millis(phase.summary.p99)
                    ));
                }
                let _ = write!(out, " {} ({}) |", verdict(met), parts.join("; "));
            }
            out.push('\n');
        }

        let _ = write!(
            out,
            "| 1 in flight ({}): p50 ≤ {GOAL_SINGLE_FACTOR} × (echo p50 + same-SQL p50) |",
            Mix::ChangeCold.label()
        );
        let limit = match (self.echo(1), self.sql(Mix::ChangeCold, 1)) {
            (Some(echo), Some(sql)) => Some((echo.p50 + sql.p50).mul_f64(GOAL_SINGLE_FACTOR)),
            _ => None,
        };
        for v in &self.variants {
            let phase = v
                .phases
                .iter()
                .find(|p| p.mix == Mix::ChangeCold && p.concurrency == 1);
            match (phase, limit) {
                (Some(phase), Some(limit)) => {
                    let _ = write!(
                        out,
                        " {} ({} vs {}) |",
                        verdict(Some(phase.summary.p50 <= limit)),
                        millis(phase.summary.p50),
                        millis(limit)
                    );
                }
                _ => out.push_str(" not measured (no phase at 1 in flight) |"),
            }
        }
        out.push('\n');

        let _ = write!(
            out,
            "| rules ≤ {:.0} % of request time |",
            GOAL_RULES_SHARE * 100.0
        );
        for v in &self.variants {
            let _ = write!(
                out,
                " {} ({}) |",
                verdict(v.rules_share.map(|s| s <= GOAL_RULES_SHARE)),
                percent(v.rules_share)
            );
        }
        out.push('\n');

        let _ = write!(out, "| host peak RSS ≤ {} under load |", mib(GOAL_RSS));
        for v in &self.variants {
            let _ = write!(
                out,
                " {} ({}) |",
                verdict(Some(v.peak_rss <= GOAL_RSS)),
                mib(v.peak_rss)
            );
        }
        out.push('\n');

        let _ = write!(
            out,
            "| start to ready ≤ {} (the goal assumes a cached compiled component) |",
            millis(GOAL_READY)
        );
        for v in &self.variants {
            let _ = write!(
                out,
                " {} ({}) |",
                verdict(Some(v.start_to_ready <= GOAL_READY)),
                millis(v.start_to_ready)
            );
        }
        out.push('\n');

        let _ = write!(
            out,
            "| rules swap active on all instances ≤ {} after deploy |",
            millis(GOAL_SWAP)
        );
        for v in &self.variants {
            match v.swap.as_ref().and_then(|s| s.timing.from_deployed) {
                Some(took) => {
                    let _ = write!(
                        out,
                        " {} ({}) |",
                        verdict(Some(took <= GOAL_SWAP)),
                        millis(took)
                    );
                }
                None => out.push_str(" – |"),
            }
        }
        out.push_str("\n\n");
    }

    fn baselines(&self, out: &mut String) {
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

    fn service(&self, out: &mut String, v: &VariantResults) {
        let args = if v.variant.args.is_empty() {
            "default settings".to_string()
        } else {
            format!("`{}`", v.variant.args.join(" "))
        };
        let _ = writeln!(out, "## Service `{}` ({args})\n", v.variant.name);
        let _ = writeln!(
            out,
            "| mix | in flight | req/s | p50 | p99 | p99.9 | error replies | no reply | ÷ same SQL | rules share |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
        );
        for phase in &v.phases {
            let ratio = self
                .ratio(phase.mix, phase.concurrency, &phase.summary)
                .map_or("–".into(), |r| format!("{r:.2}×"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {ratio} | {} |",
                phase.mix.label(),
                phase.concurrency,
                summary_cells(&phase.summary),
                percent(phase.rules_share)
            );
        }
        out.push('\n');
    }

    fn other_figures(&self, out: &mut String) {
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
    use super::*;

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
