//! Events: the JetStream stream that keeps them, and the relay that moves
//! committed outbox rows into it.
//!
//! An event is published if and only if its change committed: it is
//! written to the `outbox` table in the change's transaction, and only the
//! relay publishes it, with `Nats-Msg-Id` set to the row's `msg_id`. The
//! relay waits for JetStream's ack before marking the row published, so a
//! crash or an outage at any point leaves the row pending, to be published
//! again later; JetStream discards the second copy of a `Nats-Msg-Id` seen
//! within the stream's duplicate window. Consumers therefore see each event
//! exactly once.
//!
//! The relay wakes as soon as a change commits in this process, polls as a
//! fallback (for rows left by other or crashed instances), backs off with
//! jitter while NATS or the stream is unavailable, and shares the work with
//! other instances through `FOR UPDATE SKIP LOCKED`.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use tokio::sync::{Notify, watch};

use opentelemetry::KeyValue;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::Metrics;
use crate::service::stopped;
use crate::store::{PendingEvent, Store, StoreError};

/// Settings of the events stream.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub name: String,
    pub subjects: Vec<String>,
    pub storage: StorageType,
    pub max_age: Duration,
    pub max_bytes: i64,
    pub duplicate_window: Duration,
    pub replicas: usize,
}

/// Settings of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// How often the relay looks for rows it was not woken for.
    pub poll_interval: Duration,
    /// Rows claimed and published per round.
    pub batch_size: i64,
    /// How long published rows stay in the outbox table.
    pub retention: Duration,
    /// How often expired idempotency keys and old outbox rows are deleted.
    pub housekeeping_interval: Duration,
    /// The longest pause between attempts while publishing fails.
    pub max_backoff: Duration,
}

/// Why the stream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot create or update the JetStream stream {name}: {reason}")]
    Stream { name: String, reason: String },
}

/// Creates the stream, or updates it to these settings. Uses only stream
/// settings nats-server 2.9 knows.
pub async fn ensure_stream(js: &Context, settings: &StreamSettings) -> Result<(), EventsError> {
    let config = Config {
        name: settings.name.clone(),
        description: Some("Beaker events (low stock), published from the outbox".into()),
        subjects: settings.subjects.clone(),
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: settings.storage,
        max_age: settings.max_age,
        max_bytes: settings.max_bytes,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        ..Default::default()
    };
    js.create_or_update_stream(config)
        .await
        .map(|_| ())
        .map_err(|e| EventsError::Stream {
            name: settings.name.clone(),
            reason: e.to_string(),
        })
}

/// Moves committed events from the outbox into JetStream.
pub struct Relay {
    store: Store,
    js: Context,
    stream: StreamSettings,
    settings: RelaySettings,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What one round of relaying did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Round {
    claimed: usize,
    published: usize,
    failed: usize,
    stream_missing: bool,
}

#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Relay {
    pub fn new(
        store: Store,
        js: Context,
        stream: StreamSettings,
        settings: RelaySettings,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            js,
            stream,
            settings,
            wake,
            metrics,
        }
    }

    /// Relays until `stop` turns true, then makes one last bounded attempt
    /// to publish what is pending.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let mut housekeeping = tokio::time::interval(self.settings.housekeeping_interval);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sampler = tokio::spawn(sample_backlog(
            self.store.clone(),
            self.metrics.clone(),
            stop.clone(),
        ));
        loop {
            if *stop.borrow() {
                break;
            }
            let outcome = self.round().await;
            let pause = match outcome {
                Ok(round) if round.failed == 0 && !round.stream_missing => {
                    if failures > 0 {
                        tracing::info!("events are being published again");
                    }
                    failures = 0;
                    if round.claimed as i64 == self.settings.batch_size {
                        continue; // more waiting: go on at once
                    }
                    None
                }
                Ok(round) => {
                    failures = failures.saturating_add(1);
                    if round.stream_missing {
                        self.recreate_stream().await;
                    }
                    if failures == 1 {
                        tracing::warn!(
                            failed = round.failed,
                            "cannot publish events; they stay in the outbox and will be retried"
                        );
                    }
                    Some(backoff(failures, self.settings.max_backoff))
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::warn!(error = %e, "cannot read the outbox; retrying");
                    }
                    Some(backoff(failures, self.settings.max_backoff))
                }
            };
            match pause {
                Some(pause) => {
                    tokio::select! {
                        () = stopped(&mut stop) => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                None => {
                    tokio::select! {
                        () = stopped(&mut stop) => break,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                        _ = housekeeping.tick() => self.housekeeping().await,
                    }
                }
            }
        }
        // A last attempt, so that a clean shutdown leaves nothing behind
        // when NATS is there; what fails stays for the next instance.
        let last = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match self.round().await {
                    Ok(round) if round.claimed > 0 && round.failed == 0 => continue,
                    _ => break,
                }
            }
        });
        if last.await.is_err() {
            tracing::warn!("stopped with events still pending in the outbox");
        }
        let _ = sampler.await;
    }

    /// Claims a batch, publishes it (pipelined), waits for every ack, and
    /// marks what was acknowledged.
    async fn round(&self) -> Result<Round, RoundError> {
        let batch = self.store.claim_pending(self.settings.batch_size).await?;
        let mut round = Round {
            claimed: batch.events.len(),
            ..Round::default()
        };
        if batch.events.is_empty() {
            return Ok(round);
        }
        let mut acks = Vec::with_capacity(batch.events.len());
        for event in &batch.events {
            let span = publish_span(event);
            let sent = self.publish(event).instrument(span.clone()).await;
            acks.push((event, span, sent));
        }
        let mut published = Vec::with_capacity(acks.len());
        let mut failed = Vec::new();
        for (event, span, sent) in acks {
            let result = match sent {
                Ok(ack) => ack
                    .into_future()
                    .instrument(span.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| (e.kind(), e.to_string())),
                Err(e) => Err((e.kind(), e.to_string())),
            };
            let subject = KeyValue::new("messaging.destination.name", event.subject.clone());
            match result {
                Ok(()) => {
                    published.push(event.id);
                    self.metrics.events_published.add(1, &[subject]);
                }
                Err((kind, message)) => {
                    span.record("otel.status_code", "ERROR");
                    if kind == jetstream::context::PublishErrorKind::StreamNotFound {
                        round.stream_missing = true;
                    }
                    self.metrics.publish_failures.add(1, &[subject]);
                    failed.push((event.id, message));
                }
            }
        }
        round.published = published.len();
        round.failed = failed.len();
        if round.published > 0 {
            tracing::debug!(published = round.published, "events published");
        }
        batch.finish(&published, &failed).await?;
        Ok(round)
    }

    async fn publish(
        &self,
        event: &PendingEvent,
    ) -> Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &event.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        headers.insert("Beaker-Request-Id", event.request_id.to_string().as_str());
        // `headers` replaces the whole map, so the message id comes after.
        let message = PublishMessage::build()
            .payload(Bytes::from(event.payload.clone()))
            .headers(headers)
            .message_id(event.msg_id.to_string());
        self.js.send_publish(event.subject.clone(), message).await
    }

    /// The stream was deleted under us: create it again so that events
    /// have somewhere to go.
    async fn recreate_stream(&self) {
        match ensure_stream(&self.js, &self.stream).await {
            Ok(()) => {
                tracing::warn!(stream = %self.stream.name, "the events stream was missing; created it again")
            }
            Err(e) => tracing::warn!(error = %e, "cannot create the events stream yet"),
        }
    }

    async fn housekeeping(&self) {
        match self.store.housekeeping(self.settings.retention).await {
            Ok((keys, rows)) if keys + rows > 0 => tracing::debug!(
                expired_keys = keys,
                outbox_rows = rows,
                "housekeeping deleted old rows"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
    }
}

/// The publish of one event: its own span (the relay works outside any
/// request), linked to the request that committed the event.
fn publish_span(event: &PendingEvent) -> tracing::Span {
    use opentelemetry::trace::TraceContextExt;
    let span = tracing::info_span!(
        "publish",
        otel.name = format!("publish {}", event.subject),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "nats",
        messaging.operation.name = "publish",
        messaging.destination.name = %event.subject,
        messaging.message.id = %event.msg_id,
        beaker.request_id = %event.request_id,
    );
    // A fresh trace, not the request's: the publish may happen much later.
    let _ = span.set_parent(opentelemetry::Context::new());
    let origin = crate::telemetry::context_from_pairs(&event.headers);
    let origin = origin.span().span_context().clone();
    if origin.is_valid() {
        span.add_link(origin);
    }
    span
}

/// Samples the outbox backlog for the metrics every few seconds.
async fn sample_backlog(store: Store, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    use std::sync::atomic::Ordering;
    loop {
        if let Ok((count, oldest)) = store.outbox_backlog().await {
            metrics
                .gauges
                .outbox_backlog
                .store(u64::try_from(count).unwrap_or(0), Ordering::Relaxed);
            metrics.gauges.outbox_oldest_ms.store(
                u64::try_from(oldest.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Exponential back-off from 100 ms up to `max`, with ±50 % jitter so that
/// instances do not retry in step.
fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << failures.min(16).saturating_sub(1));
    let capped = base.min(max);
    let jitter = 0.5 + fastrand::f64();
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let max = Duration::from_secs(30);
        for failures in 1..40 {
            let pause = backoff(failures, max);
            assert!(pause >= Duration::from_millis(50), "{failures}: {pause:?}");
            assert!(pause <= max.mul_f64(1.5), "{failures}: {pause:?}");
        }
        assert!(backoff(1, max) <= Duration::from_millis(150));
        assert!(backoff(12, max) >= Duration::from_secs(15));
    }
}
