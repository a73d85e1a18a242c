//! The `stock.*` endpoints on NATS: the queue-group subscriptions, which
//! requests are taken and which are told the service is busy, and the
//! replies with the NATS micro error headers. What a request means is the
//! inventory core's business ([`crate::inventory`]); this module only
//! carries it.
//!
//! - [`admission`]: the limit of requests in flight, and the bounded wait
//!   for a slot;
//! - [`answer`]: one request's span, its reply checked and sent;
//! - [`micro`]: discovery (`$SRV.PING|INFO|STATS`) and statistics.

mod admission;
mod answer;
pub mod micro;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{Client, Message, Subscriber};
use futures::{FutureExt, StreamExt};
use opentelemetry::KeyValue;
use tokio::sync::watch;
use tokio::time::Instant;

pub use admission::{Admission, AdmissionSettings, Busy};

use crate::contract::wire::{Endpoint, ErrorCode, Reply, TIMEOUT_HEADER};
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::nats::link::{self, Link};
use crate::shutdown::stopped;
use micro::Registry;

/// The transport: subscriptions in, replies out.
pub struct Service {
    inventory: Arc<Inventory>,
    client: Client,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    admission: Arc<Admission>,
    /// When "busy" was last logged (ms since `started`): a burst is one
    /// warning every few seconds, not one per request.
    busy_logged_at: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}

/// How often a burst refused as busy is logged.
const BUSY_LOG_EVERY: Duration = Duration::from_secs(5);

impl Service {
    pub fn new(
        inventory: Arc<Inventory>,
        client: Client,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        admission: AdmissionSettings,
    ) -> Arc<Self> {
        let admission = Arc::new(Admission::new(admission));
        metrics.observe_admission(admission.clone());
        Arc::new(Self {
            inventory,
            client,
            registry,
            metrics,
            admission,
            busy_logged_at: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        })
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

    /// Waits until every request taken in (processed or waiting for a
    /// slot) was answered.
    pub async fn finished(&self) {
        self.admission.finished().await;
    }

    /// Requests taken in and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.admission.taken()
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
                () = link::down(&mut link), if draining => {
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

    /// Hands a message to its own task, which waits for a slot if none is
    /// free; answers 503 at once when even the queue is full.
    async fn dispatch(self: &Arc<Self>, endpoint: Endpoint, message: Message) {
        let received = Instant::now();
        let place = match self.admission.enter() {
            Ok(place) => place,
            Err(busy) => return self.busy(endpoint, &message, received, busy).await,
        };
        let service = self.clone();
        tokio::spawn(async move {
            let deadline = caller_deadline(&message, received);
            match service.admission.slot(place, received, deadline).await {
                Ok(slot) => {
                    service.answer(endpoint, message, received).await;
                    drop(slot);
                }
                Err((busy, place)) => {
                    service.busy(endpoint, &message, received, busy).await;
                    drop(place);
                }
            }
        });
    }

    /// Answers 503: the instance is at its limit.
    async fn busy(&self, endpoint: Endpoint, message: &Message, received: Instant, busy: Busy) {
        self.metrics
            .busy
            .add(1, &[KeyValue::new("reason", busy.reason())]);
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.busy_logged_at.load(Ordering::Relaxed);
        if (last == u64::MAX || now.saturating_sub(last) >= BUSY_LOG_EVERY.as_millis() as u64)
            && self
                .busy_logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                endpoint = endpoint.name(),
                reason = busy.reason(),
                "at the limit of requests in flight: answering 503 (beaker_requests_busy_total counts them)"
            );
        }
        let reply = Reply::error(
            ErrorCode::Unavailable,
            "the service is busy; try again shortly",
        );
        self.send(endpoint, message, &reply, received).await;
        self.metrics.record_request(
            endpoint.name(),
            endpoint.subject(),
            ErrorCode::Unavailable.outcome(),
            received.elapsed(),
        );
    }
}

/// When the caller gives up, if it said so ([`TIMEOUT_HEADER`], in
/// milliseconds from when it sent the request): no use waiting longer.
fn caller_deadline(message: &Message, received: Instant) -> Option<Instant> {
    let value = message.headers.as_ref()?.get(TIMEOUT_HEADER)?;
    let millis: u64 = value.as_str().trim().parse().ok()?;
    Some(received + Duration::from_millis(millis))
}
