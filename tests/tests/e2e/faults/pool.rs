//! The connection pool exhausted: requests wait on a held row lock with
//! every connection, and everyone else finds none free.

use anyhow::{Result, ensure};
use beaker_testkit::campaign::{RunReport, Seed, campaign};

use super::{RECOVERY, Rig, SKUS, Shape, run_load, run_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_connection_pool_answers_everything_and_keeps_the_books() -> Result<()> {
    // Two connections against 32 to 48 concurrent clients. At the fault a
    // session of ours locks two products' rows: the requests for them wait
    // on the locks holding both connections, and everyone else finds none
    // free. The host's bound on an answer is the statement timeout (here
    // 1 s) plus the wait for a connection; the clients wait 5 s. The fault
    // strikes early, so that enough of the load meets it.
    campaign("pool_exhausted", |mut seed: Seed| async move {
        let name = run_name("pool_exhausted", &seed);
        let shape = Shape::draw_striking(&mut seed, 32..=48, 0.1..0.3);
        let first = seed.between(0, SKUS.len() as u64 - 1) as usize;
        let locked = [SKUS[first], SKUS[(first + 1) % SKUS.len()]];
        let mut rig = Rig::with_shared_postgres(&name, |c| {
            c.env("BEAKER_DB_MAX_CONNECTIONS", "2")
                .env("BEAKER_DB_ACQUIRE_TIMEOUT_MS", "200")
                .env("BEAKER_DB_STATEMENT_TIMEOUT_MS", "1000")
        })
        .await?;
        let mut refused = 0;
        let books = run_load(
            &mut rig,
            "connection pool exhausted (2 connections held, 32-48 clients)",
            shape,
            async |rig, load| {
                let pool = rig.pool().await?;
                let mut lock = pool.begin().await?;
                sqlx::query("SELECT 1 FROM inventory WHERE product_sku = ANY($1) FOR UPDATE")
                    .bind(&locked[..])
                    .execute(&mut *lock)
                    .await?;
                let before = load.tally().unavailable;
                let during = load
                    .wait_for("503s while no connection is free", RECOVERY, |t| {
                        t.unavailable >= before + 10
                    })
                    .await?;
                refused = during.unavailable - before;
                lock.rollback().await?;
                rig.serving().await
            },
        )
        .await?;
        ensure!(
            books.answers_lost == 0,
            "{} requests got no answer",
            books.answers_lost
        );
        ensure!(books.no_responders == 0);
        ensure!(books.refused_other == 0, "only 409s and clean 503s");
        // A 503 retried with its key may end acknowledged: the books count
        // requests, the load counts answers.
        ensure!(refused >= 10, "the pool never ran out (else: no test)");
        ensure!(
            books.after_recovery_failures == 0,
            "not served again once connections were free"
        );
        let mut report = RunReport::default();
        report.note(format!(
            "{refused} answers were 503 while the rows were held"
        ));
        Ok(report)
    })
    .await
}
