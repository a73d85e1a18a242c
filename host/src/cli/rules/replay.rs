//! `beaker rules replay CANDIDATE.wasm`: the ledger's recorded changes run
//! through a candidate component, each against the stock it saw, to show
//! where the candidate would have decided otherwise — before it decides
//! anything for real. Read only: nothing is written anywhere.
//!
//! What it can see: every applied change (the ledger keeps them all, with
//! the level before and after) and the events each published while the
//! outbox still holds them (`BEAKER_OUTBOX_RETENTION`; older changes are
//! compared on their level alone, and said so). What it cannot: refused
//! requests and reads, which change nothing and so are not recorded; shadow
//! mode (`rules deploy --shadow`) compares those on live traffic.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::table::print_table;
use super::{FAILED, UNREACHABLE, fail, load_locally};
use crate::config::SandboxArgs;
use crate::rules::state::{Outcome, describe_outcome};
use crate::rules::{Event, Operation, Request, Rules, RulesEngine};
use crate::store::{DbConfig, RecordedEvents, RecordedMovement, Store};

/// Movements read per query.
const PAGE: u32 = 1000;

/// What to replay, and how to report it.
#[derive(Debug)]
pub(super) struct ReplayArgs<'a> {
    pub file: &'a Path,
    pub since: Option<Duration>,
    pub product: Option<&'a str>,
    pub examples: usize,
    pub json: bool,
    pub db: DbConfig,
}

/// How the candidate's decision compares with the recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Verdict {
    Same,
    WouldRefuse,
    OtherLevel,
    OtherEvents,
    Failed,
}

/// One movement the candidate would have decided otherwise.
#[derive(Debug, Serialize)]
struct Difference {
    movement: i64,
    time: DateTime<Utc>,
    sku: String,
    request: String,
    recorded: String,
    recorded_rules: String,
    candidate: String,
    verdict: Verdict,
}

/// The counts, as `--json` prints them.
#[derive(Debug, Default, Serialize)]
struct Counts {
    replayed: u64,
    same: u64,
    would_refuse: u64,
    other_level: u64,
    other_events: u64,
    failed: u64,
    /// Compared on their level only: the outbox no longer holds their events.
    events_unknown: u64,
}

impl Counts {
    fn add(&mut self, verdict: Verdict) {
        self.replayed += 1;
        match verdict {
            Verdict::Same => self.same += 1,
            Verdict::WouldRefuse => self.would_refuse += 1,
            Verdict::OtherLevel => self.other_level += 1,
            Verdict::OtherEvents => self.other_events += 1,
            Verdict::Failed => self.failed += 1,
        }
    }

    fn differences(&self) -> u64 {
        self.replayed - self.same
    }
}

pub(super) async fn replay(args: ReplayArgs<'_>, sandbox: &SandboxArgs) -> ExitCode {
    let (engine, rules, _, _) = match load_locally(args.file, sandbox).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let started = Instant::now();
    let since = args
        .since
        .map(|ago| Utc::now() - chrono::Duration::from_std(ago).unwrap_or(chrono::Duration::MAX));
    let store = match Store::connect_lazy(&args.db) {
        Ok(store) => store,
        Err(e) => return fail(UNREACHABLE, e),
    };
    let events = match store.recorded_events(since).await {
        Ok(events) => events,
        Err(e) => return fail(UNREACHABLE, format!("cannot read the outbox: {e}")),
    };
    let mut counts = Counts::default();
    let mut examples = Vec::new();
    let mut after = 0;
    loop {
        let page = match store
            .recorded_movements(after, since, args.product, PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => return fail(UNREACHABLE, format!("cannot read the ledger: {e}")),
        };
        let Some(last) = page.last() else { break };
        after = last.id;
        for movement in &page {
            let (verdict, known, difference) = compare(&engine, &rules, movement, &events).await;
            counts.add(verdict);
            if !known {
                counts.events_unknown += 1;
            }
            if let Some(difference) = difference
                && examples.len() < args.examples
            {
                examples.push(difference);
            }
        }
    }
    let took = started.elapsed();
    if args.json {
        let document = serde_json::json!({
            "candidate": { "name": rules.name, "version": rules.version, "digest": rules.digest },
            "counts": counts,
            "examples": examples,
            "took_ms": took.as_millis() as u64,
        });
        println!("{document:#}");
    } else {
        print_report(&rules, &counts, &examples, took);
    }
    if counts.differences() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

/// Runs one movement through the candidate: the verdict, whether its
/// events were known, and the difference to show when there is one.
async fn compare(
    engine: &RulesEngine,
    rules: &Rules,
    movement: &RecordedMovement,
    events: &RecordedEvents,
) -> (Verdict, bool, Option<Difference>) {
    let quantity = u32::try_from(movement.quantity).unwrap_or(0);
    let operation = match movement.operation.as_str() {
        "add" => Operation::Add(quantity),
        _ => Operation::Remove(quantity),
    };
    let current = movement.current.map(|l| u32::try_from(l).unwrap_or(0));
    let request = Request {
        sku: movement.sku.clone(),
        operation,
    };
    let recorded_events = recorded_events(movement, events);
    let known = recorded_events.is_some();
    let (verdict, candidate) = match engine.decide(rules, &request, current).await {
        Err(e) => (Verdict::Failed, format!("failed: {e}")),
        Ok(outcome) => (
            verdict(&outcome, movement, recorded_events.as_deref()),
            describe_outcome(&outcome),
        ),
    };
    let difference = (verdict != Verdict::Same).then(|| {
        let mut recorded = format!("ok level {}", movement.level_after);
        match &recorded_events {
            Some(events) => {
                for (_, level) in events {
                    recorded.push_str(&format!(" +low-stock:{level}"));
                }
            }
            None => recorded.push_str(" (events unknown)"),
        }
        Difference {
            movement: movement.id,
            time: movement.created_at,
            sku: movement.sku.clone(),
            request: format!(
                "{} with {}",
                crate::rules::describe_operation(operation),
                current.map_or("none".to_string(), |l| l.to_string())
            ),
            recorded,
            recorded_rules: format!("{} {}", movement.rules_name, movement.rules_version),
            candidate,
            verdict,
        }
    });
    (verdict, known, difference)
}

fn verdict(
    outcome: &Outcome,
    movement: &RecordedMovement,
    recorded_events: Option<&[(String, u32)]>,
) -> Verdict {
    let Ok(decision) = outcome else {
        return Verdict::WouldRefuse;
    };
    if i64::from(decision.level) != i64::from(movement.level_after) {
        return Verdict::OtherLevel;
    }
    let Some(recorded) = recorded_events else {
        return Verdict::Same;
    };
    let decided: Vec<(String, u32)> = decision
        .events
        .iter()
        .map(|event| match event {
            Event::LowStock(low) => (low.sku.clone(), low.level),
        })
        .collect();
    if decided == recorded {
        Verdict::Same
    } else {
        Verdict::OtherEvents
    }
}

/// The low-stock events a movement published, `None` when the outbox no
/// longer holds every event of its time.
fn recorded_events(
    movement: &RecordedMovement,
    events: &RecordedEvents,
) -> Option<Vec<(String, u32)>> {
    let complete = events
        .complete_since
        .is_some_and(|since| movement.created_at >= since);
    if !complete {
        return None;
    }
    let payloads = events.by_request.get(&movement.request_id);
    Some(
        payloads
            .into_iter()
            .flatten()
            .filter_map(|payload| {
                let value: serde_json::Value = serde_json::from_str(payload).ok()?;
                let sku = value.get("product-sku")?.as_str()?.to_string();
                let level = u32::try_from(value.get("stock-level")?.as_u64()?).ok()?;
                Some((sku, level))
            })
            .collect(),
    )
}

fn print_report(rules: &Rules, counts: &Counts, examples: &[Difference], took: Duration) {
    println!(
        "replayed {} recorded change(s) through {} {} ({}) in {} ms",
        counts.replayed,
        rules.name,
        rules.version,
        rules.digest.short(),
        took.as_millis()
    );
    for (what, count) in [
        ("same decision", counts.same),
        ("would refuse", counts.would_refuse),
        ("another level", counts.other_level),
        ("other events", counts.other_events),
        ("failed (trap, time or memory)", counts.failed),
    ] {
        println!("  {what:<30} {count}");
    }
    if counts.events_unknown > 0 {
        println!(
            "  ({} change(s) compared on their level only: the outbox no longer holds their events)",
            counts.events_unknown
        );
    }
    if examples.is_empty() {
        return;
    }
    println!(
        "the first {} of {} difference(s):",
        examples.len(),
        counts.differences()
    );
    let header = [
        "ID",
        "TIME",
        "SKU",
        "REQUEST",
        "RECORDED",
        "BY",
        "CANDIDATE",
    ]
    .map(String::from);
    let rows: Vec<[String; 7]> = examples
        .iter()
        .map(|d| {
            [
                d.movement.to_string(),
                d.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                d.sku.clone(),
                d.request.clone(),
                d.recorded.clone(),
                d.recorded_rules.clone(),
                d.candidate.clone(),
            ]
        })
        .collect();
    print_table(&header, &rows);
}
