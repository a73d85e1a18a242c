//! Batched reads: the gets in flight at one moment read their products'
//! levels in one statement, as group commit applies the changes in flight
//! in one transaction.
//!
//! A get costs the host a database round trip: a connection taken from
//! the pool, a statement written and read back, the tasks woken on the
//! way. Under load most of that is the same for one product or a hundred,
//! so a few readers each take every get waiting in the queue and read
//! their levels with `WHERE product_sku = ANY($1)`. A reader that finds one
//! get reads it alone, with the single-row statement. Each get still asks
//! the rules itself, in an instance of its own, after its level is read.
//!
//! What a get sees does not change: its read starts after it was queued,
//! so it sees every change answered before it was sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::group::gather;
use crate::store::{Store, StoreError};

/// Readers at once, each with at most one connection.
const READERS: usize = 4;

/// Most products in one statement.
const MAX_BATCH: usize = 256;

/// A get waiting for its level.
struct Read {
    sku: String,
    level: oneshot::Sender<Result<Option<u32>, StoreError>>,
}

/// The queue in front of the readers.
pub(super) struct Reads {
    queue: mpsc::Sender<Read>,
}

impl Reads {
    /// Starts the readers; they end when this is dropped.
    pub(super) fn start(store: Store, capacity: usize) -> Self {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..READERS {
            tokio::spawn(read(store.clone(), receiver.clone()));
        }
        Self { queue }
    }

    /// A product's level (`None`: never stocked), read with the gets
    /// waiting beside it.
    pub(super) async fn level(&self, sku: &str) -> Result<Option<u32>, StoreError> {
        let (level, answer) = oneshot::channel();
        let read = Read {
            sku: sku.to_string(),
            level,
        };
        if self.queue.send(read).await.is_err() {
            return Err(StoreError::Unavailable(
                "the service is shutting down".into(),
            ));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Failed("a reader ended abnormally".into())))
    }
}

/// One reader: takes what is waiting, reads it, answers it, again. The
/// queue is shared; a reader holds it only while taking a batch, so that
/// the next batch gathers while this one is read.
async fn read(store: Store, queue: Arc<Mutex<mpsc::Receiver<Read>>>) {
    loop {
        let gathered = gather(&mut *queue.lock().await, MAX_BATCH, Duration::ZERO).await;
        let Some(mut batch) = gathered else {
            return;
        };
        if batch.len() == 1
            && let Some(Read { sku, level }) = batch.pop()
        {
            let _ = level.send(store.level(&sku).await);
            continue;
        }
        let skus: Vec<&str> = batch.iter().map(|read| read.sku.as_str()).collect();
        match store.levels(&skus).await {
            Ok(levels) => answer(batch, &levels),
            Err(e) => {
                for read in batch {
                    let _ = read.level.send(Err(told_to_each(&e)));
                }
            }
        }
    }
}

/// A batch's failure, for each of its gets: unavailable stays unavailable
/// (a 503 the caller may retry), anything else is a failure.
fn told_to_each(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
        other => StoreError::Failed(other.to_string()),
    }
}

fn answer(batch: Vec<Read>, levels: &HashMap<String, u32>) {
    for read in batch {
        let _ = read.level.send(Ok(levels.get(&read.sku).copied()));
    }
}
