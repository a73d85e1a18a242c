//! The low-stock event reaches the JetStream stream if and only if its
//! change committed: after a remove leaves fewer than 10 units, never for a
//! refused remove, never for adds, never for a change that fails after the
//! rules decided.

use anyhow::Result;
use beaker_testkit::{Contract, EVENTS_STREAM, TestEnv};
use serde_json::{Value, json};

fn payloads(events: &[beaker_testkit::StreamEvent]) -> Vec<Value> {
    events.iter().map(|e| e.payload.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_stock_is_announced_exactly_when_due() -> Result<()> {
    let env = TestEnv::start("low_stock_due").await?;
    let contract = Contract::load()?;
    env.add("sprocket", 12).await?;
    env.remove("sprocket", 2).await?; // 10 left: not low
    env.remove("sprocket", 1).await?; // 9 left: low
    env.remove("sprocket", 50).await?; // refused: nothing
    env.add("sprocket", 1).await?; // adds never announce
    env.remove("sprocket", 10).await?; // 0 left: low

    let events = env.published_events().await?;
    for event in &events {
        contract.assert_valid("low-stock.event.json", &event.payload);
        assert_eq!(event.subject, "events.low_stock");
    }
    assert_eq!(
        payloads(&events),
        vec![
            json!({"product-sku": "sprocket", "stock-level": 9}),
            json!({"product-sku": "sprocket", "stock-level": 0}),
        ]
    );
    // Each carries its outbox row's id as Nats-Msg-Id, and nothing else is
    // in the outbox.
    let ids: Vec<String> = events.iter().filter_map(|e| e.msg_id.clone()).collect();
    assert_eq!(ids, env.db.outbox_ids().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_invalid_removes_announce_nothing() -> Result<()> {
    let env = TestEnv::start("refused_no_event").await?;
    env.add("washer", 5).await?;
    env.remove("washer", 6).await?; // more than in stock
    env.remove("unknown", 1).await?; // unknown product
    env.call("stock.remove", r#"{"product-sku":"washer","quantity":0}"#)
        .await?;
    assert!(env.published_events().await?.is_empty());
    assert_eq!(env.db.count("outbox").await?, 0);
    assert_eq!(env.db.level("washer").await?, Some(5));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_fails_after_the_rules_decided_announces_nothing() -> Result<()> {
    let env = TestEnv::start("failed_commit_no_event").await?;
    env.add("boom", 20).await?;
    // Make the ledger insert of this product fail, after the rules have
    // decided a low-stock remove.
    sqlx::raw_sql(
        "CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'injected failure'; END; $$; \
         CREATE TRIGGER fail_boom BEFORE INSERT ON stock_movements \
         FOR EACH ROW WHEN (NEW.product_sku = 'boom' AND NEW.operation = 'remove') \
         EXECUTE FUNCTION fail_boom();",
    )
    .execute(&env.db.pool)
    .await?;

    let reply = env.remove("boom", 15).await?;
    assert_eq!(reply.code, Some(500), "{:?}", reply.body);
    let message = reply.body["error"].as_str().unwrap_or_default();
    assert!(!message.contains("injected"), "no internals: {message}");
    assert_eq!(env.db.level("boom").await?, Some(20));
    assert_eq!(env.db.count("outbox").await?, 0);
    assert!(env.published_events().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_created_with_the_configured_limits() -> Result<()> {
    let env = TestEnv::start_with("stream_config", |c| {
        c.env("BEAKER_EVENTS_MAX_AGE", "3d")
            .env("BEAKER_EVENTS_DUPLICATE_WINDOW", "30m")
    })
    .await?;
    let js = async_nats::jetstream::new(env.client.clone());
    let mut stream = js.get_stream(EVENTS_STREAM).await?;
    let config = stream.info().await?.config.clone();
    assert_eq!(config.subjects, vec!["events.>".to_string()]);
    assert_eq!(config.max_age, std::time::Duration::from_secs(3 * 86_400));
    assert_eq!(
        config.duplicate_window,
        std::time::Duration::from_secs(1_800)
    );
    assert_eq!(
        config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    Ok(())
}
