//! Stopping the service, in order, under one deadline: the gateway (its
//! callers are the service's callers too), the endpoints (what was received
//! is answered), the requests in flight, the watchers, the relay (it
//! publishes the last requests' events), the NATS connection, the pool,
//! telemetry. What needs a missing dependency is skipped; what the deadline
//! cuts off is reported, and the stop is then not clean (exit status 1).

use std::time::Duration;

use super::ServeError;
use super::start::Running;
use crate::shutdown::Deadline;

impl Running {
    pub(super) async fn stop(self) -> Result<(), ServeError> {
        let limit = self.shutdown_timeout;
        tracing::info!(
            deadline_ms = limit.as_millis() as u64,
            "shutting down: no new requests; answering those in flight"
        );
        let mut deadline = Deadline::after(limit);
        let _ = self.gateway_stop.send(true);
        if let Some(task) = self.gateway {
            match deadline.step("gateway", task).await {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(e))) => tracing::error!(error = %e, "gateway failed"),
                Some(Err(e)) => tracing::error!(error = %e, "gateway task failed"),
            }
        }
        let _ = self.stop.send(true);
        if let Some(Err(e)) = deadline.step("subscriptions", self.serving).await {
            tracing::error!(error = %e, "serving task failed");
        }
        if deadline
            .step("requests in flight", self.service.finished())
            .await
            .is_some()
        {
            tracing::info!("every request in flight was answered");
        }
        let abandoned = self.service.in_flight();
        if let Some(Err(e)) = deadline.step("discovery", self.discovery).await {
            tracing::error!(error = %e, "discovery task failed");
        }
        for task in self.rules_watchers {
            let _ = deadline.step("rules watchers", task).await;
        }
        let _ = deadline
            .step("events stream setup", self.stream_setup)
            .await;
        if let Some(task) = self.health {
            let _ = deadline.step("metrics endpoint", task).await;
        }
        let _ = self.relay_stop.send(true);
        if let Some(relay) = self.relay
            && let Some(Err(e)) = deadline.step("outbox relay", relay).await
        {
            tracing::error!(error = %e, "outbox relay failed");
        }
        let _ = deadline.step("outbox sampler", self.sampler).await;
        let _ = deadline.step("housekeeping", self.housekeeping).await;
        // Draining needs the server: with NATS away there is nothing to drain.
        let connected = self.client.connection_state() == async_nats::connection::State::Connected;
        if connected && let Some(Err(e)) = deadline.step("NATS drain", self.client.drain()).await {
            tracing::warn!(error = %e, "cannot drain the NATS connection");
        }
        let pending_events = match deadline.missed().is_empty() {
            true => None,
            false => Some(
                tokio::time::timeout(Duration::from_secs(1), self.store.outbox_backlog()).await,
            ),
        };
        let _ = deadline.step("database pool", self.store.close()).await;
        self.telemetry
            .flush(deadline.remaining().max(Duration::from_millis(200)))
            .await;
        if deadline.missed().is_empty() {
            tracing::info!("stopped");
            return Ok(());
        }
        let pending = match pending_events {
            Some(Ok(Ok((count, _)))) => count.to_string(),
            _ => "unknown (the database did not answer)".to_string(),
        };
        tracing::error!(
            deadline_ms = limit.as_millis() as u64,
            cut_off = %deadline.missed().join(", "),
            requests_in_flight = abandoned,
            outbox_pending = %pending,
            "stopped at the shutdown deadline: abandoned {abandoned} request(s) in flight \
             (their transactions roll back: nothing half-done is kept) and left {pending} \
             event(s) in the outbox (safe in Postgres: the next instance publishes them)"
        );
        Err(ServeError::ShutdownDeadline {
            limit,
            requests: abandoned,
        })
    }
}
