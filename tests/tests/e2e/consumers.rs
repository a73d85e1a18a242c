//! The example from docs/events.md for event consumers: a durable
//! consumer goes away, comes back, and receives exactly what it missed.

use std::time::Duration;

use anyhow::Result;
use async_nats::jetstream::{self, consumer::pull};
use beaker_testkit::{EVENTS_STREAM, TestEnv};
use futures::StreamExt;
use serde_json::Value;

/// Fetches whatever is pending for the durable consumer, acking each.
async fn catch_up(client: &async_nats::Client) -> Result<Vec<Value>> {
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(EVENTS_STREAM).await?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            "reorder-service",
            pull::Config {
                durable_name: Some("reorder-service".into()),
                filter_subject: "events.low_stock".into(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    let mut received = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .expires(Duration::from_millis(500))
            .messages()
            .await?;
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!(e))?;
            received.push(serde_json::from_slice(&message.payload)?);
            message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
            got += 1;
        }
        if got == 0 {
            return Ok(received);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_consumer_receives_exactly_what_it_missed() -> Result<()> {
    let env = TestEnv::start("durable_consumer").await?;
    env.add("a", 12).await?;
    env.remove("a", 3).await?; // 9: low
    env.db.wait_outbox_drained(Duration::from_secs(30)).await?;
    let first = catch_up(&env.client).await?;
    assert_eq!(
        first,
        vec![serde_json::json!({"product-sku": "a", "stock-level": 9})]
    );

    // The consumer is offline (no connection at all) while events happen.
    env.remove("a", 1).await?; // 8
    env.add("a", 50).await?; // no event
    env.remove("a", 55).await?; // 3
    env.db.wait_outbox_drained(Duration::from_secs(30)).await?;

    // Back with a new connection: exactly the two it missed, in order.
    let client = env.nats.client().await?;
    let missed = catch_up(&client).await?;
    assert_eq!(
        missed,
        vec![
            serde_json::json!({"product-sku": "a", "stock-level": 8}),
            serde_json::json!({"product-sku": "a", "stock-level": 3}),
        ]
    );
    assert!(catch_up(&client).await?.is_empty(), "nothing twice");
    Ok(())
}
