//! The HTTP gateway as an HTTP caller sees it: each route, the header
//! mapping, authentication, allow-lists, the error statuses, the body
//! limit, and answers identical to those NATS clients get.
//!
//! One module per topic; the helpers several of them share live here.

mod auth;
mod forwarding;
mod headers;
mod limits;
pub mod operator;
mod sse;

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use beaker_testkit::TestEnv;
use futures::StreamExt;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(10);

fn decode(data: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(data.as_str().unwrap_or_default())
        .unwrap_or_default()
}

/// Subscribes to every subject on the test's private NATS server, runs
/// `refused` (which must forward nothing), then sends `marker` through the
/// gateway's own connection. The server delivers one connection's messages
/// in order, so every message the gateway published before the marker is
/// in the subscription ahead of it. Returns the subjects seen before the
/// marker, leaving out the server's own traffic (JetStream API calls and
/// advisories, replies to inboxes), which the host's rules-bucket watcher
/// and relay cause at any moment and none of the refused subjects is.
async fn forwarded_before_marker<F, Fut>(env: &TestEnv, refused: F) -> Result<Vec<String>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut everything = env.client.subscribe(">").await?;
    beaker_testkit::server_roundtrip(&env.client).await?;
    refused().await?;
    let marker = r#"{"product-sku":"marker-7"}"#;
    let reply = env.http()?.request("stock.get", marker).await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout(LONG, everything.next())
            .await
            .context("the marker never arrived")?
            .context("subscription ended")?;
        if message.subject.as_str() == "stock.get" && &message.payload[..] == marker.as_bytes() {
            return Ok(seen);
        }
        let subject = message.subject.as_str();
        if !subject.starts_with("$JS.") && !subject.starts_with("_INBOX.") {
            seen.push(subject.to_string());
        }
    }
}
