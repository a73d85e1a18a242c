//! `beaker gateway`: the HTTP gateway on its own, in front of any number of
//! service instances, until SIGINT or SIGTERM; then its requests in flight
//! are finished and the connection drained, under one deadline.

use std::time::Duration;

use tokio::sync::watch;

use super::GatewaySettings;
use crate::gateway::{Gateway, GatewayError};
use crate::nats::{self, NatsError, Observers, redact_nats_urls};
use crate::shutdown::{Deadline, wait_for_signal};

/// Why `beaker gateway` could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum GatewayRunError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error("the stop took longer than its deadline of {0:?} (--shutdown-timeout)")]
    Deadline(Duration),
}

pub async fn run_gateway(settings: GatewaySettings) -> Result<(), GatewayRunError> {
    let client = nats::connect(&settings.nats, "beaker-gateway", Observers::default()).await?;
    let gateway = Gateway::bind(settings.gateway).await?;
    let addr = gateway.local_addr();
    let (stop, stop_rx) = watch::channel(false);
    let limit = settings.shutdown_timeout;
    let task = tokio::spawn(gateway.serve(client.clone(), stop_rx, limit));
    tracing::info!(
        addr = %addr,
        nats = %redact_nats_urls(&settings.nats.servers),
        "ready"
    );
    wait_for_signal().await.map_err(GatewayRunError::Signals)?;
    tracing::info!("shutting down: no new HTTP requests; finishing those in flight");
    let mut deadline = Deadline::after(limit);
    let _ = stop.send(true);
    match deadline.step("gateway", task).await {
        Some(Ok(result)) => result?,
        Some(Err(e)) => tracing::error!(error = %e, "gateway task failed"),
        None => {}
    }
    let connected = client.connection_state() == async_nats::connection::State::Connected;
    if connected && let Some(Err(e)) = deadline.step("NATS drain", client.drain()).await {
        tracing::warn!(error = %e, "cannot drain the NATS connection");
    }
    if !deadline.missed().is_empty() {
        return Err(GatewayRunError::Deadline(limit));
    }
    tracing::info!("stopped");
    Ok(())
}
