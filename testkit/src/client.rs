//! A NATS client's view: requests and their answers, and waiting for the
//! server or for a condition without sleeping blindly.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde_json::Value;

/// A reply as a client sees it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub raw: Bytes,
    pub body: Value,
    /// `Nats-Service-Error-Code`, if present.
    pub code: Option<u16>,
    /// `Nats-Service-Error`, if present.
    pub error: Option<String>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.body["ok"] == true && self.code.is_none()
    }

    /// The level reported by a successful reply.
    pub fn level(&self) -> Option<i64> {
        self.body["quantity"].as_i64()
    }
}

/// Sends one request and returns the reply.
pub async fn call(
    client: &async_nats::Client,
    subject: &str,
    payload: impl Into<Bytes>,
) -> Result<Answer> {
    let message = client
        .request(subject.to_string(), payload.into())
        .await
        .with_context(|| format!("request on {subject}"))?;
    Ok(answer_from(message))
}

pub fn answer_from(message: async_nats::Message) -> Answer {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.to_string())
    };
    let code = header("Nats-Service-Error-Code").and_then(|c| c.parse().ok());
    let error = header("Nats-Service-Error");
    let body = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
    Answer {
        raw: message.payload.clone(),
        body,
        code,
        error,
    }
}

/// Sends a request carrying headers.
pub async fn call_with_headers(
    client: &async_nats::Client,
    subject: &str,
    headers: &[(&str, &str)],
    payload: impl Into<Bytes>,
) -> Result<Answer> {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, *value);
    }
    let message = client
        .request_with_headers(subject.to_string(), map, payload.into())
        .await
        .with_context(|| format!("request on {subject}"))?;
    Ok(answer_from(message))
}

/// Returns once the server has processed everything this client sent
/// before the call, subscriptions included.
///
/// `Client::flush` only writes the buffer to the socket; a request another
/// connection sends right after may reach the server first and find no
/// subscriber. A message published to a fresh inbox comes back only after
/// the server has read every earlier command on this connection, in order.
pub async fn server_roundtrip(client: &async_nats::Client) -> Result<()> {
    use futures::StreamExt;
    let inbox = client.new_inbox();
    let mut probe = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, Bytes::new()).await?;
    tokio::time::timeout(Duration::from_secs(30), probe.next())
        .await
        .context("the server did not echo a message within 30 s")?
        .context("the probe subscription ended")?;
    Ok(())
}

/// Polls `probe` until it returns true, or fails after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
