//! The events side of the books: every committed low-stock change has one
//! outbox row and one message in the stream, and the stream holds nothing
//! else.

use std::collections::HashMap;

use anyhow::Result;
use sqlx::PgPool;

use super::{Books, LOW_STOCK_BELOW, LedgerRow};
use crate::stream::stream_events;

impl Books {
    /// Every remove that left fewer than [`LOW_STOCK_BELOW`] units has one
    /// outbox row and one message in the stream with the same id and the
    /// same content; the stream holds nothing else.
    pub(super) async fn check_events(
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
}
