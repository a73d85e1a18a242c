//! The database side: the benchmark's products, and the same-SQL baseline.
//!
//! The baseline runs the host's own per-request path, `Store::begin_change`
//! then `Change::commit` (BEGIN; SELECT … FOR UPDATE; one statement writing
//! the level, the ledger row and the outbox rows; COMMIT), so it is the same
//! SQL as the service's by construction — only NATS, validation and the
//! rules are missing.

use std::time::Duration;

use beaker::store::{Begun, DbConfig, Movement, RulesStamp, Store, StoredReply};
use uuid::Uuid;

use crate::error::BenchError;
use crate::load::{self, CallResult, Phase, Summary};
use crate::mix::{self, Mix, Operation, Products};

/// Opens a pool of `connections` on the benchmark database.
pub fn store(url: &str, connections: u32) -> Result<Store, BenchError> {
    Ok(Store::connect_lazy(&DbConfig {
        url: url.to_string(),
        max_connections: connections.max(1),
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(10),
    })?)
}

/// A plain connection to the benchmark database, for the statements that
/// are the benchmark's own (emptying and stocking the tables), not the
/// service's.
pub async fn connection(url: &str) -> Result<sqlx::PgConnection, BenchError> {
    use sqlx::Connection;
    Ok(sqlx::PgConnection::connect(url).await?)
}

/// Creates the database if needed and applies the host's migrations.
pub async fn prepare(url: &str) -> Result<(), BenchError> {
    Store::ensure_database(url).await?;
    let store = store(url, 1)?;
    store.migrate().await?;
    store.close().await;
    Ok(())
}

/// Empties every table, then stocks the hot and cold products with
/// [`mix::SEEDED_LEVEL`] units and each event phase's products with
/// `event_level` units — each with a ledger row, as if added, so that the
/// ledger still adds up.
pub async fn reset(
    url: &str,
    products: Products,
    event_phases: &[(usize, usize)],
    event_level: u32,
) -> Result<(), BenchError> {
    let mut db = connection(url).await?;
    sqlx::query("TRUNCATE inventory, stock_movements, outbox, idempotency")
        .execute(&mut db)
        .await?;
    let mut skus: Vec<String> = (0..products.hot).map(mix::hot_sku).collect();
    skus.extend((0..products.cold).map(mix::cold_sku));
    let mut levels = vec![mix::SEEDED_LEVEL as i32; skus.len()];
    for &(phase, count) in event_phases {
        skus.extend((0..count).map(|i| mix::event_sku(phase, i)));
        levels.resize(skus.len(), event_level as i32);
    }
    sqlx::query(
        "WITH stocked AS (\
           INSERT INTO inventory (product_sku, stock_level) \
           SELECT * FROM UNNEST($1::text[], $2::int[]) \
           RETURNING product_sku, stock_level) \
         INSERT INTO stock_movements (product_sku, operation, quantity, level_before, \
           level_after, rules_name, rules_version, rules_digest, request_id) \
         SELECT product_sku, 'add', stock_level, 0, stock_level, 'bench-seed', '0', '-', \
           gen_random_uuid() FROM stocked",
    )
    .bind(&skus)
    .bind(&levels)
    .execute(&mut db)
    .await?;
    sqlx::raw_sql("ANALYZE inventory, stock_movements")
        .execute(&mut db)
        .await?;
    Ok(())
}

/// The service's per-request transactions at `phase.concurrency` clients,
/// each with a connection of its own (as `pgbench -c`).
pub async fn baseline(
    url: &str,
    mix: Mix,
    products: Products,
    phase: Phase,
) -> Result<Summary, BenchError> {
    let connections = u32::try_from(phase.concurrency).unwrap_or(u32::MAX);
    let store = store(url, connections)?;
    // Open every connection before the clock starts.
    store.open_connections(connections as usize).await?;
    let stamp = RulesStamp {
        name: "beaker-rules".into(),
        version: "0.1.0".into(),
        digest: "0".repeat(64),
    };
    // The client's own CPU: this process, which runs the transactions.
    let summary = load::closed_loop(phase, &[std::process::id()], move |worker, sequence| {
        let store = store.clone();
        let stamp = stamp.clone();
        async move { one_transaction(&store, &stamp, mix.pick(products, worker, sequence)).await }
    })
    .await;
    Ok(summary)
}

/// What the service does for one add or remove, without NATS and rules:
/// the arithmetic stands in for the rules' decision.
async fn one_transaction(store: &Store, stamp: &RulesStamp, pick: mix::Pick) -> CallResult {
    let change = match store.begin_change(&pick.sku, None).await {
        Ok(Begun::Change(change)) => change,
        Ok(_) => return CallResult::Failed("an idempotency replay without a key".into()),
        Err(e) => return CallResult::Failed(e.to_string()),
    };
    let current = change.current;
    let (operation, quantity, level_after) = match (pick.operation, current) {
        (Operation::Add(q), _) => ("add", q, current.unwrap_or(0).saturating_add(q)),
        (Operation::Remove(_), None) => return CallResult::Refused(404),
        (Operation::Remove(q), Some(level)) if level < q => return CallResult::Refused(409),
        (Operation::Remove(q), Some(level)) => ("remove", q, level - q),
        (Operation::Get, _) => return CallResult::Failed("a get has no transaction".into()),
    };
    let movement = Movement {
        operation,
        quantity,
        level_after,
        rules: stamp.clone(),
        request_id: Uuid::now_v7(),
        trace_id: Some(Uuid::new_v4().simple().to_string()),
    };
    let reply = StoredReply {
        body: format!(
            r#"{{"ok":true,"product-sku":"{}","quantity":{level_after}}}"#,
            pick.sku
        ),
        error: None,
    };
    match change.commit(&movement, &[], &reply).await {
        Ok(()) => CallResult::Ok,
        Err(e) => CallResult::Failed(e.to_string()),
    }
}
