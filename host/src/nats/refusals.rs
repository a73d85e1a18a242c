//! What the server refuses: a subscription or publication a user may not
//! make is answered with an asynchronous `-ERR`, not with an error of the
//! call, so the refusals are collected from the connection's events and a
//! round trip confirms the server has taken everything sent before it.

use std::sync::Mutex;
use std::time::Duration;

use async_nats::Client;
use futures::StreamExt;
use tokio::sync::Notify;

use super::NatsError;

/// The permission violations the server reported on one connection.
///
/// The server answers a refused subscription or publication with an
/// asynchronous `-ERR`, not with an error of the call that caused it, so
/// a missing permission would otherwise only show as a service that never
/// receives requests, or as requests that time out.
#[derive(Debug, Default)]
pub struct Refusals {
    seen: Mutex<Vec<String>>,
    arrived: Notify,
}

impl Refusals {
    /// Every refusal so far, as the server worded it.
    pub fn all(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }

    pub(super) fn record(&self, what: String) {
        if let Ok(mut seen) = self.seen.lock()
            && !seen.contains(&what)
        {
            seen.push(what);
        }
        self.arrived.notify_waiters();
    }
}

/// How long the event callback gets to hand over a refusal the server
/// reported before a round trip completed. The refusal is already queued
/// for the callback, which runs as a task of its own; this bounds the wait
/// for that task to be scheduled.
const REFUSAL_HANDOVER: Duration = Duration::from_millis(50);

/// Makes sure the server has taken every subscription and publication made
/// so far on `client`, and fails with what it refused. A message sent to
/// the client's own inbox comes back only after the server has answered
/// everything sent before it, refusals included.
pub async fn confirm(
    client: &Client,
    refusals: &Refusals,
    timeout: Duration,
) -> Result<(), NatsError> {
    let inbox = client.new_inbox();
    let lost = |e: &dyn std::fmt::Display| NatsError::Connect {
        url: "the connected server".to_string(),
        reason: e.to_string(),
    };
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| lost(&e))?;
    client
        .publish(inbox, bytes::Bytes::new())
        .await
        .map_err(|e| lost(&e))?;
    client.flush().await.map_err(|e| lost(&e))?;
    let returned = tokio::time::timeout(timeout, echo.next()).await;
    let _ = echo.unsubscribe().await;
    // Wait for the first refusal, then for the callback to hand over the
    // others the server reported with it.
    let mut wait = match refusals.all().is_empty() {
        true => REFUSAL_HANDOVER,
        false => REFUSAL_HANDOVER / 5,
    };
    while tokio::time::timeout(wait, refusals.arrived.notified())
        .await
        .is_ok()
    {
        wait = REFUSAL_HANDOVER / 5;
    }
    let refused = refusals.all();
    if !refused.is_empty() {
        return Err(NatsError::Forbidden(refused));
    }
    match returned {
        Ok(Some(_)) => Ok(()),
        _ => Err(NatsError::NoEcho(timeout)),
    }
}
