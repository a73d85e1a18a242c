//! Group commit: the adds and removes in flight at one moment are applied
//! in one transaction, so that one commit (one WAL flush, the ceiling of a
//! transaction per request) serves many requests.
//!
//! Each product belongs to one worker's queue. A worker takes every change
//! waiting in its queue (up to a maximum, optionally waiting a moment for
//! more; a group of one goes the one-request way), then in one transaction: claims
//! the idempotency keys in one statement, locks the rows of the products in
//! one statement, asks the rules about each change in arrival order
//! against the evolving levels, writes all levels, ledger rows, outbox rows
//! and stored replies in one statement, commits, and answers every request.
//!
//! Each request keeps the semantics it has alone: a refusal writes nothing
//! (but its stored reply, under a key) and does not disturb its neighbours;
//! changes to one product apply in arrival order (a change whose row is
//! held by another transaction goes alone and takes the row in the order
//! Postgres queues it); a rules failure leaves
//! nothing behind, its key included. What a group cannot decide alone goes
//! through the one-request path after the group: a key used twice in the
//! group, an expired key. A group that meets a concurrent creation of one
//! of its products, a deadlock or a serialization failure is decided again
//! from scratch; one that fails on a defect is retried request by request,
//! so that one bad request cannot fail the others.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Weak;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{
    MAX_ATTEMPTS, PendingChange, Service, contended, internal, key_reused, rejected, rules_failure,
    store_failure, stored,
};
use crate::store::{
    GroupMovement, GroupWrites, KeyStatus, Movement, RowLock, RulesStamp, StoreError,
};
use crate::wire::{ErrorCode, Reply};

/// How changes are gathered into groups.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitSettings {
    /// Most changes in one transaction.
    pub max_size: usize,
    /// How long a worker waits for more changes once it has one, when
    /// fewer than `max_size` are waiting. Zero: take what is there.
    pub max_wait: Duration,
    /// Groups applied at once, each on its own connection.
    pub workers: usize,
}

/// A change waiting for its group, with the way back to its request.
struct Queued {
    change: PendingChange,
    reply: oneshot::Sender<Reply>,
}

/// The queues in front of the group commit workers: one per worker, and a
/// product always goes to the same one.
///
/// Two workers never ask for the same row, so on a few hot products they
/// do not spend their groups finding each other's rows locked (a group
/// skips a locked row, and the changes to it go alone); and the changes to
/// one product reach the database in the order they arrived, unless a row
/// held by another host sends some of them the one-request way.
pub(super) struct GroupCommit {
    queues: Vec<mpsc::Sender<Queued>>,
}

impl GroupCommit {
    /// Starts the workers. They hold the service weakly, so that they end
    /// with it.
    pub(super) fn start(
        service: Weak<Service>,
        settings: GroupCommitSettings,
        capacity: usize,
    ) -> Self {
        let queues = (0..settings.workers.max(1))
            .map(|_| {
                let (queue, receiver) = mpsc::channel(capacity.max(1));
                tokio::spawn(work(service.clone(), receiver, settings));
                queue
            })
            .collect();
        Self { queues }
    }

    /// Queues a change on its product's worker and waits for its reply.
    pub(super) async fn submit(&self, change: PendingChange) -> Reply {
        let mut hasher = std::hash::DefaultHasher::new();
        change.ask.sku.hash(&mut hasher);
        let queue = &self.queues[(hasher.finish() % self.queues.len() as u64) as usize];
        let (reply, answer) = oneshot::channel();
        if queue.send(Queued { change, reply }).await.is_err() {
            return Reply::error(ErrorCode::Unavailable, "the service is shutting down");
        }
        // A worker that panicked dropped the sender: a defect, answered as one.
        answer.await.unwrap_or_else(|_| internal())
    }
}

/// One worker: gathers a group, applies it, answers it, again.
async fn work(
    service: Weak<Service>,
    mut receiver: mpsc::Receiver<Queued>,
    settings: GroupCommitSettings,
) {
    loop {
        let Some(mut group) = gather(&mut receiver, settings).await else {
            return;
        };
        let Some(service) = service.upgrade() else {
            return;
        };
        // A group of one takes the one-request path, whose statements are
        // lighter than a group's; like a group, it does not wait for a row
        // held elsewhere, which goes alone in a task of its own. Its own
        // task, too, so that a panic fails this change, not the worker.
        if group.len() == 1
            && let Some(Queued { change, reply }) = group.pop()
        {
            service.metrics.group_size.record(1, &[]);
            let lone = tokio::spawn(async move {
                match service
                    .change_alone_locking(&change, RowLock::SkipIfHeld)
                    .await
                {
                    Some(answer) => {
                        let _ = reply.send(answer);
                    }
                    None => {
                        tokio::spawn(async move {
                            let _ = reply.send(service.change_alone(&change).await);
                        });
                    }
                }
            });
            if let Err(e) = lone.await {
                tracing::error!(error = %e, "a change failed abnormally");
            }
            continue;
        }
        let (changes, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|q| (q.change, q.reply)).unzip();
        // Its own task, so that a panic fails this group, not the worker.
        let decided = {
            let service = service.clone();
            let changes = changes.clone();
            tokio::spawn(async move { service.decide_group(&changes).await }).await
        };
        let decided = match decided {
            Ok(decided) => decided,
            Err(e) => {
                tracing::error!(error = %e, "a group commit failed abnormally");
                continue;
            }
        };
        // What the group left aside goes alone, without holding up the
        // next group: each change in a task of its own, started in arrival
        // order. Not one after another: most were left aside because
        // another transaction holds their row, and each waits for it up
        // to the statement timeout, so a queue of them would make the
        // k-th caller wait k timeouts. Side by side, each is answered
        // within one; they take the row in the order Postgres queues them,
        // which is the order they asked for it.
        for ((answer, change), reply) in decided.replies.into_iter().zip(changes).zip(replies) {
            match answer {
                Some(answer) => {
                    let _ = reply.send(answer);
                }
                None => {
                    let service = service.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(service.change_alone(&change).await);
                    });
                }
            }
        }
    }
}

/// Waits for the first change, then takes what else is waiting, up to the
/// group's size, waiting up to `max_wait` for more. `None` once the queue
/// is closed.
async fn gather(
    receiver: &mut mpsc::Receiver<Queued>,
    settings: GroupCommitSettings,
) -> Option<Vec<Queued>> {
    let first = receiver.recv().await?;
    let max = settings.max_size.max(1);
    let mut group = vec![first];
    while group.len() < max {
        match receiver.try_recv() {
            Ok(queued) => group.push(queued),
            Err(_) => break,
        }
    }
    if group.len() < max && !settings.max_wait.is_zero() {
        let deadline = tokio::time::Instant::now() + settings.max_wait;
        while group.len() < max {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(queued)) => group.push(queued),
                _ => break,
            }
        }
    }
    Some(group)
}

/// How one attempt at a group ended.
enum Attempt {
    /// Committed (or nothing to write); members without a reply still
    /// need the one-request path.
    Done,
    /// Nothing was written; decide the whole group again.
    Again,
}

/// A group's replies; `None` for a change left aside.
struct Decided {
    replies: Vec<Option<Reply>>,
}

impl Service {
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
    async fn decide_group(&self, changes: &[PendingChange]) -> Decided {
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
                let span = tracing::info_span!(
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
                    let events = match span.in_scope(|| self.encode_events(decision)) {
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
                        movement: Movement {
                            operation: change.operation,
                            quantity: change.quantity,
                            level_after: decision.level,
                            rules: RulesStamp {
                                name: change.rules.name.clone(),
                                version: change.rules.version.clone(),
                                digest: change.rules.digest.clone(),
                            },
                            request_id: change.request_id,
                            trace_id: change.trace_id.clone(),
                        },
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
