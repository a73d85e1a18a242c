//! Postgres lost under load: stopped cleanly and crashed. Meanwhile the
//! host answers 503 (it does not hang), and it serves again without being
//! restarted.

use anyhow::{Result, ensure};
use beaker_testkit::campaign::{RunReport, Seed, campaign};
use beaker_testkit::faults::StopMode;

use super::{RECOVERY, Rig, Shape, run_load, run_name};

async fn postgres_outage(
    scenario: &'static str,
    title: &'static str,
    mode: StopMode,
) -> Result<()> {
    campaign(scenario, move |mut seed: Seed| async move {
        let name = run_name(scenario, &seed);
        let shape = Shape::draw(&mut seed, 4..=12);
        // The outage lasts until this many of the clients' requests have
        // been told 503: its length follows the load, not the clock.
        let told = seed.between(1, 3) as usize * shape.clients;
        let mut rig = Rig::with_own_postgres(&name, |c| c).await?;
        let books = run_load(&mut rig, title, shape, async |rig, load| {
            let before = load.tally().unavailable;
            rig.pg()?.stop(mode)?;
            load.wait_for("503s while the database is down", RECOVERY, |t| {
                t.unavailable >= before + told
            })
            .await?;
            rig.pg()?.start_again()?;
            rig.serving().await
        })
        .await?;
        ensure!(
            books.unavailable > 0,
            "the outage was not answered with 503s"
        );
        ensure!(
            books.answers_lost == 0,
            "{} requests got no answer during the outage",
            books.answers_lost
        );
        ensure!(
            books.after_recovery_failures == 0,
            "the host did not recover by itself"
        );
        let mut report = RunReport::default();
        report.note(format!("{} answered 503", books.unavailable));
        Ok(report)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_load_answers_503_and_recovers_alone() -> Result<()> {
    postgres_outage(
        "postgres_stopped",
        "Postgres stopped (pg_ctl stop -m fast) and restarted",
        StopMode::Fast,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashed_mid_load_loses_no_acknowledged_change() -> Result<()> {
    // Immediate mode: no checkpoint, no goodbye; the restart replays the WAL.
    postgres_outage(
        "postgres_crashed",
        "Postgres crashed (pg_ctl stop -m immediate) and restarted",
        StopMode::Immediate,
    )
    .await
}
