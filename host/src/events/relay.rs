//! The outbox relay: claims pending rows, publishes them with
//! `Nats-Msg-Id`, waits for JetStream's acknowledgements, marks them.
//!
//! Every step that waits on the network is bounded, and so is the round as
//! a whole (`--outbox-round-timeout`): a round that takes longer is
//! abandoned, which rolls back its claim so that the rows are free again,
//! and it is retried. A round is abandoned too the moment the NATS
//! connection drops or is replaced: acknowledgements of messages sent on a
//! dead connection never arrive, and waiting for them would hold the
//! claim for nothing. When the connection comes back, the relay starts at
//! once instead of sleeping out its back-off, so a backlog drains within
//! moments of the reconnection.
//!
//! The relay wakes as soon as a change commits in this process, polls as a
//! fallback (for rows left by other or crashed instances), backs off with
//! jitter while NATS or the stream is unavailable, and shares the work with
//! other instances through `FOR UPDATE SKIP LOCKED`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures::future::join_all;
use opentelemetry::KeyValue;
use tokio::sync::{Notify, watch};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::liveness::Liveness;
use super::stream::{Ensured, StreamSettings, ensure_stream, report};
use crate::metrics::Metrics;
use crate::nats::link::{self, Link};
use crate::shutdown::stopped;
use crate::store::{PendingEvent, Store, StoreError};

/// Settings of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// How often the relay looks for rows it was not woken for.
    pub poll_interval: Duration,
    /// Rows claimed and published per round.
    pub batch_size: i64,
    /// The longest a round (claim, publish, acknowledgements, marking)
    /// may take before it is abandoned and retried.
    pub round_timeout: Duration,
    /// How long a publish waits for its acknowledgement (and any other
    /// JetStream request of the relay); the settings cap it at
    /// `round_timeout`.
    pub ack_timeout: Duration,
    /// The longest pause between attempts while publishing fails.
    pub max_backoff: Duration,
    /// How long the last attempt at shutdown may take.
    pub final_attempt: Duration,
}

/// Moves committed events from the outbox into JetStream.
pub struct Relay {
    store: Store,
    client: async_nats::Client,
    js: Context,
    stream: StreamSettings,
    settings: RelaySettings,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    liveness: Arc<Liveness>,
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

/// Why a round ended without finishing.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the round took longer than {0:?}; its claim was released")]
    TimedOut(Duration),
    #[error("the NATS connection dropped or was replaced; the round's claim was released")]
    Reconnected,
}

/// What the relay needs besides its settings.
#[derive(Debug)]
pub struct RelayParts {
    pub store: Store,
    pub client: async_nats::Client,
    pub stream: StreamSettings,
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    pub liveness: Arc<Liveness>,
}

impl Relay {
    pub fn new(parts: RelayParts, settings: RelaySettings) -> Self {
        // A context of its own, so that every JetStream call of the relay
        // (publish, acknowledgement, stream creation) has the relay's bound
        // whatever other users of the client chose. The ack bound is short
        // because an ack lost with a dead stream leader never comes, and
        // the round should move on to the new leader, not wait out the
        // whole round.
        let js = jetstream::ContextBuilder::new()
            .timeout(settings.ack_timeout)
            .build(parts.client.clone());
        Self {
            store: parts.store,
            client: parts.client,
            js,
            stream: parts.stream,
            settings,
            wake: parts.wake,
            metrics: parts.metrics,
            liveness: parts.liveness,
        }
    }

    /// Relays until `stop` turns true, then makes one last bounded attempt
    /// to publish what is pending (when NATS is there).
    pub async fn run(self, mut stop: watch::Receiver<bool>, mut link: watch::Receiver<Link>) {
        let mut failures: u32 = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            let connection = *link.borrow_and_update();
            if !self.connected() {
                // Nothing can be published: hold no claim (another
                // instance, on another server, may be able to), and wait
                // for the connection, or the back-off in case its return
                // went unreported.
                failures = failures.saturating_add(1);
                tokio::select! {
                    () = stopped(&mut stop) => break,
                    () = tokio::time::sleep(backoff(failures, self.settings.max_backoff)) => {}
                    () = link::back(&mut link, connection) => failures = 0,
                }
                continue;
            }
            let outcome = tokio::select! {
                () = stopped(&mut stop) => break,
                () = link::replaced(&mut link, connection) => Err(RoundError::Reconnected),
                outcome = self.bounded_round() => outcome,
            };
            let pause = match outcome {
                Ok(round) if round.failed == 0 && !round.stream_missing => {
                    self.liveness.progressed();
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
                Err(RoundError::Reconnected) => {
                    // Down: wait for the connection (or the back-off). Back
                    // up: go again at once.
                    if link.borrow().up {
                        continue;
                    }
                    failures = failures.saturating_add(1);
                    Some(backoff(failures, self.settings.max_backoff))
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::warn!(error = %e, "an outbox relay round failed; retrying");
                    }
                    Some(backoff(failures, self.settings.max_backoff))
                }
            };
            let connection = *link.borrow_and_update();
            match pause {
                Some(pause) => {
                    tokio::select! {
                        () = stopped(&mut stop) => break,
                        () = tokio::time::sleep(pause) => {}
                        () = link::back(&mut link, connection) => {
                            tracing::info!("NATS is back: relaying the outbox now");
                            failures = 0;
                        }
                    }
                }
                None => {
                    tokio::select! {
                        () = stopped(&mut stop) => break,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                        () = link::back(&mut link, connection) => {}
                    }
                }
            }
        }
        self.last_attempt().await;
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// A last attempt at shutdown, so that a clean stop leaves nothing
    /// behind when NATS is there; what is left stays for the next instance.
    async fn last_attempt(&self) {
        if !self.connected() {
            tracing::info!("NATS is away: pending events stay in the outbox for the next instance");
            return;
        }
        let last = tokio::time::timeout(self.settings.final_attempt, async {
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
    }

    /// A round under the round timeout. Dropping the round's future rolls
    /// its claim back.
    async fn bounded_round(&self) -> Result<Round, RoundError> {
        match tokio::time::timeout(self.settings.round_timeout, self.round()).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.metrics.relay_rounds_abandoned.add(1, &[]);
                Err(RoundError::TimedOut(self.settings.round_timeout))
            }
        }
    }

    /// Claims a batch, publishes it (pipelined), waits for every ack at
    /// once, and marks what was acknowledged.
    async fn round(&self) -> Result<Round, RoundError> {
        let batch = self.store.claim_pending(self.settings.batch_size).await?;
        let mut round = Round {
            claimed: batch.events.len(),
            ..Round::default()
        };
        if batch.events.is_empty() {
            return Ok(round);
        }
        let mut sent = Vec::with_capacity(batch.events.len());
        for event in &batch.events {
            let span = publish_span(event);
            let ack = self.publish(event).instrument(span.clone()).await;
            sent.push((event, span, ack));
        }
        // Every acknowledgement is awaited at the same time: each is
        // bounded, and one that never comes costs the round one timeout,
        // not one per event.
        let acks = join_all(sent.into_iter().map(|(event, span, ack)| async move {
            let result = match ack {
                Ok(ack) => std::future::IntoFuture::into_future(ack)
                    .instrument(span.clone())
                    .await
                    .map(|ack| {
                        // Which sequence holds the event, and whether the
                        // stream had it already (a retry after a lost ack):
                        // what an operator needs to follow one event
                        // through a failover.
                        tracing::debug!(
                            msg_id = %event.msg_id,
                            sequence = ack.sequence,
                            duplicate = ack.duplicate,
                            "event acknowledged"
                        );
                    })
                    .map_err(|e| (e.kind(), e.to_string())),
                Err(e) => Err((e.kind(), e.to_string())),
            };
            (event, span, result)
        }))
        .await;
        let mut published = Vec::with_capacity(acks.len());
        let mut failed = Vec::new();
        for (event, span, result) in acks {
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

    /// The stream was deleted under us (or never made it on a cluster that
    /// was forming): create it so that events have somewhere to go.
    async fn recreate_stream(&self) {
        match ensure_stream(&self.js, &self.stream).await {
            Ok(Ensured::Created) => {
                tracing::warn!(stream = %self.stream.name, "the events stream was missing; created it")
            }
            Ok(ensured) => report(&self.stream, &ensured),
            Err(e) => tracing::warn!(error = %e, "cannot create the events stream yet"),
        }
    }
}

/// The publish of one event: its own span (the relay works outside any
/// request), linked to the request that committed the event.
fn publish_span(event: &PendingEvent) -> tracing::Span {
    use opentelemetry::trace::TraceContextExt;
    let span = tracing::debug_span!(
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
    let origin = crate::propagation::context_from_pairs(&event.headers);
    let origin = origin.span().span_context().clone();
    if origin.is_valid() {
        span.add_link(origin);
    }
    span
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
