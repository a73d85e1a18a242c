//! How long a low-stock event takes from its commit to the stream.
//!
//! Each product of the phase starts just at the threshold; removes of one
//! unit take it down to 0, so every remove commits a change and an event,
//! and (product, level after) names each event uniquely. A core NATS
//! subscriber on `events.low_stock` sees each event at the moment the
//! server takes the relay's publish into the `BEAKER_EVENTS` stream. The
//! reply is sent right after the commit, so the time from the reply's
//! arrival to the event's arrival is the relay's delay from commit to
//! stream (negative when the event wins the race).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::error::BenchError;
use crate::load::{CallResult, percentile};
use crate::mix::{Operation, Pick, event_sku};
use crate::nats;

/// The level below which the default rules raise a low-stock event, and at
/// which the phase's products start.
pub const THRESHOLD: u32 = 10;
/// How long to wait for the last events after the last reply.
const DRAIN: Duration = Duration::from_secs(5);

/// What one event phase measured.
#[derive(Debug, Clone, Default)]
pub struct EventLatency {
    /// Removes that were answered with success.
    pub removes: u64,
    /// Removes that failed or were refused.
    pub failed: u64,
    /// Events matched with their remove.
    pub matched: u64,
    /// Successful removes whose event never arrived.
    pub missing: u64,
    /// Events that arrived before their reply.
    pub before_reply: u64,
    /// From the reply's arrival to the event's, in nanoseconds (signed).
    pub reply_to_event_p50: i64,
    pub reply_to_event_p99: i64,
    /// From sending the remove to the event's arrival.
    pub request_to_event_p50: i64,
    pub request_to_event_p99: i64,
}

type Key = (String, u32);

/// Runs the removes of phase `phase` over `products` products (seeded at
/// [`THRESHOLD`] units) with `concurrency` in flight.
pub async fn measure(
    url: &str,
    phase: usize,
    products: usize,
    concurrency: usize,
) -> Result<EventLatency, BenchError> {
    let client = nats::connect(url, "beaker-bench events").await?;
    let listener = nats::connect(url, "beaker-bench event listener").await?;
    let mut subscription = listener
        .subscribe(beaker::contract::wire::LOW_STOCK_SUBJECT)
        .await
        .map_err(|e| BenchError::Nats(e.to_string()))?;
    listener
        .flush()
        .await
        .map_err(|e| BenchError::Nats(e.to_string()))?;
    let arrivals: Arc<Mutex<HashMap<Key, Instant>>> = Arc::default();
    let collector = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let now = Instant::now();
                let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else {
                    continue;
                };
                let (Some(sku), Some(level)) = (
                    event["product-sku"].as_str(),
                    event["stock-level"]
                        .as_u64()
                        .and_then(|l| u32::try_from(l).ok()),
                ) else {
                    continue;
                };
                arrivals
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry((sku.to_string(), level))
                    .or_insert(now);
            }
        })
    };

    let concurrency = concurrency.max(1);
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut replies: Vec<(Key, Instant, Instant)> = Vec::new();
                let mut failed = 0u64;
                for index in (worker..products).step_by(concurrency) {
                    let pick = Pick {
                        sku: event_sku(phase, index),
                        operation: Operation::Remove(1),
                    };
                    for _ in 0..THRESHOLD {
                        let sent = Instant::now();
                        let reply = nats::send(&client, pick.subject(), pick.payload()).await;
                        let answered = Instant::now();
                        let level = match &reply {
                            Ok(message) if nats::classify(message) == CallResult::Ok => {
                                serde_json::from_slice::<Value>(&message.payload)
                                    .ok()
                                    .and_then(|body| body["quantity"].as_u64())
                                    .and_then(|l| u32::try_from(l).ok())
                            }
                            _ => None,
                        };
                        match level {
                            Some(level) => {
                                replies.push(((pick.sku.clone(), level), sent, answered))
                            }
                            None => failed += 1,
                        }
                    }
                }
                (replies, failed)
            })
        })
        .collect();
    let mut replies = Vec::new();
    let mut failed = 0;
    for worker in workers {
        let (mine, not_applied) = worker
            .await
            .map_err(|e| BenchError::Nats(format!("an event worker failed: {e}")))?;
        replies.extend(mine);
        failed += not_applied;
    }

    let expected = replies.len();
    let drain_until = Instant::now() + DRAIN;
    while Instant::now() < drain_until {
        let arrived = arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if arrived >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    collector.abort();
    let arrivals = arrivals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();

    let signed = |later: Instant, earlier: Instant| -> i64 {
        if later >= earlier {
            i64::try_from((later - earlier).as_nanos()).unwrap_or(i64::MAX)
        } else {
            -i64::try_from((earlier - later).as_nanos()).unwrap_or(i64::MAX)
        }
    };
    let mut after_reply = Vec::with_capacity(expected);
    let mut after_request = Vec::with_capacity(expected);
    for (key, sent, answered) in &replies {
        if let Some(&arrived) = arrivals.get(key) {
            after_reply.push(signed(arrived, *answered));
            after_request.push(signed(arrived, *sent));
        }
    }
    after_reply.sort_unstable();
    after_request.sort_unstable();
    let matched = after_reply.len() as u64;
    Ok(EventLatency {
        removes: expected as u64,
        failed,
        matched,
        missing: expected as u64 - matched,
        before_reply: after_reply.iter().filter(|d| **d < 0).count() as u64,
        reply_to_event_p50: percentile(&after_reply, 0.5),
        reply_to_event_p99: percentile(&after_reply, 0.99),
        request_to_event_p50: percentile(&after_request, 0.5),
        request_to_event_p99: percentile(&after_request, 0.99),
    })
}
