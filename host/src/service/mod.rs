//! The `stock.*` endpoints on NATS: the queue-group subscriptions, the
//! limit of requests in flight, and the replies with the NATS micro error
//! headers. What a request means is the inventory core's business
//! ([`crate::inventory`]); this module only carries it.
//!
//! - [`answer`]: one request's span, its reply checked and sent;
//! - [`micro`]: discovery (`$SRV.PING|INFO|STATS`) and statistics.

mod answer;
pub mod micro;

use std::sync::Arc;
use std::time::Instant;

use async_nats::{Client, Message, Subscriber};
use futures::{FutureExt, StreamExt};
use tokio::sync::{Semaphore, watch};

use crate::contract::wire::{Endpoint, ErrorCode, Reply};
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
    max_in_flight: u32,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl Service {
    pub fn new(
        inventory: Arc<Inventory>,
        client: Client,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        max_in_flight: u32,
    ) -> Arc<Self> {
        let max_in_flight = max_in_flight.max(1);
        Arc::new(Self {
            inventory,
            client,
            registry,
            metrics,
            max_in_flight,
            permits: Arc::new(Semaphore::new(max_in_flight as usize)),
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

    /// Waits until every request in flight was answered: every permit back.
    pub async fn finished(&self) {
        let _ = self.permits.acquire_many(self.max_in_flight).await;
    }

    /// Requests being processed now.
    pub fn in_flight(&self) -> usize {
        (self.max_in_flight as usize).saturating_sub(self.permits.available_permits())
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
}
