//! The business rules of the reference service, through NATS, as any client
//! sees them: bodies, error headers, and what lands in the database.

use anyhow::Result;
use beaker_testkit::{Contract, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_creates_then_accumulates() -> Result<()> {
    let env = TestEnv::start("add_creates_then_accumulates").await?;
    let contract = Contract::load()?;

    let first = env.add("widget-1", 5).await?;
    contract.assert_valid("stock-add.response.json", &first.body);
    assert_eq!(
        first.body,
        json!({"ok": true, "product-sku": "widget-1", "quantity": 5})
    );
    assert_eq!(first.code, None);

    let second = env.add("widget-1", 7).await?;
    assert_eq!(
        second.body,
        json!({"ok": true, "product-sku": "widget-1", "quantity": 12})
    );
    assert_eq!(env.db.level("widget-1").await?, Some(12));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_is_byte_for_byte_the_reference_shape() -> Result<()> {
    let env = TestEnv::start("reply_bytes").await?;
    let reply = env.add("A_b-9", 3).await?;
    assert_eq!(
        &reply.raw[..],
        br#"{"ok":true,"product-sku":"A_b-9","quantity":3}"#
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_subtracts_and_may_reach_exactly_zero() -> Result<()> {
    let env = TestEnv::start("remove_subtracts").await?;
    env.add("bolt", 10).await?;
    let reply = env.remove("bolt", 4).await?;
    assert_eq!(
        reply.body,
        json!({"ok": true, "product-sku": "bolt", "quantity": 6})
    );
    let reply = env.remove("bolt", 6).await?;
    assert_eq!(
        reply.body,
        json!({"ok": true, "product-sku": "bolt", "quantity": 0})
    );
    assert_eq!(env.db.level("bolt").await?, Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_below_zero_is_refused_with_409_and_changes_nothing() -> Result<()> {
    let env = TestEnv::start("remove_below_zero").await?;
    let contract = Contract::load()?;
    env.add("nut", 3).await?;
    let movements_before = env.db.count("stock_movements").await?;

    let reply = env.remove("nut", 4).await?;
    contract.assert_valid("stock-remove.response.json", &reply.body);
    assert_eq!(reply.body["ok"], false);
    assert_eq!(reply.code, Some(409));
    let message = reply.body["error"].as_str().unwrap_or_default();
    assert!(message.contains("only 3 in stock"), "{message}");
    assert_eq!(
        reply.error.as_deref(),
        Some(message),
        "header carries the same message"
    );

    assert_eq!(env.db.level("nut").await?, Some(3));
    assert_eq!(env.db.count("stock_movements").await?, movements_before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_of_an_unknown_product_is_404_and_creates_nothing() -> Result<()> {
    let env = TestEnv::start("remove_unknown").await?;
    let reply = env.remove("ghost", 1).await?;
    assert_eq!(reply.code, Some(404));
    assert_eq!(reply.body["ok"], false);
    assert_eq!(env.db.level("ghost").await?, None);
    assert_eq!(env.db.count("stock_movements").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_reports_the_level_and_zero_for_unknown_products() -> Result<()> {
    let env = TestEnv::start("get_levels").await?;
    let contract = Contract::load()?;
    env.add("gear", 42).await?;
    let known = env.get("gear").await?;
    contract.assert_valid("stock-get.response.json", &known.body);
    assert_eq!(
        known.body,
        json!({"ok": true, "product-sku": "gear", "quantity": 42})
    );

    let unknown = env.get("never-seen").await?;
    assert_eq!(
        unknown.body,
        json!({"ok": true, "product-sku": "never-seen", "quantity": 0})
    );
    // A get writes nothing, not even for an unknown product.
    assert_eq!(env.db.level("never-seen").await?, None);
    assert_eq!(env.db.count("stock_movements").await?, 1);
    Ok(())
}

/// Gets in flight together are read in one statement: each must still get
/// its own product's level, duplicates and unknown products included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_each_get_their_own_products_level() -> Result<()> {
    let env = TestEnv::start("concurrent_gets").await?;
    for i in 1..=60 {
        env.add(&format!("p{i}"), i).await?;
    }
    // Every stocked product three times and twenty never stocked, shuffled.
    let mut skus: Vec<(String, i64)> = (1..=60)
        .flat_map(|i| std::iter::repeat_n((format!("p{i}"), i), 3))
        .chain((1..=20).map(|i| (format!("unknown-{i}"), 0)))
        .collect();
    fastrand::shuffle(&mut skus);
    let replies = futures::future::join_all(skus.iter().map(|(sku, _)| env.get(sku))).await;
    for ((sku, level), reply) in skus.iter().zip(replies) {
        let reply = reply?;
        assert_eq!(
            reply.body,
            json!({"ok": true, "product-sku": sku, "quantity": level}),
            "{sku}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skus_are_case_sensitive_and_accept_every_character_the_schema_allows() -> Result<()> {
    let env = TestEnv::start("sku_alphabet").await?;
    let longest = "Z".repeat(50);
    for sku in ["abc", "ABC", "a_B-0", longest.as_str()] {
        let reply = env.add(sku, 1).await?;
        assert!(reply.ok(), "{sku}: {:?}", reply.body);
    }
    assert_eq!(env.get("abc").await?.level(), Some(1));
    assert_eq!(env.get("ABC").await?.level(), Some(1));
    assert_eq!(env.db.level(&longest).await?, Some(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_agree_between_schema_rules_and_database() -> Result<()> {
    let env = TestEnv::start("bounds_agree").await?;
    // The schema's largest quantity is accepted and stored.
    let reply = env.add("big", 1_000_000).await?;
    assert!(reply.ok(), "{:?}", reply.body);
    // One more is refused by the schema, before any rule or statement.
    let reply = env.add("big", 1_000_001).await?;
    assert_eq!(reply.code, Some(400));

    // The stock ceiling (1,000,000,000) is reachable exactly, and no further.
    sqlx::query("UPDATE inventory SET stock_level = 999999999 WHERE product_sku = 'big'")
        .execute(&env.db.pool)
        .await?;
    let reply = env.add("big", 1).await?;
    assert_eq!(reply.level(), Some(1_000_000_000), "{:?}", reply.body);
    let reply = env.add("big", 1).await?;
    assert_eq!(reply.code, Some(409), "{:?}", reply.body);
    assert_eq!(env.db.level("big").await?, Some(1_000_000_000));

    // The database states the same bounds: it accepts what the schemas
    // accept and rejects one step beyond.
    let at_bounds = sqlx::query(
        "INSERT INTO inventory (product_sku, stock_level) VALUES ($1, 1000000000), ('z', 0)",
    )
    .bind("Q".repeat(50))
    .execute(&env.db.pool)
    .await;
    assert!(at_bounds.is_ok(), "{at_bounds:?}");
    for (sku, level) in [
        ("over", 1_000_000_001_i64),
        ("neg", -1),
        ("bad.sku", 1),
        ("", 1),
    ] {
        let outside =
            sqlx::query("INSERT INTO inventory (product_sku, stock_level) VALUES ($1, $2::int)")
                .bind(sku)
                .bind(level)
                .execute(&env.db.pool)
                .await;
        assert!(
            outside.is_err(),
            "{sku:?}/{level} must be rejected by the table"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_records_every_change_and_sums_to_the_level() -> Result<()> {
    let env = TestEnv::start("ledger_sums").await?;
    env.add("cog", 30).await?;
    env.remove("cog", 12).await?;
    env.remove("cog", 100).await?; // refused: not in the ledger
    env.add("cog", 5).await?;
    env.remove("cog", 23).await?;
    env.get("cog").await?; // reads are not movements

    let rows: Vec<(String, i32, i32, i32, String, String, String)> = sqlx::query_as(
        "SELECT operation, quantity, level_before, level_after, rules_name, rules_version, rules_digest \
         FROM stock_movements WHERE product_sku = 'cog' ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await?;
    let summary: Vec<(&str, i32, i32, i32)> =
        rows.iter().map(|r| (r.0.as_str(), r.1, r.2, r.3)).collect();
    assert_eq!(
        summary,
        vec![
            ("add", 30, 0, 30),
            ("remove", 12, 30, 18),
            ("add", 5, 18, 23),
            ("remove", 23, 23, 0)
        ]
    );
    for row in &rows {
        assert_eq!(row.4, "beaker-default-rules");
        assert!(!row.5.is_empty());
        assert_eq!(row.6.len(), 64, "sha256 hex digest");
    }
    assert_eq!(env.db.ledger_sum("cog").await?, 0);
    assert_eq!(env.db.level("cog").await?, Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quantity_written_with_a_zero_fraction_is_the_whole_number() -> Result<()> {
    // JSON Schema counts 5.0 as an integer, so the schema accepts it; the
    // service must not then fail on it (it did, with a 500).
    let env = TestEnv::start("whole_number_quantity").await?;
    let reply = env
        .call("stock.add", r#"{"product-sku":"float-1","quantity":5.0}"#)
        .await?;
    assert_eq!(
        reply.body,
        json!({"ok": true, "product-sku": "float-1", "quantity": 5})
    );
    let reply = env
        .call(
            "stock.remove",
            r#"{"product-sku":"float-1","quantity":2e0}"#,
        )
        .await?;
    assert_eq!(reply.level(), Some(3), "{:?}", reply.body);
    assert_eq!(env.db.level("float-1").await?, Some(3));
    Ok(())
}
