//! Stock never goes below zero, whatever the concurrency.

use anyhow::Result;
use beaker_testkit::TestEnv;
use futures::future::join_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_removes_against_fifty_units_sell_exactly_fifty() -> Result<()> {
    let env = TestEnv::start("concurrent_removes").await?;
    assert_eq!(env.add("hot", 50).await?.level(), Some(50));

    let replies = join_all((0..100).map(|_| env.remove("hot", 1))).await;
    let mut sold = 0;
    let mut refused = 0;
    let mut levels = Vec::new();
    for reply in replies {
        let reply = reply?;
        if reply.ok() {
            sold += 1;
            levels.push(reply.level().unwrap_or(-1));
        } else {
            assert_eq!(reply.code, Some(409), "{:?}", reply.body);
            refused += 1;
        }
    }
    assert_eq!((sold, refused), (50, 50));
    // Each success saw a distinct level: 49, 48, …, 0.
    levels.sort_unstable();
    assert_eq!(levels, (0..50).collect::<Vec<i64>>());
    assert_eq!(env.db.level("hot").await?, Some(0));
    assert_eq!(env.db.ledger_sum("hot").await?, 0);
    let min_after: Option<i32> = sqlx::query_scalar(
        "SELECT min(level_after) FROM stock_movements WHERE product_sku = 'hot'",
    )
    .fetch_one(&env.db.pool)
    .await?;
    assert_eq!(min_after, Some(0), "never negative, not even for a moment");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_adds_of_a_new_product_all_count() -> Result<()> {
    let env = TestEnv::start("concurrent_first_adds").await?;
    let replies = join_all((1..=40).map(|q| env.add("fresh", q))).await;
    for reply in replies {
        let reply = reply?;
        assert!(reply.ok(), "{:?}", reply.body);
    }
    let expected: i32 = (1..=40).sum();
    assert_eq!(env.db.level("fresh").await?, Some(expected));
    assert_eq!(env.db.ledger_sum("fresh").await?, i64::from(expected));
    assert_eq!(env.db.count("stock_movements").await?, 40);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_concurrent_traffic_keeps_the_books() -> Result<()> {
    let env = TestEnv::start("mixed_traffic").await?;
    let skus = ["m0", "m1", "m2", "m3"];
    for sku in skus {
        env.add(sku, 10).await?;
    }
    let work = (0..200).map(|i| {
        let sku = skus[i % skus.len()];
        let env = &env;
        async move {
            match i % 3 {
                0 => env.add(sku, 3).await,
                1 => env.remove(sku, 2).await,
                _ => env.get(sku).await,
            }
        }
    });
    let replies = join_all(work).await;
    for reply in replies {
        let reply = reply?;
        assert!(reply.ok() || reply.code == Some(409), "{:?}", reply.body);
    }
    for sku in skus {
        let level = env.db.level(sku).await?.unwrap_or(-1);
        assert!(level >= 0);
        assert_eq!(env.db.ledger_sum(sku).await?, i64::from(level), "{sku}");
    }
    Ok(())
}
