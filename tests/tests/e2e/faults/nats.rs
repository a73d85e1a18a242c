//! NATS lost under load: killed and restarted, and killed together with
//! the host.

use std::time::Duration;

use anyhow::{Result, ensure};
use beaker_testkit::campaign::{RunReport, Seed, campaign};
use nix::sys::signal::Signal;

use super::{Rig, Shape, run_load, run_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_mid_load_keeps_the_books() -> Result<()> {
    campaign("nats_killed_and_restarted", |mut seed: Seed| async move {
        let name = run_name("nats_killed_and_restarted", &seed);
        let shape = Shape::draw(&mut seed, 4..=12);
        let outage = seed.millis(0, 1500);
        let mut rig = Rig::with_shared_postgres(&name, |c| c).await?;
        let books = run_load(
            &mut rig,
            "nats-server killed (SIGKILL) and restarted",
            shape,
            async |rig, _load| {
                rig.nats.kill();
                tokio::time::sleep(outage).await;
                // Same port, same JetStream store; everyone reconnects alone.
                rig.nats.restart()?;
                rig.serving().await
            },
        )
        .await?;
        ensure!(
            books.after_recovery_failures == 0,
            "{} requests sent after recovery were not answered",
            books.after_recovery_failures
        );
        let mut report = RunReport::default();
        report.figure("outage", outage);
        Ok(report)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_and_host_killed_together_keep_the_books() -> Result<()> {
    campaign(
        "nats_and_host_killed_together",
        |mut seed: Seed| async move {
            let name = run_name("nats_and_host_killed_together", &seed);
            let shape = Shape::draw(&mut seed, 4..=12);
            let nats_first = seed.between(0, 1) == 1;
            let mut rig = Rig::with_shared_postgres(&name, |c| c).await?;
            let books = run_load(
                &mut rig,
                "nats-server and the host killed (SIGKILL) together",
                shape,
                async |rig, _load| {
                    if nats_first {
                        rig.nats.kill();
                        rig.host()?
                            .signal_and_wait(Signal::SIGKILL, Duration::from_secs(5))?;
                    } else {
                        rig.host()?
                            .signal_and_wait(Signal::SIGKILL, Duration::from_secs(5))?;
                        rig.nats.kill();
                    }
                    rig.nats.restart()?;
                    rig.start_host_again().await
                },
            )
            .await?;
            ensure!(books.after_recovery_failures == 0);
            let mut report = RunReport::default();
            report.note(if nats_first {
                "NATS died first"
            } else {
                "the host died first"
            });
            Ok(report)
        },
    )
    .await
}
