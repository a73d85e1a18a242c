//! Group commit changes how many requests share a transaction, never what
//! a request does: a group of requests gives the same replies, levels,
//! ledger, outbox and stored replies as the same requests one by one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use beaker::contract::schema::Schemas;
use beaker::contract::wire::Endpoint;
use beaker::inventory::{GroupCommitSettings, Inventory, InventoryLimits, Parts};
use beaker::metrics::Metrics;
use beaker::rules::state::RulesState;
use beaker::rules::{RulesEngine, SandboxLimits};
use beaker::store::{DbConfig, Store};
use beaker_testkit::{TestDb, TestEnv, default_rules};
use tokio::sync::Notify;
use uuid::Uuid;

/// The inventory core in this process against `db`, with or without group
/// commit: no NATS client, no transport, the requests handed over directly.
async fn inventory(db: &TestDb, group: bool) -> Result<Arc<Inventory>> {
    let store = Store::connect_lazy(&DbConfig {
        url: db.url.clone(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
    })?;
    store.migrate().await?;
    let engine = RulesEngine::new(SandboxLimits::default())?;
    let rules = engine.load_file(&default_rules()).await?;
    Ok(Inventory::new(Parts {
        schemas: Schemas::compile()?,
        store,
        rules: Arc::new(RulesState::new(engine, rules, "file")),
        limits: InventoryLimits {
            max_request_bytes: 16384,
            max_in_flight: 64,
            idempotency_ttl: Duration::from_secs(3600),
        },
        relay_wake: Arc::new(Notify::new()),
        metrics: Metrics::new(),
        group_commit: group.then_some(GroupCommitSettings {
            max_size: 64,
            max_wait: Duration::ZERO,
            workers: 1,
        }),
    }))
}

/// One random request: mostly adds and removes over a few products, some
/// refused (too many removed, unknown products), some carrying keys that
/// repeat — for the same request or a different one — and a few invalid.
fn request(rng: &mut fastrand::Rng) -> (Endpoint, String, Option<String>) {
    let sku = ["a", "b", "c", "d", "new"][rng.usize(..5)];
    let sku = match sku {
        // Products nobody has stocked yet, one per draw.
        "new" => format!("new-{}", rng.u32(..1_000_000)),
        other => other.to_string(),
    };
    let key = (rng.u8(..10) < 3).then(|| format!("key-{}", rng.u8(..8)));
    match rng.u8(..20) {
        0 => (Endpoint::Add, "{\"product-sku\":".into(), key),
        1..=9 => (
            Endpoint::Add,
            format!(r#"{{"product-sku":"{sku}","quantity":{}}}"#, rng.u32(1..20)),
            key,
        ),
        _ => (
            Endpoint::Remove,
            format!(r#"{{"product-sku":"{sku}","quantity":{}}}"#, rng.u32(1..25)),
            key,
        ),
    }
}

/// Everything a request can change, in a comparable form.
async fn books(db: &TestDb) -> Result<Vec<String>> {
    let mut rows = Vec::new();
    for query in [
        "SELECT product_sku || '=' || stock_level FROM inventory ORDER BY product_sku",
        "SELECT concat_ws(' ', product_sku, operation, quantity, level_before, level_after, \
         rules_name, request_id) FROM stock_movements ORDER BY id",
        "SELECT concat_ws(' ', subject, payload, request_id) FROM outbox ORDER BY id",
        "SELECT concat_ws(' ', key, endpoint, request_hash, reply_body, error_code, error_message) \
         FROM idempotency ORDER BY key",
    ] {
        let found: Vec<String> = sqlx::query_scalar(query).fetch_all(&db.pool).await?;
        rows.extend(found);
    }
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_gives_exactly_what_the_same_requests_give_one_by_one() -> Result<()> {
    let (grouped_db, alone_db) = (TestDb::create().await?, TestDb::create().await?);
    let grouped = inventory(&grouped_db, true).await?;
    let alone = inventory(&alone_db, false).await?;
    // Each service's own rules: a component is compiled for one engine.
    let (group_rules, alone_rules) = (grouped.rules().active(), alone.rules().active());
    let mut rng = fastrand::Rng::with_seed(7);
    let mut applied_in_groups = 0;
    for round in 0..60 {
        let size = rng.usize(1..=24);
        let requests: Vec<_> = (0..size)
            .map(|_| {
                let (endpoint, body, key) = request(&mut rng);
                (endpoint, body, key, Uuid::now_v7())
            })
            .collect();
        let as_group: Vec<_> = requests
            .iter()
            .map(|(e, b, k, id)| (*e, b.as_bytes(), k.as_deref(), *id))
            .collect();
        let group_replies = grouped.handle_group(&as_group, &group_rules).await;
        for (i, (endpoint, body, key, id)) in requests.iter().enumerate() {
            let reply = alone
                .handle(
                    *endpoint,
                    body.as_bytes(),
                    key.as_deref(),
                    *id,
                    beaker::propagation::RequestTrace::from_headers(None),
                    &alone_rules,
                )
                .await;
            assert_eq!(
                (group_replies[i].body_text(), group_replies[i].failure()),
                (reply.body_text(), reply.failure()),
                "round {round}, request {i} ({endpoint:?} {body} key {key:?})"
            );
            applied_in_groups += usize::from(reply.failure().is_none());
        }
        assert_eq!(
            books(&grouped_db).await?,
            books(&alone_db).await?,
            "round {round}: {requests:#?}"
        );
    }
    // The mix did what it is for: many changes applied, not only refusals.
    assert!(applied_in_groups > 300, "{applied_in_groups} applied");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_can_be_turned_off() -> Result<()> {
    let env = TestEnv::start_with("group_commit_off", |c| c.arg("--group-commit=false")).await?;
    assert_eq!(env.add("off", 5).await?.level(), Some(5));
    assert_eq!(env.remove("off", 2).await?.level(), Some(3));
    assert_eq!(env.db.level("off").await?, Some(3));
    Ok(())
}

/// Removes one unit of the product `held` in a task of its own: a request
/// that will wait for the row the test holds.
fn remove_one_held(
    client: &async_nats::Client,
) -> tokio::task::JoinHandle<Result<beaker_testkit::Answer>> {
    let client = client.clone();
    tokio::spawn(async move {
        beaker_testkit::call(
            &client,
            "stock.remove",
            r#"{"product-sku":"held","quantity":1}"#,
        )
        .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_request_for_a_held_row_does_not_hold_up_the_next_ones() -> Result<()> {
    // One worker, requests one at a time: every group is a group of one,
    // which takes the one-request path, and must not wait for the row.
    let env = TestEnv::start_with("group_commit_lone_held_row", |c| {
        c.env("BEAKER_GROUP_COMMIT_WORKERS", "1")
            .env("BEAKER_DB_STATEMENT_TIMEOUT_MS", "60000")
    })
    .await?;
    for sku in ["held", "free-1"] {
        assert!(env.add(sku, 10).await?.ok());
    }
    let lock = env.db.lock_row("held").await?;
    let held = remove_one_held(&env.client);
    beaker_testkit::wait_until(
        "the host to wait for the held row",
        Duration::from_secs(30),
        || env.db.host_waits_for_a_lock(),
    )
    .await?;
    for _ in 0..5 {
        let answer = env.remove("free-1", 1).await?;
        assert!(answer.ok(), "{:?}", answer.body);
    }
    assert!(
        !held.is_finished(),
        "the held product's request still waits"
    );
    lock.rollback().await?;
    let answer = held.await??;
    assert!(answer.ok(), "{:?}", answer.body);
    assert_eq!(env.db.level("held").await?, Some(9));
    assert_eq!(env.db.level("free-1").await?, Some(5));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_held_elsewhere_holds_up_only_its_own_product() -> Result<()> {
    let env = TestEnv::start_with("group_commit_held_row", |c| {
        // The held requests must outlive the test's lock.
        c.env("BEAKER_DB_STATEMENT_TIMEOUT_MS", "60000")
    })
    .await?;
    let free: Vec<String> = (0..8).map(|i| format!("free-{i}")).collect();
    for sku in free.iter().map(String::as_str).chain(["held"]) {
        assert!(env.add(sku, 100).await?.ok());
    }
    let lock = env.db.lock_row("held").await?;

    // Requests for the held product wait for its row...
    let held: Vec<_> = (0..4).map(|_| remove_one_held(&env.client)).collect();
    beaker_testkit::wait_until(
        "the host to wait for the held row",
        Duration::from_secs(30),
        || env.db.host_waits_for_a_lock(),
    )
    .await?;

    // ...while every other product is served meanwhile, in groups (a group
    // waiting for the held row would keep these from an answer).
    let others = futures::future::join_all((0..32).map(|i| {
        env.call(
            "stock.remove",
            format!(r#"{{"product-sku":"{}","quantity":1}}"#, free[i % 8]),
        )
    }))
    .await;
    for answer in others {
        let answer = answer?;
        assert!(answer.ok(), "{:?}", answer.body);
    }
    assert!(
        held.iter().all(|h| !h.is_finished()),
        "the held product's requests still wait"
    );

    lock.rollback().await?;
    for request in held {
        let answer = request.await??;
        assert!(answer.ok(), "{:?}", answer.body);
    }
    assert_eq!(env.db.level("held").await?, Some(96));
    for sku in &free {
        assert_eq!(env.db.level(sku).await?, Some(96), "{sku}");
    }
    Ok(())
}
