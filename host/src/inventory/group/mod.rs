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

mod transaction;

use std::hash::{Hash, Hasher};
use std::sync::Weak;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::reply::internal;
use super::{Inventory, PendingChange};
use crate::contract::wire::{ErrorCode, Reply};
use crate::store::RowLock;

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
    /// Starts the workers. They hold the inventory weakly, so that they end
    /// with it.
    pub(super) fn start(
        inventory: Weak<Inventory>,
        settings: GroupCommitSettings,
        capacity: usize,
    ) -> Self {
        let queues = (0..settings.workers.max(1))
            .map(|_| {
                let (queue, receiver) = mpsc::channel(capacity.max(1));
                tokio::spawn(work(inventory.clone(), receiver, settings));
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
    inventory: Weak<Inventory>,
    mut receiver: mpsc::Receiver<Queued>,
    settings: GroupCommitSettings,
) {
    loop {
        let Some(mut group) = gather(&mut receiver, settings.max_size, settings.max_wait).await
        else {
            return;
        };
        let Some(inventory) = inventory.upgrade() else {
            return;
        };
        // A group of one takes the one-request path, whose statements are
        // lighter than a group's; like a group, it does not wait for a row
        // held elsewhere, which goes alone in a task of its own. Its own
        // task, too, so that a panic fails this change, not the worker.
        if group.len() == 1
            && let Some(Queued { change, reply }) = group.pop()
        {
            inventory.metrics.group_size.record(1, &[]);
            let lone = tokio::spawn(async move {
                match inventory
                    .change_alone_locking(&change, RowLock::SkipIfHeld)
                    .await
                {
                    Some(answer) => {
                        let _ = reply.send(answer);
                    }
                    None => {
                        tokio::spawn(async move {
                            let _ = reply.send(inventory.change_alone(&change).await);
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
            let inventory = inventory.clone();
            let changes = changes.clone();
            tokio::spawn(async move { inventory.decide_group(&changes).await }).await
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
                    let inventory = inventory.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(inventory.change_alone(&change).await);
                    });
                }
            }
        }
    }
}

/// Waits for the first item, then takes what else is waiting, up to
/// `max`, waiting up to `max_wait` for more (zero: take what is there).
/// `None` once the queue is closed. The gets' readers gather the same way.
pub(super) async fn gather<T>(
    receiver: &mut mpsc::Receiver<T>,
    max: usize,
    max_wait: Duration,
) -> Option<Vec<T>> {
    let first = receiver.recv().await?;
    let max = max.max(1);
    let mut group = vec![first];
    while group.len() < max {
        match receiver.try_recv() {
            Ok(item) => group.push(item),
            Err(_) => break,
        }
    }
    if group.len() < max && !max_wait.is_zero() {
        let deadline = tokio::time::Instant::now() + max_wait;
        while group.len() < max {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(item)) => group.push(item),
                _ => break,
            }
        }
    }
    Some(group)
}
