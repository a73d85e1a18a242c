//! The books reported: the scenario's table, the request history kept in
//! its folder, and the failure that lists every broken promise.

use anyhow::{Result, bail};

use super::Books;
use crate::faults::load::Record;
use crate::paths::output_dir;

impl Books {
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
