//! The service's metrics, named after the OpenTelemetry semantic
//! conventions where one exists (`messaging.process.duration`,
//! `db.client.connection.count`), `beaker.*` otherwise. In Prometheus the
//! dots become underscores, counters end in `_total` and units are
//! suffixed (`_seconds`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use tokio::sync::watch;

use crate::nats::Link;
use crate::rules::state::RulesState;
use crate::store::Store;

/// Buckets for request and rules durations, in seconds: from 50 µs to 10 s.
const DURATION_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1,
    0.25, 0.5, 1.0, 10.0,
];

/// Values sampled by background work and read when metrics are collected.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Outbox rows not yet published.
    pub outbox_backlog: AtomicU64,
    /// Age of the oldest of them, in milliseconds.
    pub outbox_oldest_ms: AtomicU64,
    /// 1 while the outbox relay is connected but makes no progress.
    pub relay_stalled: AtomicU64,
}

/// The instruments the request path and the relay record into.
pub struct Metrics {
    /// `beaker.requests`: requests answered, by endpoint and outcome.
    pub requests: Counter<u64>,
    /// `messaging.process.duration`: from receipt to reply, in seconds.
    pub request_duration: Histogram<f64>,
    /// `beaker.rules.call.duration`: one rules decision, sandbox included.
    pub rules_duration: Histogram<f64>,
    /// `beaker.rules.violations`: rules calls that failed, by kind
    /// (`deadline`, `memory`, `trap`, `invalid_decision`, `exhausted`).
    pub violations: Counter<u64>,
    /// `beaker.events.published`: events acknowledged by JetStream.
    pub events_published: Counter<u64>,
    /// `beaker.events.publish_failures`: publish attempts that failed.
    pub publish_failures: Counter<u64>,
    /// `beaker.outbox.relay.rounds_abandoned`: relay rounds that took
    /// longer than their bound and were abandoned.
    pub relay_rounds_abandoned: Counter<u64>,
    /// `beaker.group_commit.size`: requests per group commit transaction.
    pub group_size: Histogram<u64>,
    /// `beaker.requests.busy`: requests answered 503 because the instance
    /// was at its limit, by reason (`queue_full`, `waited_too_long`).
    pub busy: Counter<u64>,
    pub gauges: Arc<Gauges>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn meter() -> Meter {
    global::meter("beaker")
}

impl Metrics {
    /// Creates the instruments on the global meter provider.
    pub fn new() -> Arc<Self> {
        let meter = meter();
        let metrics = Arc::new(Self {
            requests: meter
                .u64_counter("beaker.requests")
                .with_description("Requests answered, by endpoint and outcome")
                .build(),
            request_duration: meter
                .f64_histogram("messaging.process.duration")
                .with_unit("s")
                .with_description("Time from receiving a request to sending its reply")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            rules_duration: meter
                .f64_histogram("beaker.rules.call.duration")
                .with_unit("s")
                .with_description("Time of one rules decision, fresh sandbox included")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            violations: meter
                .u64_counter("beaker.rules.violations")
                .with_description("Rules calls that failed, by kind of violation")
                .build(),
            events_published: meter
                .u64_counter("beaker.events.published")
                .with_description("Events acknowledged by JetStream")
                .build(),
            publish_failures: meter
                .u64_counter("beaker.events.publish_failures")
                .with_description("Event publications that failed and will be retried")
                .build(),
            relay_rounds_abandoned: meter
                .u64_counter("beaker.outbox.relay.rounds_abandoned")
                .with_description(
                    "Outbox relay rounds abandoned at their time bound (their rows were released)",
                )
                .build(),
            group_size: meter
                .u64_histogram("beaker.group_commit.size")
                .with_unit("{request}")
                .with_description("Adds and removes applied in one group commit transaction")
                .with_boundaries(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0])
                .build(),
            busy: meter
                .u64_counter("beaker.requests.busy")
                .with_description(
                    "Requests answered 503 because the instance was at its limit, by reason",
                )
                .build(),
            gauges: Arc::new(Gauges::default()),
        });
        for reason in ["queue_full", "waited_too_long"] {
            metrics.busy.add(0, &[KeyValue::new("reason", reason)]);
        }
        // Counters of rare things start at 0, so that they are on /metrics
        // (and rate() works) before the first one happens.
        for kind in crate::rules::CallError::KINDS {
            metrics.violations.add(0, &[KeyValue::new("kind", kind)]);
        }
        let events = KeyValue::new(
            "messaging.destination.name",
            crate::contract::wire::LOW_STOCK_SUBJECT,
        );
        metrics
            .events_published
            .add(0, std::slice::from_ref(&events));
        metrics.publish_failures.add(0, &[events]);
        metrics.relay_rounds_abandoned.add(0, &[]);
        metrics
    }

    /// Registers the instruments read at collection time: the rules, the
    /// database pool, the outbox and the NATS connection.
    pub fn observe(&self, rules: Arc<RulesState>, store: Store, link: watch::Receiver<Link>) {
        let meter = meter();
        let state = rules.clone();
        meter
            .u64_observable_gauge("beaker.rules.active")
            .with_description("The active rules: 1, labelled with their name, version and digest")
            .with_callback(move |o| {
                let active = state.active();
                o.observe(
                    1,
                    &[
                        KeyValue::new("rules.name", active.name.clone()),
                        KeyValue::new("rules.version", active.version.clone()),
                        KeyValue::new("rules.digest", active.digest.to_string()),
                    ],
                );
            })
            .build();
        let state = rules.clone();
        meter
            .u64_observable_counter("beaker.rules.swaps")
            .with_description("Rules swapped in since start")
            .with_callback(move |o| o.observe(state.stats.swaps.load(Ordering::Relaxed), &[]))
            .build();
        let state = rules.clone();
        meter
            .u64_observable_counter("beaker.rules.refusals")
            .with_description("Rules candidates refused since start")
            .with_callback(move |o| o.observe(state.stats.refusals.load(Ordering::Relaxed), &[]))
            .build();
        let state = rules.clone();
        meter
            .u64_observable_counter("beaker.rules.bucket.skipped")
            .with_description(
                "Entries of the rules bucket skipped since start (unreadable, damaged, foreign or incomplete)",
            )
            .with_callback(move |o| o.observe(state.bucket.skipped(), &[]))
            .build();
        let state = rules.clone();
        meter
            .u64_observable_gauge("beaker.rules.bucket.lost")
            .with_description(
                "1 while the rules bucket does not answer this instance (deploys do not reach it), else 0",
            )
            .with_callback(move |o| o.observe(u64::from(state.bucket.is_lost()), &[]))
            .build();
        let state = rules;
        meter
            .u64_observable_gauge("beaker.rules.shadow.comparisons")
            .with_description(
                "Comparisons of the current shadow rules with the active ones, by result",
            )
            .with_callback(move |o| {
                if state.shadow().is_none() {
                    return;
                }
                let stats = state.shadow_stats();
                for (result, value) in [
                    ("agree", &stats.agreements),
                    ("diverge", &stats.divergences),
                    ("fail", &stats.failures),
                    ("skip", &stats.skipped),
                ] {
                    o.observe(
                        value.load(Ordering::Relaxed),
                        &[KeyValue::new("result", result)],
                    );
                }
            })
            .build();
        let pool = store.clone();
        meter
            .u64_observable_gauge("db.client.connection.count")
            .with_description("Database connections, by state (used or idle)")
            .with_callback(move |o| {
                let stats = pool.pool_stats();
                let pool_name = KeyValue::new("db.client.connection.pool.name", "beaker");
                o.observe(
                    stats.used,
                    &[
                        KeyValue::new("db.client.connection.state", "used"),
                        pool_name.clone(),
                    ],
                );
                o.observe(
                    stats.idle,
                    &[
                        KeyValue::new("db.client.connection.state", "idle"),
                        pool_name,
                    ],
                );
            })
            .build();
        meter
            .u64_observable_gauge("db.client.connection.max")
            .with_description("Most connections the pool may open")
            .with_callback(move |o| {
                o.observe(
                    store.pool_stats().max,
                    &[KeyValue::new("db.client.connection.pool.name", "beaker")],
                )
            })
            .build();
        let gauges = self.gauges.clone();
        meter
            .u64_observable_gauge("beaker.outbox.backlog")
            .with_description("Events committed but not yet published")
            .with_callback(move |o| o.observe(gauges.outbox_backlog.load(Ordering::Relaxed), &[]))
            .build();
        let gauges = self.gauges.clone();
        meter
            .f64_observable_gauge("beaker.outbox.oldest_age")
            .with_unit("s")
            .with_description("Age of the oldest event not yet published")
            .with_callback(move |o| {
                let ms = gauges.outbox_oldest_ms.load(Ordering::Relaxed);
                o.observe(Duration::from_millis(ms).as_secs_f64(), &[])
            })
            .build();
        let state = link.clone();
        meter
            .u64_observable_gauge("beaker.nats.connected")
            .with_description("1 while the NATS connection is up, 0 otherwise")
            .with_callback(move |o| o.observe(u64::from(state.borrow().up), &[]))
            .build();
        meter
            .u64_observable_counter("beaker.nats.reconnects")
            .with_description("NATS connections re-established after a loss")
            .with_callback(move |o| o.observe(link.borrow().connections.saturating_sub(1), &[]))
            .build();
        let gauges = self.gauges.clone();
        meter
            .u64_observable_gauge("beaker.outbox.relay.stalled")
            .with_description(
                "1 while the outbox relay is connected to NATS but has published nothing lately",
            )
            .with_callback(move |o| o.observe(gauges.relay_stalled.load(Ordering::Relaxed), &[]))
            .build();
    }

    /// Registers the gauges of the requests taken in: processed now, and
    /// waiting for a slot.
    pub fn observe_admission(&self, admission: Arc<crate::service::Admission>) {
        let meter = meter();
        let taken = admission.clone();
        meter
            .u64_observable_gauge("beaker.requests.in_flight")
            .with_description("Requests being processed now")
            .with_callback(move |o| o.observe(taken.in_flight() as u64, &[]))
            .build();
        meter
            .u64_observable_gauge("beaker.requests.waiting")
            .with_description("Requests waiting for a free slot (BEAKER_MAX_IN_FLIGHT) now")
            .with_callback(move |o| {
                o.observe(
                    admission.taken().saturating_sub(admission.in_flight()) as u64,
                    &[],
                )
            })
            .build();
    }

    /// Records one answered request.
    pub fn record_request(
        &self,
        endpoint: &'static str,
        subject: &'static str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        self.requests.add(
            1,
            &[
                KeyValue::new("endpoint", endpoint),
                KeyValue::new("outcome", outcome),
            ],
        );
        // Static strings only, in an array: nothing allocated per request.
        let attributes = [
            KeyValue::new("messaging.system", "nats"),
            KeyValue::new("messaging.destination.name", subject),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("error.type", outcome),
        ];
        let attributes = match outcome {
            "ok" => &attributes[..3],
            _ => &attributes[..],
        };
        self.request_duration
            .record(elapsed.as_secs_f64(), attributes);
    }
}
