//! The books of a scenario: every request settled against the ledger (by
//! the trace id the host writes into it), every level against what the
//! callers were told, every committed low-stock change against the stream.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{Result, bail};
use sqlx::PgPool;

use super::load::{Op, Outcome, Record, Status};
use crate::database::wait_outbox_drained;
use crate::paths::output_dir;
use crate::stream::stream_events;

/// The low-stock threshold of the default rules: a remove that leaves
/// fewer units emits an event.
pub const LOW_STOCK_BELOW: i32 = 10;

/// What a scenario's books show. Every count named "mismatch", "anomaly",
/// "missing", "duplicated" or "unexpected" must be zero.
#[derive(Debug, Clone, Default)]
pub struct Books {
    pub scenario: String,
    pub sent: usize,
    pub acknowledged: usize,
    pub refused_rule: usize,
    pub refused_other: usize,
    pub unavailable: usize,
    pub no_responders: usize,
    /// Requests with at least one attempt whose answer was lost.
    pub answers_lost: usize,
    /// Of those, the ones a retry with the same key settled.
    pub settled_by_retry: usize,
    /// Never answered, applied according to the ledger.
    pub lost_applied: usize,
    /// Never answered, not applied according to the ledger.
    pub lost_not_applied: usize,
    /// Repeated keyed requests answered, all byte-identical to the first.
    pub replays: usize,
    /// Σ |quantity| of the requests never answered: how far the books may
    /// be from the acknowledged changes alone.
    pub lost_bound: i64,
    pub level_mismatches: Vec<String>,
    pub ledger_anomalies: Vec<String>,
    pub events_expected: usize,
    pub events_missing: Vec<String>,
    pub events_duplicated: Vec<String>,
    pub events_unexpected: Vec<String>,
    /// Of the requests sent after recovery: not answered, or answered 503.
    pub after_recovery_failures: usize,
    pub after_recovery: usize,
}

/// One ledger row.
#[derive(Debug, Clone)]
struct LedgerRow {
    sku: String,
    operation: String,
    quantity: i32,
    level_before: i32,
    level_after: i32,
    trace_id: Option<String>,
}

impl Books {
    /// Settles every request against the database and the stream. Waits
    /// (at most a minute) for the outbox to drain first.
    pub async fn check(
        scenario: &str,
        pool: &PgPool,
        nats: &async_nats::Client,
        stream: &str,
        records: &[Record],
    ) -> Result<Self> {
        wait_outbox_drained(pool, Duration::from_secs(60)).await?;
        let mut books = Books {
            scenario: scenario.to_string(),
            ..Books::default()
        };
        let ledger: Vec<LedgerRow> =
            sqlx::query_as::<_, (String, String, i32, i32, i32, Option<String>)>(
                "SELECT product_sku, operation, quantity, level_before, level_after, trace_id \
             FROM stock_movements ORDER BY id",
            )
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(
                |(sku, operation, quantity, level_before, level_after, trace_id)| LedgerRow {
                    sku,
                    operation,
                    quantity,
                    level_before,
                    level_after,
                    trace_id,
                },
            )
            .collect();
        let mut by_trace: HashMap<&str, Vec<&LedgerRow>> = HashMap::new();
        for row in &ledger {
            match row.trace_id.as_deref() {
                Some(trace) => by_trace.entry(trace).or_default().push(row),
                None => books
                    .ledger_anomalies
                    .push(format!("ledger row without a trace id: {row:?}")),
            }
        }

        // Each request against its ledger rows.
        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        let mut ours: HashSet<&str> = HashSet::new();
        for record in records {
            let planned = &record.planned;
            ours.insert(planned.trace_id.as_str());
            expected.entry(planned.sku.clone()).or_insert(0);
            if !record.seed {
                books.sent += 1;
            }
            let rows = by_trace
                .get(planned.trace_id.as_str())
                .cloned()
                .unwrap_or_default();
            let status = record.status();
            if record
                .attempts
                .iter()
                .any(|a| matches!(a, Outcome::Lost { .. }))
            {
                books.answers_lost += 1;
                if status != Status::Lost {
                    books.settled_by_retry += 1;
                }
            }
            if record.after_recovery {
                books.after_recovery += 1;
                if !record.attempts.first().is_some_and(|a| {
                    a.answered() && !matches!(a, Outcome::Refused { code: 503, .. })
                }) {
                    books.after_recovery_failures += 1;
                }
            }
            books.check_replays(record);
            let describe = || {
                format!(
                    "{} {} {} (trace {}, key {:?}): {:?}",
                    planned.op.subject(),
                    planned.sku,
                    planned.quantity,
                    planned.trace_id,
                    planned.key,
                    record.attempts
                )
            };
            if rows.len() > 1 {
                books.ledger_anomalies.push(format!(
                    "applied {} times: {}",
                    rows.len(),
                    describe()
                ));
            }
            if let Some(row) = rows.first()
                && (row.sku != planned.sku
                    || row.operation != planned.op.ledger_name()
                    || i64::from(row.quantity) != i64::from(planned.quantity)
                    || i64::from(row.level_after - row.level_before) != planned.delta())
            {
                books
                    .ledger_anomalies
                    .push(format!("ledger row {row:?} does not match {}", describe()));
            }
            let applied = !rows.is_empty();
            match status {
                Status::Acknowledged => {
                    if !record.seed {
                        books.acknowledged += 1;
                    }
                    if planned.op != Op::Get && !applied {
                        books
                            .ledger_anomalies
                            .push(format!("acknowledged, not in the ledger: {}", describe()));
                    }
                    *expected.entry(planned.sku.clone()).or_insert(0) += planned.delta();
                }
                Status::Refused(code) => {
                    if code == 409 {
                        books.refused_rule += 1;
                    } else {
                        books.refused_other += 1;
                    }
                    if applied {
                        books
                            .ledger_anomalies
                            .push(format!("refused with {code}, yet applied: {}", describe()));
                    }
                }
                Status::Unavailable => {
                    books.unavailable += 1;
                    if applied {
                        books
                            .ledger_anomalies
                            .push(format!("answered 503, yet applied: {}", describe()));
                    }
                }
                Status::NoResponders => {
                    books.no_responders += 1;
                    if applied {
                        books
                            .ledger_anomalies
                            .push(format!("never delivered, yet applied: {}", describe()));
                    }
                }
                Status::Lost => {
                    books.lost_bound += i64::from(planned.quantity);
                    if applied {
                        books.lost_applied += 1;
                        *expected.entry(planned.sku.clone()).or_insert(0) += planned.delta();
                    } else {
                        books.lost_not_applied += 1;
                    }
                }
            }
        }
        for row in &ledger {
            if let Some(trace) = row.trace_id.as_deref()
                && !ours.contains(trace)
            {
                books
                    .ledger_anomalies
                    .push(format!("a change nobody asked for: {row:?}"));
            }
        }

        // Each product: level, ledger and what the callers were told.
        for (sku, want) in &expected {
            let level: Option<i32> =
                sqlx::query_scalar("SELECT stock_level FROM inventory WHERE product_sku = $1")
                    .bind(sku)
                    .fetch_optional(pool)
                    .await?;
            let level = i64::from(level.unwrap_or(0));
            let ledger_sum: i64 = ledger
                .iter()
                .filter(|r| &r.sku == sku)
                .map(|r| i64::from(r.level_after - r.level_before))
                .sum();
            let lowest = ledger
                .iter()
                .filter(|r| &r.sku == sku)
                .map(|r| r.level_after)
                .min()
                .unwrap_or(0);
            if level != *want || ledger_sum != level || level < 0 || lowest < 0 {
                books.level_mismatches.push(format!(
                    "{sku}: level {level}, expected {want}, ledger sums to {ledger_sum}, lowest {lowest}"
                ));
            }
        }

        books.check_events(pool, nats, stream, &ledger).await?;
        Ok(books)
    }

    /// Every answered repeat of a keyed request must be the first answer,
    /// byte for byte.
    fn check_replays(&mut self, record: &Record) {
        let mut answers = record.attempts.iter().filter(|a| a.answered()).filter(|a| {
            // A 503 is not stored under the key: the retry decides anew.
            !matches!(a, Outcome::Refused { code: 503, .. })
        });
        let Some(first) = answers.next() else { return };
        for other in answers {
            if other == first {
                self.replays += 1;
            } else {
                self.ledger_anomalies.push(format!(
                    "a retry with key {:?} was answered {other:?}, first {first:?}",
                    record.planned.key
                ));
            }
        }
    }

    /// Every remove that left fewer than [`LOW_STOCK_BELOW`] units has one
    /// outbox row and one message in the stream with the same id and the
    /// same content; the stream holds nothing else.
    async fn check_events(
        &mut self,
        pool: &PgPool,
        nats: &async_nats::Client,
        stream: &str,
        ledger: &[LedgerRow],
    ) -> Result<()> {
        let committed: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(
            "SELECT m.request_id::text, m.product_sku, m.level_after, o.msg_id::text \
             FROM stock_movements m LEFT JOIN outbox o ON o.request_id = m.request_id \
             WHERE m.operation = 'remove' AND m.level_after < $1",
        )
        .bind(LOW_STOCK_BELOW)
        .fetch_all(pool)
        .await?;
        let low_changes = ledger
            .iter()
            .filter(|r| r.operation == "remove" && r.level_after < LOW_STOCK_BELOW)
            .count();
        self.events_expected = low_changes;
        let mut expected: HashMap<String, (String, i32)> = HashMap::new();
        for (request, sku, level, msg_id) in committed {
            match msg_id {
                None => self.events_missing.push(format!(
                    "no outbox row for request {request} ({sku} → {level})"
                )),
                Some(id) => {
                    if expected.insert(id.clone(), (sku, level)).is_some() {
                        self.events_duplicated.push(format!("outbox id {id} twice"));
                    }
                }
            }
        }
        let strays: Vec<String> = sqlx::query_scalar(
            "SELECT o.msg_id::text FROM outbox o WHERE NOT EXISTS ( \
               SELECT 1 FROM stock_movements m WHERE m.request_id = o.request_id \
               AND m.operation = 'remove' AND m.level_after < $1)",
        )
        .bind(LOW_STOCK_BELOW)
        .fetch_all(pool)
        .await?;
        for id in strays {
            self.events_unexpected
                .push(format!("outbox row {id} without a low-stock change"));
        }

        let events = stream_events(nats, stream).await?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for event in &events {
            let Some(id) = event.msg_id.clone() else {
                self.events_unexpected
                    .push(format!("message {} without Nats-Msg-Id", event.sequence));
                continue;
            };
            match expected.get(&id) {
                None => self
                    .events_unexpected
                    .push(format!("message {} ({id}) not committed", event.sequence)),
                Some((sku, level)) => {
                    let content = (
                        event.payload["product-sku"].as_str(),
                        event.payload["stock-level"].as_i64(),
                    );
                    if content != (Some(sku.as_str()), Some(i64::from(*level))) {
                        self.events_unexpected.push(format!(
                            "message {} says {} where the ledger says {sku} → {level}",
                            event.sequence, event.payload
                        ));
                    }
                }
            }
            *seen.entry(id).or_insert(0) += 1;
        }
        for (id, count) in &seen {
            if *count > 1 {
                self.events_duplicated
                    .push(format!("{id} in the stream {count} times"));
            }
        }
        for id in expected.keys() {
            if !seen.contains_key(id) {
                self.events_missing.push(format!("{id} not in the stream"));
            }
        }
        Ok(())
    }

    /// The scenario's table, for `--no-capture` runs and the test's folder.
    pub fn table(&self) -> String {
        let rows: Vec<(&str, String)> = vec![
            ("requests sent", self.sent.to_string()),
            ("  acknowledged", self.acknowledged.to_string()),
            (
                "  refused by the rules (409)",
                self.refused_rule.to_string(),
            ),
            (
                "  refused otherwise (4xx/500)",
                self.refused_other.to_string(),
            ),
            (
                "  refused as unavailable (503)",
                self.unavailable.to_string(),
            ),
            (
                "  no responders (never delivered)",
                self.no_responders.to_string(),
            ),
            ("answers lost in the fault", self.answers_lost.to_string()),
            (
                "  settled by a retry with the key",
                self.settled_by_retry.to_string(),
            ),
            (
                "  never answered: applied / not",
                format!("{} / {}", self.lost_applied, self.lost_not_applied),
            ),
            (
                "keyed retries replayed identically",
                self.replays.to_string(),
            ),
            (
                "sent after recovery: failed / all",
                format!("{} / {}", self.after_recovery_failures, self.after_recovery),
            ),
            ("level mismatches", self.level_mismatches.len().to_string()),
            ("ledger anomalies", self.ledger_anomalies.len().to_string()),
            (
                "low-stock changes committed",
                self.events_expected.to_string(),
            ),
            ("events missing", self.events_missing.len().to_string()),
            (
                "events duplicated",
                self.events_duplicated.len().to_string(),
            ),
            (
                "events unexpected",
                self.events_unexpected.len().to_string(),
            ),
        ];
        let mut text = format!("\n| {} | |\n| --- | ---: |\n", self.scenario);
        for (name, value) in rows {
            text.push_str(&format!("| {name} | {value} |\n"));
        }
        text
    }

    /// Prints the table, keeps it and every request's history in the
    /// scenario's folder, and fails with the details of every broken
    /// promise.
    pub fn assert_clean(&self, name: &str, records: &[Record]) -> Result<()> {
        let table = self.table();
        println!("{table}");
        let _ = std::fs::write(output_dir(name).join("books.md"), &table);
        let history: String = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{i} {} {} {} key={:?} trace={} seed={} after_recovery={} {:?}\n",
                    r.planned.op.subject(),
                    r.planned.sku,
                    r.planned.quantity,
                    r.planned.key,
                    r.planned.trace_id,
                    r.seed,
                    r.after_recovery,
                    r.attempts
                )
            })
            .collect();
        let _ = std::fs::write(output_dir(name).join("requests.txt"), history);
        let mut broken = Vec::new();
        for (what, list) in [
            ("level mismatches", &self.level_mismatches),
            ("ledger anomalies", &self.ledger_anomalies),
            ("events missing", &self.events_missing),
            ("events duplicated", &self.events_duplicated),
            ("events unexpected", &self.events_unexpected),
        ] {
            if !list.is_empty() {
                let shown: Vec<&String> = list.iter().take(10).collect();
                broken.push(format!("{what} ({}): {shown:#?}", list.len()));
            }
        }
        if !broken.is_empty() {
            bail!(
                "{}: the books do not hold:\n{}",
                self.scenario,
                broken.join("\n")
            );
        }
        let accounted = self.acknowledged
            + self.refused_rule
            + self.refused_other
            + self.unavailable
            + self.no_responders
            + self.lost_applied
            + self.lost_not_applied;
        anyhow::ensure!(
            self.sent == accounted,
            "{} requests sent, {accounted} accounted for",
            self.sent
        );
        Ok(())
    }
}
