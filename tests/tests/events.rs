//! The low-stock event: published after a committed remove leaves fewer
//! than 10 units, never for a refused one, never for adds.

use anyhow::Result;
use beaker_tests::{Contract, TestEnv};
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};

/// Collects what arrives on `events.low_stock` until a marker request has
/// been answered and flushed through the same server.
async fn events_during<F, Fut>(env: &TestEnv, work: F) -> Result<Vec<Value>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut sub = env.client.subscribe("events.low_stock").await?;
    env.client.flush().await?;
    work().await?;
    // The service publishes an event before it answers, on one connection,
    // and the server delivers in that order to our one connection, which
    // dispatches in order too: once the marker's reply is here, every
    // earlier event is already in the subscription's buffer.
    env.get("marker").await?;
    let mut events = Vec::new();
    while let Some(Some(message)) = sub.next().now_or_never() {
        events.push(serde_json::from_slice(&message.payload)?);
    }
    Ok(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_stock_is_announced_exactly_when_due() -> Result<()> {
    let env = TestEnv::start("low_stock_due").await?;
    let contract = Contract::load()?;
    env.add("sprocket", 12).await?;

    let events = events_during(&env, || async {
        env.remove("sprocket", 2).await?; // 10 left: not low
        env.remove("sprocket", 1).await?; // 9 left: low
        env.remove("sprocket", 50).await?; // refused: nothing
        env.add("sprocket", 1).await?; // adds never announce
        env.remove("sprocket", 10).await?; // 0 left: low
        Ok(())
    })
    .await?;

    for event in &events {
        contract.assert_valid("low-stock.event.json", event);
    }
    assert_eq!(
        events,
        vec![
            json!({"product-sku": "sprocket", "stock-level": 9}),
            json!({"product-sku": "sprocket", "stock-level": 0}),
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_invalid_removes_announce_nothing() -> Result<()> {
    let env = TestEnv::start("refused_no_event").await?;
    env.add("washer", 5).await?;
    let events = events_during(&env, || async {
        env.remove("washer", 6).await?; // more than in stock
        env.remove("unknown", 1).await?; // unknown product
        env.call("stock.remove", r#"{"product-sku":"washer","quantity":0}"#)
            .await?;
        Ok(())
    })
    .await?;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(env.db.level("washer").await?, Some(5));
    Ok(())
}
