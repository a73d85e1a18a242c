//! Faults lose no event and invent none: a backlog left by a crashed host,
//! a NATS outage in the middle of relaying, and several relays at once all
//! end with every committed event in the stream exactly once.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use beaker_testkit::{EVENTS_STREAM, TestEnv, stream_events};
use futures::stream::{self, StreamExt};
use nix::sys::signal::Signal;

/// Stocks `count` products with 5 units each, directly.
async fn stock_products(env: &TestEnv, prefix: &str, count: usize) -> Result<Vec<String>> {
    let skus: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    sqlx::query("INSERT INTO inventory (product_sku, stock_level) SELECT unnest($1::text[]), 5")
        .bind(&skus)
        .execute(&env.db.pool)
        .await?;
    Ok(skus)
}

/// Removes one unit of each product (each leaves 4: a low-stock event),
/// 32 requests at a time; every one must succeed.
async fn remove_one_of_each(env: &TestEnv, skus: &[String]) -> Result<()> {
    let results: Vec<Result<beaker_testkit::Answer>> = stream::iter(skus)
        .map(|sku| env.remove(sku, 1))
        .buffer_unordered(32)
        .collect()
        .await;
    for result in results {
        let answer = result?;
        assert!(answer.ok(), "{:?}", answer.body);
    }
    Ok(())
}

/// The stream holds exactly the outbox's events, each once.
async fn assert_exactly_once(env: &TestEnv, expected: usize) -> Result<()> {
    env.db.wait_outbox_drained(Duration::from_secs(60)).await?;
    let events = stream_events(&env.client, EVENTS_STREAM).await?;
    let ids: Vec<String> = events.iter().filter_map(|e| e.msg_id.clone()).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    let committed: HashSet<String> = env.db.outbox_ids().await?.into_iter().collect();
    assert_eq!(committed.len(), expected, "committed events");
    assert_eq!(
        events.len(),
        expected,
        "events in the stream (duplicates or losses)"
    );
    assert_eq!(unique.len(), expected, "distinct Nats-Msg-Id in the stream");
    assert_eq!(
        unique.into_iter().cloned().collect::<HashSet<String>>(),
        committed,
        "the stream holds exactly the committed events"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_host_killed_before_publishing_are_published_once_after_restart() -> Result<()>
{
    // The first host commits but never relays (as if it died between
    // commit and publish); then it is killed outright.
    let mut env = TestEnv::start_with("killed_before_publish", |c| {
        c.env("BEAKER_OUTBOX_RELAY", "false")
    })
    .await?;
    let skus = stock_products(&env, "k", 50).await?;
    remove_one_of_each(&env, &skus).await?;
    assert_eq!(env.db.pending_events().await?, 50);
    env.beaker
        .signal_and_wait(Signal::SIGKILL, Duration::from_secs(5))?;

    // A new host finds the backlog and publishes it.
    let _restarted = env.start_another(|c| c)?;
    assert_exactly_once(&env, 50).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_while_relaying_loses_and_duplicates_nothing() -> Result<()> {
    let mut env = TestEnv::start_with("nats_outage_relay", |c| {
        c.env("BEAKER_OUTBOX_RELAY", "false")
    })
    .await?;
    let skus = stock_products(&env, "o", 1500).await?;
    remove_one_of_each(&env, &skus).await?;
    assert_eq!(env.db.pending_events().await?, 1500);

    // A relaying host starts on the backlog, in small batches so that the
    // outage lands in the middle of it; NATS dies under it and comes back
    // (same port, same JetStream store).
    let _relay = env.start_another(|c| c.env("BEAKER_OUTBOX_BATCH_SIZE", "5"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while env.db.pending_events().await? == 1500 {
        assert!(
            std::time::Instant::now() < deadline,
            "the relay never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    env.nats.kill();
    let pending = env.db.pending_events().await?;
    assert!(
        pending > 0,
        "the outage must hit a backlog (it was already drained)"
    );
    env.nats.restart()?;
    // The host's client reconnects by itself; the relay retries with back-off.
    env.client = env.nats.client().await?;
    assert_exactly_once(&env, 1500).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_waits_out_an_outage_and_drains_when_nats_returns() -> Result<()> {
    let mut env = TestEnv::start("outage_backlog").await?;
    let skus = stock_products(&env, "b", 20).await?;
    remove_one_of_each(&env, &skus[..10]).await?;
    env.db.wait_outbox_drained(Duration::from_secs(30)).await?;

    // The stream disappears (the events have nowhere to go), then NATS
    // goes away entirely: commits keep their events in the outbox.
    let js = async_nats::jetstream::new(env.client.clone());
    js.delete_stream(EVENTS_STREAM).await?;
    remove_one_of_each(&env, &skus[10..]).await?;
    env.nats.kill();
    assert_eq!(env.db.pending_events().await?, 10);

    env.nats.restart()?;
    env.client = env.nats.client().await?;
    // The relay recreates the stream and publishes the ten that waited;
    // the first ten went with the deleted stream.
    env.db.wait_outbox_drained(Duration::from_secs(60)).await?;
    let events = stream_events(&env.client, EVENTS_STREAM).await?;
    assert_eq!(events.len(), 10);
    let later: HashSet<String> = sqlx::query_scalar(
        "SELECT msg_id::text FROM outbox o JOIN stock_movements m USING (request_id) \
         WHERE m.product_sku = ANY($1)",
    )
    .bind(&skus[10..])
    .fetch_all(&env.db.pool)
    .await?
    .into_iter()
    .collect();
    let published: HashSet<String> = events.into_iter().filter_map(|e| e.msg_id).collect();
    assert_eq!(published, later);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_a_backlog_without_duplicates() -> Result<()> {
    let env = TestEnv::start_with("two_relays", |c| c.env("BEAKER_OUTBOX_RELAY", "false")).await?;
    let skus = stock_products(&env, "t", 1000).await?;
    remove_one_of_each(&env, &skus).await?;
    assert_eq!(env.db.pending_events().await?, 1000);

    let first = std::thread::spawn({
        let config = beaker_testkit::BeakerConfig::new("two_relays", &env.nats, &env.db);
        move || beaker_testkit::Beaker::start(&config)
    });
    let second = env.start_another(|c| c)?;
    let first = first
        .join()
        .map_err(|_| anyhow::anyhow!("start panicked"))??;
    assert_exactly_once(&env, 1000).await?;
    drop((first, second));
    Ok(())
}
