//! One group's transaction: keys claimed, rows locked (skipping those held
//! elsewhere), each change decided in arrival order against the evolving
//! levels, everything written in one statement, one COMMIT — and, when a
//! concurrent creation, a deadlock or a serialization failure gets in the
//! way, the whole group decided again.

use std::collections::{HashMap, HashSet};

use opentelemetry::trace::TraceContextExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::super::change::stored;
use super::super::reply::{contended, key_reused, rejected, rules_failure, store_failure};
use super::super::{Inventory, MAX_ATTEMPTS, PendingChange};
use crate::contract::wire::Reply;
use crate::store::{GroupMovement, GroupWrites, KeyStatus, StoreError};

/// How one attempt at a group ended.
enum Attempt {
    /// Committed (or nothing to write); members without a reply still
    /// need the one-request path.
    Done,
    /// Nothing was written; decide the whole group again.
    Again,
}

/// A group's replies; `None` for a change left aside.
pub(super) struct Decided {
    pub(super) replies: Vec<Option<Reply>>,
}

impl Inventory {
    /// Applies changes as one group and returns their replies, in order;
    /// what the group leaves aside is applied alone after it, in order.
    /// Public so that tests can compare a group with the same changes
    /// applied one by one.
    pub async fn apply_group(&self, changes: &[PendingChange]) -> Vec<Reply> {
        let decided = self.decide_group(changes).await;
        let mut replies = Vec::with_capacity(changes.len());
        for (change, reply) in changes.iter().zip(decided.replies) {
            replies.push(match reply {
                Some(reply) => reply,
                None => self.change_alone(change).await,
            });
        }
        replies
    }

    /// Applies what it can of `changes` as one group. A `None` reply is a
    /// change left aside, for the one-request path: its key is used twice
    /// in the group, or has expired, or its product's row is held by
    /// another transaction (the group does not wait for one busy row), or
    /// the group failed on a defect.
    pub(super) async fn decide_group(&self, changes: &[PendingChange]) -> Decided {
        let mut replies: Vec<Option<Reply>> = vec![None; changes.len()];
        // A key twice in one group: the first goes in the group, the others
        // after it, alone, where they find its stored reply.
        let mut seen = HashSet::new();
        let members: Vec<usize> = (0..changes.len())
            .filter(|&i| changes[i].key.as_ref().is_none_or(|k| seen.insert(&k.key)))
            .collect();
        self.metrics.group_size.record(members.len() as u64, &[]);
        for attempt in 1..=MAX_ATTEMPTS {
            for &i in &members {
                replies[i] = None;
            }
            match self
                .attempt_group(changes, &members, &mut replies, attempt)
                .await
            {
                Ok(Attempt::Done) => return Decided { replies },
                Ok(Attempt::Again) | Err(StoreError::Contended) => continue,
                Err(e @ (StoreError::Unavailable(_) | StoreError::CommitUnknown(_))) => {
                    let reply = store_failure(e);
                    for &i in &members {
                        replies[i] = Some(reply.clone());
                    }
                    return Decided { replies };
                }
                Err(e) => {
                    // A defect somewhere in the group: find whose, alone.
                    tracing::error!(error = %e, size = members.len(), "group commit failed; applying its changes one by one");
                    for &i in &members {
                        replies[i] = None;
                    }
                    return Decided { replies };
                }
            }
        }
        for &i in &members {
            replies[i] = Some(contended());
        }
        Decided { replies }
    }

    /// One transaction for the group's `members` (indices into `changes`).
    async fn attempt_group(
        &self,
        changes: &[PendingChange],
        members: &[usize],
        replies: &mut [Option<Reply>],
        attempt: usize,
    ) -> Result<Attempt, StoreError> {
        // Every request's trace shows the transaction it was part of; the
        // first request's shows its statements, the others link to it.
        let spans: HashMap<usize, tracing::Span> = members
            .iter()
            .map(|&i| {
                let span = tracing::debug_span!(
                    parent: &changes[i].span,
                    "db.transaction",
                    db.system.name = "postgresql",
                    beaker.attempt = attempt,
                    beaker.group.size = members.len(),
                );
                (i, span)
            })
            .collect();
        let Some(leader) = members.first().and_then(|i| spans.get(i)).cloned() else {
            return Ok(Attempt::Done);
        };
        let leader_context = leader.context().span().span_context().clone();
        for (&i, span) in &spans {
            if Some(&i) != members.first() {
                span.add_link(leader_context.clone());
            }
        }

        let mut group = self.store.begin_group().instrument(leader.clone()).await?;
        let keyed: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| changes[i].key.is_some())
            .collect();
        let keys: Vec<_> = keyed
            .iter()
            .filter_map(|&i| changes[i].key.as_ref())
            .collect();
        let statuses: HashMap<usize, KeyStatus> = keyed
            .iter()
            .copied()
            .zip(group.claim_keys(&keys).instrument(leader.clone()).await?)
            .collect();
        let mut active = Vec::new();
        for &i in members {
            match statuses.get(&i) {
                None | Some(KeyStatus::Owned) => active.push(i),
                Some(KeyStatus::Replay(stored)) => {
                    replies[i] = Some(Reply::Replay {
                        body: stored.body.clone(),
                        error: stored.error.clone(),
                    });
                }
                Some(KeyStatus::Reused) => {
                    let key = changes[i].key.as_ref().map_or("", |k| k.key.as_str());
                    replies[i] = Some(key_reused(key));
                }
                // Left without a reply: it goes alone.
                Some(KeyStatus::Aside) => {}
            }
        }

        let mut skus: Vec<&str> = active
            .iter()
            .map(|&i| changes[i].ask.sku.as_str())
            .collect();
        skus.sort_unstable();
        skus.dedup();
        let locked = group.lock_levels(&skus).instrument(leader.clone()).await?;
        let existing = &locked.levels;
        let mut levels: HashMap<&str, Option<u32>> = skus
            .iter()
            .map(|&sku| (sku, existing.get(sku).copied()))
            .collect();

        let mut writes = GroupWrites::default();
        let mut decided = Vec::new();
        for &i in &active {
            let change = &changes[i];
            if locked.busy.contains(&change.ask.sku) {
                // Its row is held elsewhere: it goes alone, after the
                // group, and gives back the key this transaction claimed.
                writes
                    .released
                    .extend(change.key.as_ref().map(|k| k.key.clone()));
                continue;
            }
            let span = spans.get(&i).cloned().unwrap_or_else(tracing::Span::none);
            let sku = change.ask.sku.as_str();
            let current = levels.get(sku).copied().flatten();
            let key = change.key.as_ref().map(|k| k.key.clone());
            let outcome = match self
                .decide(&change.rules, &change.ask, current)
                .instrument(span.clone())
                .await
            {
                Ok(outcome) => outcome,
                Err(e) => {
                    replies[i] = Some(rules_failure(&change.rules, e));
                    writes.released.extend(key);
                    continue;
                }
            };
            match &outcome {
                Ok(decision) => {
                    let events = match self.encode_events(decision, &change.trace) {
                        Ok(events) => events,
                        Err(reply) => {
                            replies[i] = Some(reply);
                            writes.released.extend(key);
                            continue;
                        }
                    };
                    let reply = Reply::Ok {
                        sku: sku.to_string(),
                        level: decision.level,
                    };
                    writes.movements.push(GroupMovement {
                        sku: sku.to_string(),
                        level_before: current.unwrap_or(0),
                        movement: change.movement(decision.level),
                    });
                    writes
                        .events
                        .extend(events.into_iter().map(|e| (e, change.request_id)));
                    if let Some(key) = key {
                        writes.replies.push((key, stored(&reply)));
                    }
                    levels.insert(sku, Some(decision.level));
                    replies[i] = Some(reply);
                }
                Err(rejection) => {
                    let reply = rejected(rejection.clone());
                    if let Some(key) = key {
                        writes.replies.push((key, stored(&reply)));
                    }
                    replies[i] = Some(reply);
                }
            }
            decided.push((i, current, outcome));
        }

        let moved: HashSet<&str> = writes.movements.iter().map(|m| m.sku.as_str()).collect();
        for (sku, level) in levels {
            match level {
                Some(after) if moved.contains(sku) => {
                    let target = match existing.contains_key(sku) {
                        true => &mut writes.updated,
                        false => &mut writes.created,
                    };
                    target.push((sku.to_string(), after));
                }
                _ => {}
            }
        }
        let nothing_to_write =
            writes.movements.is_empty() && writes.replies.is_empty() && writes.released.is_empty();
        if nothing_to_write {
            // Gets, refusals without keys, failures: no commit needed.
            drop(group);
        } else {
            match group.commit(&writes).instrument(leader.clone()).await {
                Ok(()) => {}
                Err(StoreError::Contended) => return Ok(Attempt::Again),
                Err(e) => return Err(e),
            }
        }
        if !writes.events.is_empty() {
            self.relay_wake.notify_one();
        }
        for (i, current, outcome) in decided {
            self.rules
                .compare_in_shadow(changes[i].ask.clone(), current, outcome);
        }
        Ok(Attempt::Done)
    }
}
