//! A group commit's transaction: many requests' keys claimed in one
//! statement, their rows locked in one (skipping rows held elsewhere),
//! and every write in one statement before a single COMMIT.

use sqlx::{Postgres, Row, Transaction};
use tracing::Instrument;
use uuid::Uuid;

use super::change::{Locked, Movement, lock_unless_held};
use super::idempotency::{IdempotencyKey, KeyStatus, StoredReply};
use super::outbox::{OutboxEvent, headers_json};
use super::{Store, StoreError, commit, statement, to_db};

/// One applied change of a group, for the ledger.
#[derive(Debug, Clone)]
pub struct GroupMovement {
    pub sku: String,
    pub level_before: u32,
    pub movement: Movement,
}

/// Everything a group commit writes, each kind in one statement.
#[derive(Debug, Clone, Default)]
pub struct GroupWrites {
    /// Final levels of products that existed when the group locked them.
    pub updated: Vec<(String, u32)>,
    /// Final levels of products the group creates.
    pub created: Vec<(String, u32)>,
    /// Ledger rows, in the order the changes were decided.
    pub movements: Vec<GroupMovement>,
    /// Outbox rows, with the id of the request that caused each.
    pub events: Vec<(OutboxEvent, Uuid)>,
    /// Replies stored under their idempotency keys.
    pub replies: Vec<(String, StoredReply)>,
    /// Keys claimed for requests that failed: removed, so a retry may
    /// succeed (as when a one-request transaction rolls back).
    pub released: Vec<String>,
}

/// A group commit in progress: one transaction for many requests. Dropping
/// it without committing rolls everything back.
#[derive(Debug)]
pub struct Group {
    tx: Transaction<'static, Postgres>,
}

impl Store {
    /// Opens the transaction of a group commit.
    pub async fn begin_group(&self) -> Result<Group, StoreError> {
        let tx = self
            .pool
            .begin()
            .instrument(statement("BEGIN", "inventory"))
            .await?;
        Ok(Group { tx })
    }
}

impl Group {
    /// Claims every key in one statement (in key order, so that two groups
    /// never wait for each other in a cycle) and reports, per key in the
    /// order given, what was found. A key another transaction is claiming
    /// makes this wait until that one ends, as in the one-request path.
    pub async fn claim_keys(
        &mut self,
        keys: &[&IdempotencyKey],
    ) -> Result<Vec<KeyStatus>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].key.cmp(&keys[b].key));
        let names: Vec<&str> = order.iter().map(|&i| keys[i].key.as_str()).collect();
        let endpoints: Vec<&str> = order.iter().map(|&i| keys[i].endpoint).collect();
        let hashes: Vec<&str> = order
            .iter()
            .map(|&i| keys[i].request_hash.as_str())
            .collect();
        let ttls: Vec<i64> = order
            .iter()
            .map(|&i| i64::try_from(keys[i].ttl.as_millis()).unwrap_or(i64::MAX))
            .collect();
        let claimed: Vec<String> = sqlx::query_scalar(
            "INSERT INTO idempotency (key, endpoint, request_hash, expires_at) \
             SELECT k, e, h, now() + t * interval '1 millisecond' \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) WITH ORDINALITY \
               AS c(k, e, h, t, n) ORDER BY n \
             ON CONFLICT (key) DO NOTHING RETURNING key",
        )
        .bind(&names)
        .bind(&endpoints)
        .bind(&hashes)
        .bind(&ttls)
        .fetch_all(&mut *self.tx)
        .instrument(statement("INSERT", "idempotency"))
        .await?;
        let others: Vec<&str> = names
            .iter()
            .copied()
            .filter(|k| !claimed.iter().any(|c| c == k))
            .collect();
        let mut found = std::collections::HashMap::new();
        if !others.is_empty() {
            let rows = sqlx::query(
                "SELECT key, request_hash, reply_body, error_code, error_message, \
                 expires_at < now() FROM idempotency WHERE key = ANY($1)",
            )
            .bind(&others)
            .fetch_all(&mut *self.tx)
            .instrument(statement("SELECT", "idempotency"))
            .await?;
            for row in rows {
                let key: String = row.get(0);
                found.insert(key, row);
            }
        }
        Ok(keys
            .iter()
            .map(|key| {
                if claimed.contains(&key.key) {
                    return KeyStatus::Owned;
                }
                let Some(row) = found.get(&key.key) else {
                    return KeyStatus::Aside;
                };
                let expired: bool = row.get(5);
                let body: Option<String> = row.get(2);
                if expired || body.is_none() {
                    return KeyStatus::Aside;
                }
                let hash: String = row.get(1);
                if hash != key.request_hash {
                    return KeyStatus::Reused;
                }
                let code: Option<i32> = row.get(3);
                let message: Option<String> = row.get(4);
                let error = match (code, message) {
                    (Some(code), Some(message)) => {
                        Some((u16::try_from(code).unwrap_or(500), message))
                    }
                    _ => None,
                };
                KeyStatus::Replay(StoredReply {
                    body: body.unwrap_or_default(),
                    error,
                })
            })
            .collect())
    }

    /// Locks the group's products, skipping rows held elsewhere (see
    /// [`lock_unless_held`]): a group must not wait for one busy row, or
    /// every other product in it would wait too.
    pub async fn lock_levels(&mut self, skus: &[&str]) -> Result<Locked, StoreError> {
        lock_unless_held(&mut self.tx, skus).await
    }

    /// Writes the levels, the ledger, the outbox and the stored replies,
    /// one statement for all, and commits. New products are inserted in
    /// product order; if another transaction created one of them first,
    /// nothing is written and the group must be decided again.
    pub async fn commit(mut self, writes: &GroupWrites) -> Result<(), StoreError> {
        let mut created = writes.created.clone();
        created.sort();
        let (updated_skus, updated_levels) = split_levels(&writes.updated)?;
        let (created_skus, created_levels) = split_levels(&created)?;
        let m = &writes.movements;
        let m_skus: Vec<&str> = m.iter().map(|g| g.sku.as_str()).collect();
        let m_ops: Vec<&str> = m.iter().map(|g| g.movement.operation).collect();
        let m_quantities = m
            .iter()
            .map(|g| to_db(g.movement.quantity))
            .collect::<Result<Vec<_>, _>>()?;
        let m_before = m
            .iter()
            .map(|g| to_db(g.level_before))
            .collect::<Result<Vec<_>, _>>()?;
        let m_after = m
            .iter()
            .map(|g| to_db(g.movement.level_after))
            .collect::<Result<Vec<_>, _>>()?;
        let m_rules_names: Vec<&str> = m.iter().map(|g| g.movement.rules.name.as_str()).collect();
        let m_rules_versions: Vec<&str> = m
            .iter()
            .map(|g| g.movement.rules.version.as_str())
            .collect();
        let m_rules_digests: Vec<&str> =
            m.iter().map(|g| g.movement.rules.digest.as_str()).collect();
        let m_requests: Vec<Uuid> = m.iter().map(|g| g.movement.request_id).collect();
        let m_traces: Vec<Option<&str>> =
            m.iter().map(|g| g.movement.trace_id.as_deref()).collect();
        let e = &writes.events;
        let e_ids: Vec<Uuid> = e.iter().map(|(ev, _)| ev.msg_id).collect();
        let e_subjects: Vec<&str> = e.iter().map(|(ev, _)| ev.subject.as_str()).collect();
        let e_payloads: Vec<&str> = e.iter().map(|(ev, _)| ev.payload.as_str()).collect();
        let e_headers: Vec<String> = e.iter().map(|(ev, _)| headers_json(&ev.headers)).collect();
        let e_requests: Vec<Uuid> = e.iter().map(|(_, r)| *r).collect();
        let r = &writes.replies;
        let r_keys: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        let r_bodies: Vec<&str> = r.iter().map(|(_, s)| s.body.as_str()).collect();
        let r_codes: Vec<Option<i32>> = r
            .iter()
            .map(|(_, s)| s.error.as_ref().map(|(c, _)| i32::from(*c)))
            .collect();
        let r_messages: Vec<Option<&str>> = r
            .iter()
            .map(|(_, s)| s.error.as_ref().map(|(_, m)| m.as_str()))
            .collect();
        let row = sqlx::query(
            "WITH updated AS (\
               UPDATE inventory AS i SET stock_level = v.level, updated_at = now() \
               FROM UNNEST($1::text[], $2::int4[]) AS v(sku, level) \
               WHERE i.product_sku = v.sku RETURNING 1), \
             created AS (\
               INSERT INTO inventory (product_sku, stock_level) \
               SELECT sku, level FROM UNNEST($3::text[], $4::int4[]) WITH ORDINALITY \
                 AS v(sku, level, n) ORDER BY n \
               ON CONFLICT (product_sku) DO NOTHING RETURNING 1), \
             ledger AS (\
               INSERT INTO stock_movements (product_sku, operation, quantity, level_before, \
                 level_after, rules_name, rules_version, rules_digest, request_id, trace_id) \
               SELECT sku, op, qty, before, after, rn, rv, rd, req, tr \
               FROM UNNEST($5::text[], $6::text[], $7::int4[], $8::int4[], $9::int4[], \
                 $10::text[], $11::text[], $12::text[], $13::uuid[], $14::text[]) WITH ORDINALITY \
                 AS v(sku, op, qty, before, after, rn, rv, rd, req, tr, n) ORDER BY n), \
             events AS (\
               INSERT INTO outbox (msg_id, subject, payload, headers, request_id) \
               SELECT id, subject, payload, headers::jsonb, req \
               FROM UNNEST($15::uuid[], $16::text[], $17::text[], $18::text[], $19::uuid[]) \
                 WITH ORDINALITY AS v(id, subject, payload, headers, req, n) ORDER BY n), \
             replied AS (\
               UPDATE idempotency AS k \
               SET reply_body = v.body, error_code = v.code, error_message = v.message \
               FROM UNNEST($20::text[], $21::text[], $22::int4[], $23::text[]) \
                 AS v(key, body, code, message) \
               WHERE k.key = v.key), \
             released AS (DELETE FROM idempotency WHERE key = ANY($24::text[])) \
             SELECT (SELECT count(*) FROM updated), (SELECT count(*) FROM created)",
        )
        .bind(&updated_skus)
        .bind(&updated_levels)
        .bind(&created_skus)
        .bind(&created_levels)
        .bind(&m_skus)
        .bind(&m_ops)
        .bind(&m_quantities)
        .bind(&m_before)
        .bind(&m_after)
        .bind(&m_rules_names)
        .bind(&m_rules_versions)
        .bind(&m_rules_digests)
        .bind(&m_requests)
        .bind(&m_traces)
        .bind(&e_ids)
        .bind(&e_subjects)
        .bind(&e_payloads)
        .bind(&e_headers)
        .bind(&e_requests)
        .bind(&r_keys)
        .bind(&r_bodies)
        .bind(&r_codes)
        .bind(&r_messages)
        .bind(&writes.released)
        .fetch_one(&mut *self.tx)
        .instrument(statement("UPDATE", "inventory"))
        .await?;
        let (updated, inserted): (i64, i64) = (row.get(0), row.get(1));
        if usize::try_from(updated).ok() != Some(updated_skus.len()) {
            // A product this group locked vanished: a defect, not a race.
            return Err(StoreError::Failed(format!(
                "updated {updated} of {} products",
                updated_skus.len()
            )));
        }
        if usize::try_from(inserted).ok() != Some(created_skus.len()) {
            return Err(StoreError::Contended);
        }
        commit(self.tx).await
    }
}

fn split_levels(levels: &[(String, u32)]) -> Result<(Vec<&str>, Vec<i32>), StoreError> {
    let skus = levels.iter().map(|(s, _)| s.as_str()).collect();
    let values = levels
        .iter()
        .map(|(_, l)| to_db(*l))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((skus, values))
}
