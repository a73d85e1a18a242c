//! A request carrying a `Nats-Msg-Id` header is applied at most once: a
//! retry within the retention window gets the identical reply and changes
//! nothing, even when the retries race.

use std::time::Duration;

use anyhow::Result;
use beaker_testkit::{TestEnv, call_with_headers};
use futures::future::join_all;

const REMOVE_3: &str = r#"{"product-sku":"idem","quantity":3}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_is_applied_once_and_answered_identically() -> Result<()> {
    let env = TestEnv::start("idempotent_retry").await?;
    env.add("idem", 10).await?;
    let key = [("Nats-Msg-Id", "order-17-line-2")];
    let first = call_with_headers(&env.client, "stock.remove", &key, REMOVE_3).await?;
    let second = call_with_headers(&env.client, "stock.remove", &key, REMOVE_3).await?;
    // Same meaning, other spelling: still the same request.
    let reordered = call_with_headers(
        &env.client,
        "stock.remove",
        &key,
        r#"{ "quantity": 3, "product-sku": "idem" }"#,
    )
    .await?;
    assert!(first.ok(), "{:?}", first.body);
    assert_eq!(first.raw, second.raw, "byte-identical replay");
    assert_eq!(first.raw, reordered.raw);
    assert_eq!(env.db.level("idem").await?, Some(7), "applied once");
    assert_eq!(env.db.count("stock_movements").await?, 2);
    assert_eq!(env.db.count("outbox").await?, 1, "one event, not three");

    // A different key is a different request: applied again.
    let other = call_with_headers(
        &env.client,
        "stock.remove",
        &[("Nats-Msg-Id", "order-18")],
        REMOVE_3,
    )
    .await?;
    assert_eq!(other.level(), Some(4));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_apply_once() -> Result<()> {
    let env = TestEnv::start("idempotent_concurrent").await?;
    env.add("idem", 100).await?;
    let key = [("Nats-Msg-Id", "burst-1")];
    let replies =
        join_all((0..20).map(|_| call_with_headers(&env.client, "stock.remove", &key, REMOVE_3)))
            .await;
    let replies: Vec<_> = replies.into_iter().collect::<Result<_>>()?;
    for reply in &replies {
        assert_eq!(
            reply.raw, replies[0].raw,
            "every racer gets the first reply"
        );
    }
    assert_eq!(replies[0].level(), Some(97));
    assert_eq!(env.db.level("idem").await?, Some(97));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_stored_too_and_keys_cannot_be_reused_for_other_requests() -> Result<()> {
    let env = TestEnv::start("idempotent_refusal").await?;
    env.add("idem", 2).await?;
    let key = [("Nats-Msg-Id", "too-many")];
    let refused = call_with_headers(&env.client, "stock.remove", &key, REMOVE_3).await?;
    assert_eq!(refused.code, Some(409));
    // Stock arrives; the retry still gets the original answer.
    env.add("idem", 10).await?;
    let retried = call_with_headers(&env.client, "stock.remove", &key, REMOVE_3).await?;
    assert_eq!(retried.raw, refused.raw);
    assert_eq!(retried.code, Some(409));
    assert_eq!(retried.error, refused.error);
    assert_eq!(env.db.level("idem").await?, Some(12));

    // The same key with another body is refused and changes nothing.
    let reused = call_with_headers(
        &env.client,
        "stock.remove",
        &key,
        r#"{"product-sku":"idem","quantity":1}"#,
    )
    .await?;
    assert_eq!(reused.code, Some(409));
    assert!(
        reused.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("already used")
    );
    assert_eq!(env.db.level("idem").await?, Some(12));

    // A malformed key is a bad request.
    let bad = call_with_headers(
        &env.client,
        "stock.add",
        &[("Nats-Msg-Id", "has space")],
        REMOVE_3,
    )
    .await?;
    assert_eq!(bad.code, Some(400));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_not_stored_so_a_retry_can_succeed() -> Result<()> {
    let env = TestEnv::start("idempotent_failure").await?;
    env.add("idem", 20).await?;
    sqlx::raw_sql(
        "CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'injected'; END; $$; \
         CREATE TRIGGER fail_once BEFORE INSERT ON stock_movements \
         FOR EACH ROW EXECUTE FUNCTION fail_once();",
    )
    .execute(&env.db.pool)
    .await?;
    let key = [("Nats-Msg-Id", "flaky")];
    let failed = call_with_headers(&env.client, "stock.remove", &key, REMOVE_3).await?;
    assert_eq!(failed.code, Some(500));
    sqlx::raw_sql("DROP TRIGGER fail_once ON stock_movements")
        .execute(&env.db.pool)
        .await?;
    let retried = call_with_headers(&env.client, "stock.remove", &key, REMOVE_3).await?;
    assert_eq!(retried.level(), Some(17));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_are_cleaned_up_and_then_apply_again() -> Result<()> {
    let env = TestEnv::start_with("idempotent_expiry", |c| {
        c.env("BEAKER_HOUSEKEEPING_INTERVAL", "50ms")
    })
    .await?;
    env.add("idem", 10).await?;
    let key = [("Nats-Msg-Id", "old")];
    call_with_headers(&env.client, "stock.remove", &key, REMOVE_3).await?;
    assert_eq!(env.db.count("idempotency").await?, 1);

    // Age the key past its retention.
    sqlx::query("UPDATE idempotency SET expires_at = now() - interval '1 second'")
        .execute(&env.db.pool)
        .await?;
    // Housekeeping deletes it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.db.count("idempotency").await? > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired key never deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past its window, the key is a new request.
    let again = call_with_headers(&env.client, "stock.remove", &key, REMOVE_3).await?;
    assert_eq!(again.level(), Some(4));
    Ok(())
}
