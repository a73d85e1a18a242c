//! The `stock.*` endpoints: decode, validate, decide, store, answer.
//!
//! Every request gets exactly one answer. Whatever the payload, whatever
//! the rules or the database do, the handler produces a [`Reply`] that is
//! checked against the response schema before it is sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, HeaderValue, Message, Subscriber};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::micro::Registry;
use crate::nats::Link;
use crate::rules::state::RulesState;
use crate::rules::{self, CallError, Decision, Event, Operation, Rejection, Rules};
use crate::schema::Schemas;
use crate::shutdown::stopped;
use crate::store::{
    Begun, IdempotencyKey, Movement, OutboxEvent, RowLock, RulesStamp, Store, StoreError,
    StoredReply,
};

mod group;
use crate::wire::{
    ERROR_CODE_HEADER, ERROR_HEADER, Endpoint, ErrorCode, IDEMPOTENCY_HEADER, LOW_STOCK_SUBJECT,
    LowStockEvent, Reply, StockRequest,
};
use group::GroupCommit;
pub use group::GroupCommitSettings;

/// How often a change is decided again when a new product was created
/// concurrently; the second attempt always finds the row.
const MAX_ATTEMPTS: usize = 3;

/// The longest idempotency key accepted.
const MAX_KEY_LEN: usize = 255;

/// Limits on what one instance takes on.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    pub max_request_bytes: usize,
    pub max_in_flight: u32,
    /// How long a reply stays stored under its idempotency key.
    pub idempotency_ttl: Duration,
}

/// Everything a request needs, shared by all of them.
pub struct Service {
    schemas: Schemas,
    store: Store,
    rules: Arc<RulesState>,
    client: Client,
    registry: Arc<Registry>,
    limits: ServiceLimits,
    permits: Arc<Semaphore>,
    /// Wakes the outbox relay when a change with events commits.
    relay_wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    /// Applies adds and removes in groups, one transaction each; `None`
    /// applies every request in its own transaction.
    group: Option<GroupCommit>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What a [`Service`] is built from.
#[derive(Debug)]
pub struct Parts {
    pub schemas: Schemas,
    pub store: Store,
    pub rules: Arc<RulesState>,
    pub client: Client,
    pub registry: Arc<Registry>,
    pub limits: ServiceLimits,
    /// Notified after a change with events commits.
    pub relay_wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// Group commit, or `None` for one transaction per request.
    pub group_commit: Option<GroupCommitSettings>,
}

impl Service {
    /// Must run inside a tokio runtime: group commit starts its workers.
    pub fn new(parts: Parts) -> Arc<Self> {
        let limits = parts.limits;
        let queue = limits.max_in_flight.max(1) as usize;
        Arc::new_cyclic(|service| Self {
            schemas: parts.schemas,
            store: parts.store,
            rules: parts.rules,
            client: parts.client,
            registry: parts.registry,
            permits: Arc::new(Semaphore::new(queue)),
            limits,
            relay_wake: parts.relay_wake,
            metrics: parts.metrics,
            group: parts
                .group_commit
                .map(|settings| GroupCommit::start(service.clone(), settings, queue)),
        })
    }

    /// The rules: active, shadow, and how they change.
    pub fn rules(&self) -> &Arc<RulesState> {
        &self.rules
    }

    /// Serves the subscribed endpoints until `stop` turns true; then
    /// drains the subscriptions and hands out what was already received.
    /// Returns once nothing more can arrive; [`Service::finished`] waits for
    /// the requests still in flight.
    ///
    /// While NATS is away nothing more can arrive, and a drain cannot
    /// complete (it needs the server's answer): then the loops answer what
    /// is already here and end without waiting for the server.
    pub async fn serve(
        self: &Arc<Self>,
        subscriptions: Vec<(Endpoint, Subscriber)>,
        stop: watch::Receiver<bool>,
        link: watch::Receiver<Link>,
    ) {
        let loops: Vec<_> = subscriptions
            .into_iter()
            .map(|(endpoint, sub)| {
                let service = self.clone();
                let stop = stop.clone();
                let link = link.clone();
                tokio::spawn(async move { service.endpoint_loop(endpoint, sub, stop, link).await })
            })
            .collect();
        for handle in loops {
            if let Err(e) = handle.await {
                tracing::error!(error = %e, "endpoint loop ended abnormally");
            }
        }
    }

    /// Waits until every request in flight was answered: every permit back.
    pub async fn finished(&self) {
        let all = self.limits.max_in_flight.max(1);
        let _ = self.permits.acquire_many(all).await;
    }

    /// Requests being processed now.
    pub fn in_flight(&self) -> usize {
        (self.limits.max_in_flight.max(1) as usize).saturating_sub(self.permits.available_permits())
    }

    /// Subscribes to one endpoint's subject in the queue group.
    pub async fn subscribe(
        client: &Client,
        queue_group: &str,
    ) -> Result<Vec<(Endpoint, Subscriber)>, async_nats::SubscribeError> {
        let mut subscriptions = Vec::new();
        for endpoint in Endpoint::ALL {
            let sub = client
                .queue_subscribe(endpoint.subject(), queue_group.to_string())
                .await?;
            subscriptions.push((endpoint, sub));
        }
        Ok(subscriptions)
    }

    async fn endpoint_loop(
        self: Arc<Self>,
        endpoint: Endpoint,
        mut sub: Subscriber,
        mut stop: watch::Receiver<bool>,
        mut link: watch::Receiver<Link>,
    ) {
        let mut draining = false;
        loop {
            tokio::select! {
                () = stopped(&mut stop), if !draining => {
                    draining = true;
                    // Stop receiving, but keep the messages already here.
                    if let Err(e) = sub.drain().await {
                        tracing::warn!(error = %e, endpoint = endpoint.name(), "cannot drain subscription");
                        break;
                    }
                }
                () = link_down(&mut link), if draining => {
                    // Nothing more can arrive, and the drain will not be
                    // confirmed: answer what is already here, and end.
                    while let Some(Some(message)) = sub.next().now_or_never() {
                        self.dispatch(endpoint, message).await;
                    }
                    break;
                }
                next = sub.next() => {
                    let Some(message) = next else { break };
                    self.dispatch(endpoint, message).await;
                }
            }
        }
    }

    /// Hands a message to its own task, or answers 503 at once when the
    /// instance is at its limit of requests in flight.
    async fn dispatch(self: &Arc<Self>, endpoint: Endpoint, message: Message) {
        let received = Instant::now();
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let service = self.clone();
                tokio::spawn(async move {
                    service.answer(endpoint, message, received).await;
                    drop(permit);
                });
            }
            Err(_) => {
                let reply = Reply::error(
                    ErrorCode::Unavailable,
                    "the service is busy; try again shortly",
                );
                tracing::warn!(
                    endpoint = endpoint.name(),
                    "at the limit of requests in flight"
                );
                self.send(endpoint, &message, &reply, received).await;
            }
        }
    }

    async fn answer(&self, endpoint: Endpoint, message: Message, received: Instant) {
        let request_id = Uuid::now_v7();
        let rules = self.rules.active();
        let span = tracing::info_span!(
            "request",
            otel.name = endpoint.subject(),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            messaging.system = "nats",
            messaging.operation.name = "process",
            messaging.destination.name = endpoint.subject(),
            beaker.request_id = %request_id,
            beaker.sku = tracing::field::Empty,
            beaker.outcome = tracing::field::Empty,
            error.type = tracing::field::Empty,
            beaker.error.code = tracing::field::Empty,
            rules.name = %rules.name,
            rules.version = %rules.version,
            rules.digest = %rules.digest,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        // Continue the caller's trace (W3C traceparent in the NATS headers).
        if let Some(headers) = &message.headers {
            let parent = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&crate::telemetry::HeaderExtractor(headers))
            });
            let _ = span.set_parent(parent);
        }
        {
            use opentelemetry::trace::TraceContextExt;
            let context = span.context();
            let span_context = context.span().span_context().clone();
            if span_context.is_valid() {
                span.record("trace_id", span_context.trace_id().to_string());
                span.record("span_id", span_context.span_id().to_string());
            }
        }
        let reply = async {
            let key = message
                .headers
                .as_ref()
                .and_then(|h| h.get(IDEMPOTENCY_HEADER))
                .map(|v| v.as_str().to_string());
            let reply = self
                .handle(
                    endpoint,
                    &message.payload,
                    key.as_deref(),
                    request_id,
                    &rules,
                )
                .await;
            let current = tracing::Span::current();
            match &reply {
                Reply::Ok { level, .. } => {
                    current.record("beaker.outcome", "ok");
                    tracing::debug!(level, "answered");
                }
                Reply::Err { code, message } => {
                    current.record("beaker.outcome", code.outcome());
                    current.record("error.type", code.outcome());
                    current.record("beaker.error.code", code.code());
                    if code.is_callers() {
                        tracing::info!(code = code.code(), error = %message, "refused");
                    } else {
                        current.record("otel.status_code", "ERROR");
                        tracing::error!(code = code.code(), error = %message, "failed");
                    }
                }
                Reply::Replay { error, .. } => {
                    current.record("beaker.outcome", "replay");
                    if let Some((code, _)) = error {
                        current.record("beaker.error.code", code);
                    }
                    tracing::info!("retry with a known idempotency key: stored reply sent again")
                }
            }
            self.send(endpoint, &message, &reply, received)
                .instrument(tracing::info_span!("respond"))
                .await;
            reply
        }
        .instrument(span)
        .await;
        let outcome = match &reply {
            Reply::Ok { .. } => "ok",
            Reply::Err { code, .. } => code.outcome(),
            Reply::Replay { .. } => "replay",
        };
        self.metrics.record_request(
            endpoint.name(),
            endpoint.subject(),
            outcome,
            received.elapsed(),
        );
    }

    /// Decodes, validates and executes one request. Never panics on input.
    /// `key` is the request's idempotency key (its `Nats-Msg-Id` header).
    pub async fn handle(
        &self,
        endpoint: Endpoint,
        payload: &[u8],
        key: Option<&str>,
        request_id: Uuid,
        rules: &Arc<Rules>,
    ) -> Reply {
        match self.prepare(endpoint, payload, key, request_id, rules) {
            Prepared::Answer(reply) => reply,
            Prepared::Get(request) => self.get(rules, request).await,
            Prepared::Change(change) => match &self.group {
                Some(group) => group.submit(*change).await,
                None => self.change_alone(&change).await,
            },
        }
    }

    /// Executes requests as if they had arrived together: the gets one by
    /// one, the adds and removes as one group commit, in the order given.
    /// Replies come back in the same order. This is what the group commit
    /// workers do with what they gather; tests use it to compare a group
    /// with the same requests applied one at a time.
    pub async fn handle_group(
        &self,
        requests: &[(Endpoint, &[u8], Option<&str>, Uuid)],
        rules: &Arc<Rules>,
    ) -> Vec<Reply> {
        let mut replies = vec![None; requests.len()];
        let mut changes = Vec::new();
        let mut slots = Vec::new();
        for (slot, (endpoint, payload, key, request_id)) in requests.iter().enumerate() {
            match self.prepare(*endpoint, payload, *key, *request_id, rules) {
                Prepared::Answer(reply) => replies[slot] = Some(reply),
                Prepared::Get(request) => replies[slot] = Some(self.get(rules, request).await),
                Prepared::Change(change) => {
                    changes.push(*change);
                    slots.push(slot);
                }
            }
        }
        for (slot, reply) in slots.into_iter().zip(self.apply_group(&changes).await) {
            replies[slot] = Some(reply);
        }
        replies
            .into_iter()
            .map(|r| r.unwrap_or_else(internal))
            .collect()
    }

    /// Everything about a request that needs no database: decoding, the
    /// schema, the idempotency key.
    fn prepare(
        &self,
        endpoint: Endpoint,
        payload: &[u8],
        key: Option<&str>,
        request_id: Uuid,
        rules: &Arc<Rules>,
    ) -> Prepared {
        let decoded = tracing::info_span!("validate").in_scope(|| self.decode(endpoint, payload));
        let (request, canonical) = match decoded {
            Ok(decoded) => decoded,
            Err(reply) => return Prepared::Answer(reply),
        };
        tracing::Span::current().record("beaker.sku", request.sku.as_str());
        let (operation, quantity) = match (endpoint, request.quantity) {
            // A get changes nothing, so it is idempotent without a key.
            (Endpoint::Get, _) => return Prepared::Get(request),
            (_, None) => {
                return Prepared::Answer(Reply::error(
                    ErrorCode::BadRequest,
                    "quantity is required",
                ));
            }
            (Endpoint::Add, Some(quantity)) => (Operation::Add(quantity), quantity),
            (Endpoint::Remove, Some(quantity)) => (Operation::Remove(quantity), quantity),
        };
        let key = match key
            .map(|k| idempotency_key(k, endpoint, &canonical, self.limits.idempotency_ttl))
        {
            None => None,
            Some(Ok(key)) => Some(key),
            Some(Err(reply)) => return Prepared::Answer(reply),
        };
        Prepared::Change(Box::new(PendingChange {
            rules: rules.clone(),
            ask: rules::Request {
                sku: request.sku,
                operation,
            },
            operation: endpoint.name(),
            quantity,
            key,
            request_id,
            span: tracing::Span::current(),
            trace_id: current_trace_id(),
        }))
    }

    fn decode(&self, endpoint: Endpoint, payload: &[u8]) -> Result<(StockRequest, String), Reply> {
        decode_request(
            &self.schemas,
            endpoint,
            payload,
            self.limits.max_request_bytes,
        )
    }

    async fn get(&self, rules: &Rules, request: StockRequest) -> Reply {
        let current = match self.store.level(&request.sku).await {
            Ok(current) => current,
            Err(e) => return store_failure(e),
        };
        let ask = rules::Request {
            sku: request.sku.clone(),
            operation: Operation::Get,
        };
        match self.decide(rules, &ask, current).await {
            Ok(outcome) => {
                self.rules
                    .compare_in_shadow(ask.clone(), current, outcome.clone());
                match outcome {
                    Ok(decision) => Reply::Ok {
                        sku: request.sku,
                        level: decision.level,
                    },
                    Err(rejection) => rejected(rejection),
                }
            }
            Err(e) => rules_failure(rules, e),
        }
    }

    /// Applies one change in a transaction of its own.
    async fn change_alone(&self, change: &PendingChange) -> Reply {
        match self.change_alone_locking(change, RowLock::Wait).await {
            Some(reply) => reply,
            // Only a caller that asked not to wait gets no answer.
            None => internal(),
        }
    }

    /// A change alone, in its own transaction; with
    /// [`RowLock::SkipIfHeld`], `None` (and nothing written) when another
    /// transaction holds the product's row.
    async fn change_alone_locking(&self, change: &PendingChange, lock: RowLock) -> Option<Reply> {
        for attempt in 1..=MAX_ATTEMPTS {
            let transaction = tracing::info_span!(
                parent: &change.span,
                "db.transaction",
                db.system.name = "postgresql",
                beaker.attempt = attempt,
            );
            match self.attempt(change, lock).instrument(transaction).await {
                Step::Done(reply) => return Some(reply),
                Step::Busy => return None,
                Step::Retry => continue,
            }
        }
        Some(contended())
    }

    /// One transaction: claim the key, lock the row, decide, write, commit.
    async fn attempt(&self, planned: &PendingChange, lock: RowLock) -> Step {
        let PendingChange {
            rules, ask, key, ..
        } = planned;
        let begun = self
            .store
            .begin_change_locking(&ask.sku, key.as_ref(), lock)
            .await;
        let change = match begun {
            Ok(Begun::Busy) => return Step::Busy,
            Ok(Begun::Change(change)) => change,
            Ok(Begun::Replay(stored)) => {
                return Step::Done(Reply::Replay {
                    body: stored.body,
                    error: stored.error,
                });
            }
            Ok(Begun::KeyReused) => {
                return Step::Done(key_reused(key.as_ref().map_or("", |k| k.key.as_str())));
            }
            Err(e) => return Step::Done(store_failure(e)),
        };
        let current = change.current;
        let decision = match self.decide(rules, ask, current).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(rejection)) => {
                let reply = rejected(rejection.clone());
                return Step::Done(match change.refuse(&stored(&reply)).await {
                    Ok(()) => {
                        self.rules
                            .compare_in_shadow(ask.clone(), current, Err(rejection));
                        reply
                    }
                    Err(e) => store_failure(e),
                });
            }
            Err(e) => return Step::Done(rules_failure(rules, e)),
        };
        let events = match self.encode_events(&decision) {
            Ok(events) => events,
            Err(reply) => return Step::Done(reply),
        };
        let movement = Movement {
            operation: planned.operation,
            quantity: planned.quantity,
            level_after: decision.level,
            rules: RulesStamp {
                name: rules.name.clone(),
                version: rules.version.clone(),
                digest: rules.digest.clone(),
            },
            request_id: planned.request_id,
            trace_id: planned.trace_id.clone(),
        };
        let reply = Reply::Ok {
            sku: ask.sku.clone(),
            level: decision.level,
        };
        match change.commit(&movement, &events, &stored(&reply)).await {
            Ok(()) => {
                if !events.is_empty() {
                    self.relay_wake.notify_one();
                }
                self.rules
                    .compare_in_shadow(ask.clone(), current, Ok(decision));
                Step::Done(reply)
            }
            Err(StoreError::Contended) => Step::Retry,
            Err(e) => Step::Done(store_failure(e)),
        }
    }

    /// Asks the rules, timed and traced; counts violations.
    async fn decide(
        &self,
        rules: &Rules,
        ask: &rules::Request,
        current: Option<u32>,
    ) -> Result<crate::rules::state::Outcome, CallError> {
        let span = tracing::info_span!(
            "rules.decide",
            rules.name = %rules.name,
            rules.version = %rules.version,
            rules.digest = %rules.digest,
            beaker.operation = %rules::describe_operation(ask.operation),
            beaker.current = current.map_or(-1, i64::from),
            beaker.rules.violation = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self
            .rules
            .engine()
            .decide(rules, ask, current)
            .instrument(span.clone())
            .await;
        self.metrics.rules_duration.record(
            started.elapsed().as_secs_f64(),
            &[opentelemetry::KeyValue::new(
                "rules.name",
                rules.name.clone(),
            )],
        );
        if let Err(e) = &result {
            span.record("beaker.rules.violation", e.kind());
            span.record("otel.status_code", "ERROR");
            self.metrics
                .violations
                .add(1, &[opentelemetry::KeyValue::new("kind", e.kind())]);
        }
        result
    }

    /// Serializes the decision's events, checked against their schema,
    /// for the outbox.
    fn encode_events(&self, decision: &Decision) -> Result<Vec<OutboxEvent>, Reply> {
        let mut encoded = Vec::with_capacity(decision.events.len());
        for event in &decision.events {
            match event {
                Event::LowStock(low) => {
                    let value = serde_json::json!(LowStockEvent {
                        sku: low.sku.clone(),
                        level: low.level,
                    });
                    if let Err(e) = self.schemas.check_low_stock_event(&value) {
                        tracing::error!(error = %e, "rules asked for an invalid low-stock event");
                        return Err(internal());
                    }
                    // The event carries the request's trace context, so
                    // that a consumer continues the same trace.
                    encoded.push(OutboxEvent {
                        msg_id: Uuid::now_v7(),
                        subject: LOW_STOCK_SUBJECT.to_string(),
                        payload: value.to_string(),
                        headers: crate::telemetry::current_trace_headers(),
                    });
                }
            }
        }
        Ok(encoded)
    }

    /// Sends the reply with the micro error headers, after checking it
    /// against the response schema, and records it in the statistics.
    async fn send(&self, endpoint: Endpoint, message: &Message, reply: &Reply, received: Instant) {
        let checked = self.checked(endpoint, reply);
        let reply = checked.as_ref().unwrap_or(reply);
        let body = Bytes::from(reply.body_text());
        let error = reply.failure();
        self.registry.record(endpoint, received.elapsed(), error);
        let Some(reply_to) = message.reply.clone() else {
            tracing::debug!("request without a reply subject; nothing to answer");
            return;
        };
        let result = match error {
            None => self.client.publish(reply_to, body).await,
            Some((code, message)) => {
                let mut headers = HeaderMap::new();
                let status = ErrorCode::from_code(code).map_or("Error", ErrorCode::status);
                headers.insert(ERROR_HEADER, header_text(message, status));
                headers.insert(ERROR_CODE_HEADER, code.to_string().as_str());
                self.client
                    .publish_with_headers(reply_to, headers, body)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot send a reply");
        }
    }

    /// `None` when the reply matches its schema; otherwise the 500 to send
    /// instead. Stored replies were checked when first sent.
    fn checked(&self, endpoint: Endpoint, reply: &Reply) -> Option<Reply> {
        if matches!(reply, Reply::Replay { .. }) {
            return None;
        }
        let value: Value = serde_json::from_str(&reply.body_text()).ok()?;
        match self.schemas.check_response(endpoint, &value) {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "reply does not match its schema; sending 500");
                Some(internal())
            }
        }
    }
}

/// An add or remove to apply, the same on every attempt and whether it
/// is applied alone or in a group.
#[derive(Debug, Clone)]
pub struct PendingChange {
    /// The rules active when the request arrived: they decide it.
    rules: Arc<Rules>,
    ask: rules::Request,
    operation: &'static str,
    quantity: u32,
    key: Option<IdempotencyKey>,
    request_id: Uuid,
    /// The request's span, parent of the transaction that applies it.
    span: tracing::Span,
    trace_id: Option<String>,
}

/// A request, once checked.
enum Prepared {
    /// Nothing to execute: the reply says what is wrong.
    Answer(Reply),
    Get(StockRequest),
    Change(Box<PendingChange>),
}

/// How one attempt at a change ended.
enum Step {
    Done(Reply),
    /// The product was created concurrently: decide again.
    Retry,
    /// Another transaction holds the row, and the caller would not wait.
    Busy,
}

/// Resolves while the NATS connection is down (never, if its watch is gone).
async fn link_down(link: &mut watch::Receiver<Link>) {
    if link.wait_for(|l| !l.up).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The current trace's id, for the ledger.
fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let context = tracing::Span::current().context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The reply as it is stored under an idempotency key.
fn stored(reply: &Reply) -> StoredReply {
    StoredReply {
        body: reply.body_text(),
        error: reply.failure().map(|(c, m)| (c, m.to_string())),
    }
}

/// Checks a caller's idempotency key and fingerprints the request.
fn idempotency_key(
    key: &str,
    endpoint: Endpoint,
    canonical: &str,
    ttl: Duration,
) -> Result<IdempotencyKey, Reply> {
    let valid =
        !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(Reply::error(
            ErrorCode::BadRequest,
            format!(
                "the {IDEMPOTENCY_HEADER} header (idempotency key) must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ),
        ));
    }
    let mut hasher = Sha256::new();
    hasher.update(endpoint.subject().as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    let request_hash = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(IdempotencyKey {
        key: key.to_string(),
        endpoint: endpoint.name(),
        request_hash,
        ttl,
    })
}

fn key_reused(key: &str) -> Reply {
    Reply::error(
        ErrorCode::Conflict,
        format!("idempotency key {key} was already used for a different request"),
    )
}

fn contended() -> Reply {
    Reply::error(
        ErrorCode::Unavailable,
        "the product is being changed by many requests at once; try again",
    )
}

fn internal() -> Reply {
    Reply::error(ErrorCode::Internal, "internal error; nothing was changed")
}

/// Turns raw bytes into a schema-valid request (and its canonical JSON
/// text), or the reply that says precisely what is wrong with them. Never
/// panics, whatever the bytes: the fuzz target `request` holds it to that.
pub fn decode_request(
    schemas: &Schemas,
    endpoint: Endpoint,
    payload: &[u8],
    max_request_bytes: usize,
) -> Result<(StockRequest, String), Reply> {
    let bad = |message: String| Reply::error(ErrorCode::BadRequest, message);
    if payload.len() > max_request_bytes {
        return Err(bad(format!(
            "request body is {} bytes; at most {max_request_bytes} are accepted",
            payload.len()
        )));
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(format!(
            "request body is empty: send a JSON object such as {}",
            example(endpoint)
        )));
    }
    let text = std::str::from_utf8(payload).map_err(|e| {
        bad(format!(
            "request body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| bad(format!("request body is not valid JSON: {e}")))?;
    schemas
        .check_request(endpoint, &value)
        .map_err(|e| bad(format!("invalid {} request: {e}", endpoint.subject())))?;
    // Keys sort, so this text is the same for the same request.
    let canonical = value.to_string();
    let request = serde_json::from_value(value).map_err(|e| {
        // The schema and the type agree, so this is a defect.
        Reply::error(
            ErrorCode::Internal,
            format!("cannot decode a schema-valid request: {e}"),
        )
    })?;
    Ok((request, canonical))
}

/// The reply to a request the rules refused.
pub fn rejected(rejection: Rejection) -> Reply {
    match rejection {
        Rejection::InvalidRequest(m) => Reply::error(ErrorCode::BadRequest, m),
        Rejection::UnknownProduct(m) => Reply::error(ErrorCode::NotFound, m),
        Rejection::RuleViolated(m) => Reply::error(ErrorCode::Conflict, m),
    }
}

fn rules_failure(rules: &Rules, error: CallError) -> Reply {
    tracing::error!(
        violation = error.kind(),
        error = %error,
        rules = %rules.name,
        rules_version = %rules.version,
        "rules call failed"
    );
    match error {
        CallError::Exhausted(_) => Reply::error(
            ErrorCode::Unavailable,
            "the service is busy; try again shortly",
        ),
        _ => Reply::error(
            ErrorCode::Internal,
            "the inventory rules failed on this request; nothing was changed",
        ),
    }
}

fn store_failure(error: StoreError) -> Reply {
    match error {
        StoreError::Unavailable(detail) => {
            tracing::error!(error = %detail, "database unavailable");
            Reply::error(
                ErrorCode::Unavailable,
                "the inventory database is unavailable; try again later",
            )
        }
        StoreError::CommitUnknown(detail) => {
            tracing::error!(error = %detail, "the database connection failed while committing");
            Reply::error(
                ErrorCode::Unavailable,
                "the inventory database failed while committing this change: it may or may \
                 not have been applied; retry with the same Nats-Msg-Id to find out",
            )
        }
        other => {
            tracing::error!(error = %other, "database failure");
            internal()
        }
    }
}

/// A header value: the message if it is a valid header value, else the
/// status text. Header values cannot carry line breaks.
fn header_text(message: &str, fallback: &str) -> HeaderValue {
    let clean: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clean
        .parse::<HeaderValue>()
        .unwrap_or_else(|_| HeaderValue::from(fallback))
}

fn example(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Get => r#"{"product-sku":"widget-1"}"#,
        _ => r#"{"product-sku":"widget-1","quantity":5}"#,
    }
}
