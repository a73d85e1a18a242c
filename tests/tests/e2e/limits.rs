//! Limits against abuse: the largest request body, the most requests in
//! flight and waiting for a slot, the longest wait, the longest database
//! statement. Each is pushed past and must give the caller a prompt, clear
//! answer and leave the books as they were.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use beaker_testkit::{Answer, TestEnv, answer_from, wait_until};
use bytes::Bytes;
use futures::StreamExt;

/// A valid add of one unit of `sku`, padded with spaces to `size` bytes.
fn padded_add(sku: &str, size: usize) -> Bytes {
    let mut body = format!(r#"{{"product-sku":"{sku}","quantity":1}}"#).into_bytes();
    assert!(body.len() <= size);
    body.resize(size, b' ');
    Bytes::from(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_configured_size_gets_a_400_naming_the_limit() -> Result<()> {
    let env = TestEnv::start_with("limits_request_size", |c| {
        c.env("BEAKER_MAX_REQUEST_BYTES", "64")
    })
    .await?;
    assert!(env.add("size-1", 5).await?.ok());

    // One byte over: refused, with the limit, whatever the body says.
    let over = env.call("stock.add", padded_add("size-1", 65)).await?;
    assert_eq!(over.code, Some(400), "{:?}", over.body);
    let message = over.body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("65 bytes") && message.contains("at most 64"),
        "{message}"
    );
    assert_eq!(env.db.level("size-1").await?, Some(5), "nothing changed");
    assert_eq!(env.db.count("stock_movements").await?, 1);

    // At the limit: served.
    let at = env.call("stock.add", padded_add("size-1", 64)).await?;
    assert!(at.ok(), "{:?}", at.body);
    assert_eq!(at.level(), Some(6));
    Ok(())
}

/// Replies on `{inbox}.N` subjects, by N, as they arrive.
async fn collect(
    replies: &mut async_nats::Subscriber,
    count: usize,
    within: Duration,
) -> Result<Vec<(usize, Answer, Instant)>> {
    let mut answers = Vec::new();
    while answers.len() < count {
        let Ok(Some(message)) = tokio::time::timeout(within, replies.next()).await else {
            bail!("only {} of {count} requests were answered", answers.len());
        };
        let n: usize = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        answers.push((n, answer_from(message), Instant::now()));
    }
    Ok(answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_waits_for_slots_and_beyond_the_queue_gets_an_immediate_503() -> Result<()> {
    const LIMIT: usize = 4;
    const WAITING: usize = 4;
    const EXTRA: usize = 8;
    let env = TestEnv::start_with("limits_in_flight", |c| {
        c.arg("--max-in-flight")
            .arg(LIMIT.to_string())
            .arg("--max-waiting")
            .arg(WAITING.to_string())
            // Long enough that nothing waiting gives up while the test
            // holds the row.
            .arg("--max-wait=60s")
            // Held requests must not time out while the test holds them.
            .env("BEAKER_DB_STATEMENT_TIMEOUT_MS", "60000")
    })
    .await?;
    assert!(env.add("busy-1", 10).await?.ok());
    let lock = env.db.lock_row("busy-1").await?;

    // LIMIT adds take every slot and wait for the row; then WAITING more
    // wait for a slot, and EXTRA find the queue full. Published in order
    // on one connection, so the host takes them in that order.
    let inbox = env.client.new_inbox();
    let mut replies = env.client.subscribe(format!("{inbox}.*")).await?;
    let body = Bytes::from_static(br#"{"product-sku":"busy-1","quantity":1}"#);
    for n in 0..LIMIT + WAITING + EXTRA {
        if n == LIMIT {
            env.client.flush().await?;
            wait_until(
                "the host to wait for the row",
                Duration::from_secs(30),
                || env.db.host_waits_for_a_lock(),
            )
            .await?;
        }
        env.client
            .publish_with_reply("stock.add", format!("{inbox}.{n}"), body.clone())
            .await?;
    }
    env.client.flush().await?;

    // Beyond the queue, every request is answered at once, while the row
    // is still locked: 503, the service is busy.
    let started = Instant::now();
    let answers = collect(&mut replies, EXTRA, Duration::from_secs(10)).await?;
    let waited = started.elapsed();
    for (n, answer, _) in &answers {
        assert!(
            *n >= LIMIT + WAITING,
            "request {n}, held or waiting, was answered: {:?}",
            answer.body
        );
        assert_eq!(answer.code, Some(503), "request {n}: {:?}", answer.body);
        let message = answer.body["error"].as_str().unwrap_or_default();
        assert!(message.contains("busy"), "{message}");
    }
    assert!(
        waited < Duration::from_secs(5),
        "busy answers took {waited:?}"
    );
    assert_eq!(env.db.level("busy-1").await?, Some(10));

    // Released, the held requests and those that waited are all served.
    lock.rollback().await?;
    let served = collect(&mut replies, LIMIT + WAITING, Duration::from_secs(30)).await?;
    for (n, answer, _) in &served {
        assert!(*n < LIMIT + WAITING, "request {n} answered twice");
        assert!(answer.ok(), "request {n}: {:?}", answer.body);
    }
    let total = (LIMIT + WAITING) as i32;
    assert_eq!(env.db.level("busy-1").await?, Some(10 + total));
    assert_eq!(env.db.count("stock_movements").await?, 1 + i64::from(total));
    assert!(env.add("busy-1", 1).await?.ok(), "serving again");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_a_slot_no_longer_than_max_wait_or_its_callers_timeout() -> Result<()> {
    let max_wait = Duration::from_millis(1500);
    let callers = Duration::from_millis(200);
    let env = TestEnv::start_with("limits_max_wait", |c| {
        c.arg("--max-in-flight=1")
            .arg(format!("--max-wait={}ms", max_wait.as_millis()))
            .env("BEAKER_DB_STATEMENT_TIMEOUT_MS", "60000")
    })
    .await?;
    assert!(env.add("wait-1", 10).await?.ok());
    let lock = env.db.lock_row("wait-1").await?;
    let inbox = env.client.new_inbox();
    let mut replies = env.client.subscribe(format!("{inbox}.*")).await?;
    let body = Bytes::from_static(br#"{"product-sku":"wait-1","quantity":1}"#);
    // Request 0 takes the one slot and waits for the row.
    env.client
        .publish_with_reply("stock.add", format!("{inbox}.0"), body.clone())
        .await?;
    env.client.flush().await?;
    wait_until(
        "the host to wait for the row",
        Duration::from_secs(30),
        || env.db.host_waits_for_a_lock(),
    )
    .await?;
    // Request 1 waits for the host's limit; request 2's caller says it
    // gives up sooner.
    let sent = Instant::now();
    env.client
        .publish_with_reply("stock.add", format!("{inbox}.1"), body.clone())
        .await?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Beaker-Timeout-Ms",
        callers.as_millis().to_string().as_str(),
    );
    env.client
        .publish_with_reply_and_headers("stock.add", format!("{inbox}.2"), headers, body)
        .await?;
    env.client.flush().await?;
    let answers = collect(&mut replies, 2, Duration::from_secs(10)).await?;
    let after = |n: usize| {
        answers
            .iter()
            .find(|(m, _, _)| *m == n)
            .map(|(_, answer, at)| (answer.code, at.duration_since(sent)))
    };
    let (code, took) = after(2).expect("request 2 answered first");
    assert_eq!(code, Some(503));
    assert!(
        took >= callers && took < max_wait,
        "the caller's timeout: answered after {took:?}"
    );
    let (code, took) = after(1).expect("request 1 answered");
    assert_eq!(code, Some(503));
    assert!(
        took >= max_wait && took < max_wait * 3,
        "the host's limit: answered after {took:?}"
    );

    lock.rollback().await?;
    let held = collect(&mut replies, 1, Duration::from_secs(30)).await?;
    assert!(held[0].1.ok(), "{:?}", held[0].1.body);
    assert_eq!(
        env.db.level("wait-1").await?,
        Some(11),
        "only the held request applied"
    );
    Ok(())
}

/// A change held by a lock longer than the statement timeout: a 503 within
/// about the timeout, and nothing written.
async fn statement_timeout(name: &str, group_commit: bool) -> Result<()> {
    // Long enough for the host's own statements on a busy machine.
    let timeout = Duration::from_millis(1000);
    let env = TestEnv::start_with(name, |c| {
        c.env(
            "BEAKER_DB_STATEMENT_TIMEOUT_MS",
            timeout.as_millis().to_string(),
        )
        .env("BEAKER_GROUP_COMMIT", group_commit.to_string())
    })
    .await?;
    assert!(env.add("slow-1", 10).await?.ok());
    let movements = env.db.count("stock_movements").await?;
    let events = env.db.count("outbox").await?;
    let lock = env.db.lock_row("slow-1").await?;

    let started = Instant::now();
    let answer = env.remove("slow-1", 5).await?;
    let took = started.elapsed();
    assert_eq!(answer.code, Some(503), "{:?}", answer.body);
    assert!(
        answer.body["error"]
            .as_str()
            .is_some_and(|m| m.contains("try again")),
        "{:?}",
        answer.body
    );
    assert!(took >= timeout, "answered in {took:?}, before the timeout");
    assert!(took < timeout * 5, "answered in {took:?}");

    lock.rollback().await?;
    assert_eq!(env.db.level("slow-1").await?, Some(10), "nothing changed");
    assert_eq!(env.db.count("stock_movements").await?, movements);
    assert_eq!(env.db.count("outbox").await?, events);
    // The same request, retried once the row is free, is applied.
    assert_eq!(env.remove("slow-1", 5).await?.level(), Some(5));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_the_timeout_gets_a_503_and_changes_nothing() -> Result<()> {
    statement_timeout("limits_statement_timeout", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_the_timeout_without_group_commit_too() -> Result<()> {
    statement_timeout("limits_statement_timeout_alone", false).await
}
