//! The host lost under load: killed, stopped with SIGTERM, and stopped
//! with SIGTERM while NATS is away.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use beaker_testkit::campaign::{RunReport, Seed, campaign};
use nix::sys::signal::Signal;

use super::{RECOVERY, Rig, Shape, run_load, run_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_killed_mid_load_loses_no_acknowledged_change() -> Result<()> {
    campaign("host_killed", |mut seed: Seed| async move {
        let name = run_name("host_killed", &seed);
        let shape = Shape::draw(&mut seed, 4..=12);
        let mut rig = Rig::with_shared_postgres(&name, |c| c).await?;
        let books = run_load(
            &mut rig,
            "host killed (SIGKILL) and restarted",
            shape,
            async |rig, _load| {
                rig.host()?
                    .signal_and_wait(Signal::SIGKILL, Duration::from_secs(5))?;
                rig.start_host_again().await
            },
        )
        .await?;
        ensure!(books.after_recovery_failures == 0);
        Ok(RunReport::default())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_sigterm_mid_load_answers_what_it_took_and_exits_zero() -> Result<()> {
    campaign("host_sigterm", |mut seed: Seed| async move {
        let name = run_name("host_sigterm", &seed);
        let shape = Shape::draw(&mut seed, 4..=12);
        let mut rig = Rig::with_shared_postgres(&name, |c| c).await?;
        let mut stop = Duration::ZERO;
        let books = run_load(
            &mut rig,
            "host stopped (SIGTERM) and restarted",
            shape,
            async |rig, _load| {
                let started = Instant::now();
                let status = rig
                    .host()?
                    .signal_and_wait(Signal::SIGTERM, Duration::from_secs(20))?;
                stop = started.elapsed();
                ensure!(status.success(), "exit status {status}");
                rig.start_host_again().await
            },
        )
        .await?;
        // A drained host answers everything it took: an unanswered request
        // can only be one NATS routed to it as it unsubscribed, never applied.
        ensure!(
            books.lost_applied == 0,
            "{} applied changes were never answered",
            books.lost_applied
        );
        ensure!(books.after_recovery_failures == 0);
        let mut report = RunReport::default();
        report.figure("stop", stop);
        Ok(report)
    })
    .await
}

/// The shutdown deadline these runs give the host.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_sigterm_during_a_nats_outage_stops_within_its_deadline() -> Result<()> {
    campaign(
        "host_sigterm_during_nats_outage",
        |mut seed: Seed| async move {
            let name = run_name("host_sigterm_during_nats_outage", &seed);
            let shape = Shape::draw(&mut seed, 4..=12);
            // How long NATS has been away when the signal comes.
            let away = seed.millis(0, 1000);
            let mut rig = Rig::with_shared_postgres(&name, |c| {
                c.env(
                    "BEAKER_SHUTDOWN_TIMEOUT",
                    format!("{}ms", SHUTDOWN_TIMEOUT.as_millis()),
                )
            })
            .await?;
            let mut stop = Duration::ZERO;
            let mut clean = true;
            let books = run_load(
                &mut rig,
                "host stopped (SIGTERM) while nats-server is down",
                shape,
                async |rig, _load| {
                    let seen = rig.host()?.log_lines().len();
                    rig.nats.kill();
                    rig.host()?
                        .wait_for_log(seen, RECOVERY, |l| {
                            l["message"] == "NATS connection lost; reconnecting"
                        })
                        .await?;
                    tokio::time::sleep(away).await;
                    let started = Instant::now();
                    let status = rig
                        .host()?
                        .signal_and_wait(Signal::SIGTERM, SHUTDOWN_TIMEOUT * 3)?;
                    stop = started.elapsed();
                    // Within the deadline (and a margin for the process to end);
                    // a clean stop exits 0, a stop at the deadline exits 1 and
                    // says what it abandoned.
                    ensure!(
                        stop <= SHUTDOWN_TIMEOUT + Duration::from_secs(2),
                        "the host took {stop:?} to stop; its deadline is {SHUTDOWN_TIMEOUT:?}"
                    );
                    clean = status.success();
                    ensure!(
                        clean || status.code() == Some(1),
                        "exit status {status} is neither 0 nor 1"
                    );
                    rig.nats.restart()?;
                    rig.start_host_again().await
                },
            )
            .await?;
            ensure!(books.after_recovery_failures == 0);
            let mut report = RunReport::default();
            report.figure("stop", stop).figure("NATS away before", away);
            report.note(if clean {
                "exit 0"
            } else {
                "exit 1 at the deadline"
            });
            Ok(report)
        },
    )
    .await
}
