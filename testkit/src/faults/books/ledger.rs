//! Settling the books against the ledger: each request against the rows
//! that carry its trace id, each keyed retry against the first answer, and
//! each product's level against what its callers were told.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Result;
use sqlx::PgPool;

use super::{Books, LedgerRow};
use crate::database::wait_outbox_drained;
use crate::faults::load::{Op, Outcome, Record, Status};

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
}
