//! Event subjects streamed as server-sent events, with the token in a
//! header or the query, and the streams closed cleanly on SIGTERM.

use anyhow::{Context, Result};
use beaker_testkit::{Contract, Http, TestEnv};
use serde_json::{Value, json};

use super::{LONG, decode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_stock_events_stream_as_server_sent_events() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_events").await?;
    let http = env.http()?;
    let contract = Contract::load()?;
    let mut with_header = http.subscribe("events.low_stock").await?;
    assert_eq!(
        with_header.content_type.as_deref(),
        Some("text/event-stream")
    );
    // A browser's EventSource cannot send headers: the token rides in the query.
    let mut with_query = EventStreamFromQuery::open(&http).await?;

    http.request("stock.add", r#"{"product-sku":"sse-1","quantity":12}"#)
        .await?;
    http.request("stock.remove", r#"{"product-sku":"sse-1","quantity":4}"#)
        .await?;
    for stream in [&mut with_header, &mut with_query.0] {
        let event = stream.next_event(LONG).await?.context("stream ended")?;
        assert_eq!(event.event, "msg");
        let envelope: Value = serde_json::from_str(&event.data)?;
        assert_eq!(envelope["subject"], "events.low_stock");
        let payload: Value = serde_json::from_slice(&decode(&envelope["data"]))?;
        contract.assert_valid("low-stock.event.json", &payload);
        assert_eq!(payload, json!({"product-sku": "sse-1", "stock-level": 8}));
    }
    Ok(())
}

struct EventStreamFromQuery(beaker_testkit::EventStream);

impl EventStreamFromQuery {
    async fn open(http: &Http) -> Result<Self> {
        let url = format!(
            "{}?authorization={}&idleHeartbeat=500",
            http.subject_url("events.low_stock"),
            http.token
        );
        let response = http.client.get(url).send().await?;
        Ok(Self(beaker_testkit::EventStream::from_response(response)?))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_event_streams_and_exits_cleanly() -> Result<()> {
    let mut env = TestEnv::start_with_gateway("gateway_sigterm").await?;
    let http = env.http()?;
    let mut stream = http.subscribe("events.low_stock").await?;
    let status = tokio::task::spawn_blocking(move || {
        let status = env
            .beaker
            .signal_and_wait(nix::sys::signal::Signal::SIGTERM, LONG);
        (env, status)
    });
    let closed = stream
        .next_event(LONG)
        .await?
        .context("ended without a closed event")?;
    assert_eq!(closed.event, "closed");
    let (env, status) = status.await?;
    assert!(status?.success());
    let log = env.beaker.log_lines();
    let gateway_stopped = log.iter().position(|l| l["message"] == "gateway stopped");
    let service_drained = log
        .iter()
        .position(|l| l["message"] == "every request in flight was answered");
    assert!(gateway_stopped.is_some(), "{log:?}");
    assert!(
        gateway_stopped < service_drained,
        "the gateway stops before the service"
    );
    Ok(())
}
