//! Beaker on a NATS cluster: three `nats-server`s clustered through routes,
//! three hosts each preferring a different server, the events stream and
//! the rules bucket replicated three times — and a server, or two, lost
//! under load. The same books as every fault scenario, repeated with
//! seeds; each run also measures the longest gap without any answer and
//! how long the backlog took to drain.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use beaker_testkit::campaign::{RunReport, Seed, campaign};
use beaker_testkit::faults::{
    Books, Load, Record, plan, retry_keyed, stock_up, wait_until_serving,
};
use beaker_testkit::{
    Beaker, BeakerConfig, EVENTS_STREAM, NatsCluster, TestDb, beaker_cli, output_dir,
    rules_reports, service_infos, sha256_file, wait_for_rules, wasm,
};

use super::{INITIAL, KEYED_EVERY, RECOVERY, SKUS, Shape, run_name};

/// Hosts in every run, one per server.
const HOSTS: usize = 3;

/// One run's cluster, database and hosts.
struct ClusterRig {
    name: String,
    cluster: NatsCluster,
    db: TestDb,
    hosts: Vec<Beaker>,
    /// Each host's instance id, as its NATS connection is named.
    ids: Vec<String>,
}

impl ClusterRig {
    /// Starts the cluster, then the three hosts at once (the first day of
    /// a deployment: every replica creating the stream and the bucket).
    async fn start(name: &str) -> Result<Self> {
        let _ = std::fs::remove_dir_all(output_dir(name));
        let cluster = NatsCluster::start(name, HOSTS).await?;
        let db = TestDb::create().await?;
        let configs: Vec<BeakerConfig> = (0..HOSTS)
            .map(|i| {
                let mut config =
                    BeakerConfig::new(&format!("{name}/host-{i}"), &cluster.servers[i], &db)
                        // The relay's acks (sequence, duplicate) at debug:
                        // what follows an event through a failover.
                        .env("RUST_LOG", "info,beaker::events::relay=debug")
                        .env("BEAKER_EVENTS_REPLICAS", "3")
                        .env("BEAKER_RULES_BUCKET_REPLICAS", "3");
                config.nats_url = cluster.urls_from(i);
                config
            })
            .collect();
        let hosts = std::thread::scope(|scope| {
            let starting: Vec<_> = configs
                .iter()
                .map(|config| scope.spawn(move || Beaker::start(config)))
                .collect();
            starting
                .into_iter()
                .map(|s| {
                    s.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a host start panicked")))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let client = cluster.client().await?;
        let infos = service_infos(&client, Duration::from_millis(500)).await?;
        ensure!(
            infos.len() == HOSTS,
            "{} of {HOSTS} hosts answer",
            infos.len()
        );
        let ids = hosts
            .iter()
            .map(|host| {
                host.log_lines()
                    .iter()
                    .find(|l| l["message"] == "ready")
                    .and_then(|l| l["instance"].as_str().map(str::to_string))
                    .context("a ready line without the instance id")
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            name: name.to_string(),
            cluster,
            db,
            hosts,
            ids,
        })
    }

    fn urls(&self) -> String {
        self.cluster.urls_from(0)
    }

    async fn serving(&self) -> Result<()> {
        wait_until_serving(&self.urls(), SKUS[0], RECOVERY).await
    }

    /// Waits until the outbox is empty; returns how long that took.
    async fn drained(&self) -> Result<Duration> {
        let started = Instant::now();
        self.db
            .wait_outbox_drained(RECOVERY)
            .await
            .context("the backlog did not drain")?;
        Ok(started.elapsed())
    }
}

/// What one cluster run measured beside the books.
#[derive(Debug, Default)]
struct Measured {
    gap: Duration,
    drain: Duration,
}

/// Stocks, runs the load with `fault` at the shape's moment, releases the
/// rest once it has recovered, retries keyed requests, and settles the
/// books; returns them with the longest gap without answers from the
/// fault to the recovery.
async fn cluster_load(
    rig: &mut ClusterRig,
    title: &str,
    shape: Shape,
    fault: impl AsyncFnOnce(&mut ClusterRig) -> Result<Duration>,
) -> Result<(Books, Measured)> {
    let client = rig.cluster.client().await?;
    let mut records: Vec<Record> = stock_up(&client, &SKUS, INITIAL)
        .await
        .context("stocking up before the load")?;
    let hold_at = shape.fault_at + (shape.requests - shape.fault_at) / 2;
    let load = Load::start(
        &rig.urls(),
        plan(&SKUS, shape.requests, KEYED_EVERY, shape.plan_seed),
        shape.clients,
        Some(hold_at),
    )
    .await
    .context("starting the load")?;
    load.wait_for("the moment of the fault", RECOVERY, |t| {
        t.done >= shape.fault_at
    })
    .await?;
    let struck = Instant::now();
    let drain = fault(rig).await.context("the fault and the recovery")?;
    let recovered = Instant::now();
    load.release();
    let gap = load.longest_gap(struck, recovered);
    records.extend(load.finish().await.context("finishing the load")?);
    retry_keyed(&client, &mut records, 3)
        .await
        .context("retrying the keyed requests")?;
    rig.cluster.wait_healthy(RECOVERY).await?;
    let books = Books::check(title, &rig.db.pool, &client, EVENTS_STREAM, &records)
        .await
        .context("reading the books (ledger, outbox, stream)")?;
    if let Err(unclean) = books.assert_clean(&rig.name, &records) {
        // What each server holds, beside the books: a read through the
        // cluster shows only the leader's copy of the stream.
        let states = rig.cluster.stream_states(EVENTS_STREAM).await;
        let text = states
            .iter()
            .map(|(server, state)| format!("{server}: {state}\n"))
            .collect::<String>();
        let _ = std::fs::write(output_dir(&rig.name).join("streams.txt"), &text);
        return Err(unclean.context(format!("each server's {EVENTS_STREAM}:\n{text}")));
    }
    for (i, host) in rig.hosts.iter_mut().enumerate() {
        ensure!(host.is_running(), "host {i} did not survive the fault");
    }
    Ok((books, Measured { gap, drain }))
}

fn report(measured: &Measured, books: &Books) -> RunReport {
    let mut report = RunReport::default();
    report
        .figure("longest gap without answers", measured.gap)
        .figure("backlog drained", measured.drain)
        .note(format!(
            "{} requests, {} answers lost, {} events",
            books.sent, books.answers_lost, books.events_expected
        ));
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_stream_leader_killed_and_restarted_loses_no_event() -> Result<()> {
    campaign(
        "cluster_stream_leader_killed",
        |mut seed: Seed| async move {
            let name = run_name("cluster_stream_leader_killed", &seed);
            let shape = Shape::draw(&mut seed, 4..=8);
            let outage = seed.millis(0, 3000);
            let mut rig = ClusterRig::start(&name).await?;
            let (books, measured) = cluster_load(
                &mut rig,
                "cluster: the events stream's leader killed and restarted",
                shape,
                async |rig| {
                    let client = rig.cluster.client().await?;
                    let leader = rig.cluster.stream_leader(&client, EVENTS_STREAM).await?;
                    rig.cluster.servers[leader].kill();
                    tokio::time::sleep(outage).await;
                    rig.cluster.servers[leader].restart()?;
                    rig.serving().await?;
                    rig.drained().await
                },
            )
            .await?;
            ensure!(books.after_recovery_failures == 0);
            Ok(report(&measured, &books))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_lost_for_good_leaves_the_service_whole() -> Result<()> {
    campaign("cluster_server_lost", |mut seed: Seed| async move {
        let name = run_name("cluster_server_lost", &seed);
        let shape = Shape::draw(&mut seed, 4..=8);
        let lost = seed.between(0, HOSTS as u64 - 1) as usize;
        let mut rig = ClusterRig::start(&name).await?;
        let (books, measured) = cluster_load(
            &mut rig,
            "cluster: one server killed and not restarted",
            shape,
            async |rig| {
                rig.cluster.servers[lost].kill();
                rig.serving().await?;
                rig.drained().await
            },
        )
        .await?;
        ensure!(books.after_recovery_failures == 0);
        Ok(report(&measured, &books))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_fails_over_when_its_server_is_killed() -> Result<()> {
    campaign("cluster_host_fails_over", |mut seed: Seed| async move {
        let name = run_name("cluster_host_fails_over", &seed);
        let shape = Shape::draw(&mut seed, 4..=8);
        let host = seed.between(0, HOSTS as u64 - 1) as usize;
        let mut rig = ClusterRig::start(&name).await?;
        let mut moved = None;
        let (books, measured) = cluster_load(
            &mut rig,
            "cluster: the server a host is connected to killed",
            shape,
            async |rig| {
                let id = rig.ids[host].clone();
                let server = rig
                    .cluster
                    .server_of(&id)
                    .await?
                    .context("the host is connected to no server")?;
                rig.cluster.servers[server].kill();
                let deadline = Instant::now() + RECOVERY;
                let now_on = loop {
                    if let Some(other) = rig.cluster.server_of(&id).await? {
                        break other;
                    }
                    ensure!(Instant::now() < deadline, "the host never reconnected");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                ensure!(now_on != server, "the host is back on the server that died");
                moved = Some((server, now_on));
                rig.serving().await?;
                let drain = rig.drained().await?;
                rig.cluster.servers[server].restart()?;
                Ok(drain)
            },
        )
        .await?;
        ensure!(books.after_recovery_failures == 0);
        let mut report = report(&measured, &books);
        if let Some((from, to)) = moved {
            report.note(format!("host {host} moved from n{from} to n{to}"));
        }
        Ok(report)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_deploy_with_a_server_down_reaches_every_host() -> Result<()> {
    campaign(
        "cluster_deploy_with_a_server_down",
        |mut seed: Seed| async move {
            let name = run_name("cluster_deploy_with_a_server_down", &seed);
            let down = seed.between(0, HOSTS as u64 - 1) as usize;
            let mut rig = ClusterRig::start(&name).await?;
            let client = rig.cluster.client().await?;
            rig.cluster.servers[down].kill();
            let threshold = wasm("beaker_rules_threshold");
            let started = Instant::now();
            let deployed = beaker_cli(
                &rig.urls(),
                &[
                    "rules",
                    "deploy",
                    threshold.to_str().unwrap_or_default(),
                    "--rules-bucket-replicas",
                    "3",
                ],
            )?;
            ensure!(
                deployed.status.code() == Some(0),
                "deploy: {}\n{}",
                String::from_utf8_lossy(&deployed.stdout),
                String::from_utf8_lossy(&deployed.stderr)
            );
            let digest = sha256_file(&threshold)?;
            wait_for_rules(&client, HOSTS, "the deployed rules", |r| {
                r.digest == *digest
            })
            .await?;
            let took = started.elapsed();
            // The server that was down catches up; every host still agrees.
            rig.cluster.servers[down].restart()?;
            rig.cluster.wait_for_meta_leader(RECOVERY).await?;
            let reports = rules_reports(&client, Duration::from_millis(300)).await?;
            ensure!(
                reports.len() == HOSTS && reports.iter().all(|(_, r)| r.digest == *digest),
                "{reports:?}"
            );
            let mut report = RunReport::default();
            report
                .figure("deploy reached every host", took)
                .note(format!("n{down} down"));
            Ok(report)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_lost_keep_the_events_in_the_outbox_until_quorum_returns() -> Result<()> {
    campaign("cluster_quorum_lost", |mut seed: Seed| async move {
        let name = run_name("cluster_quorum_lost", &seed);
        let shape = Shape::draw(&mut seed, 4..=8);
        let kept = seed.between(0, HOSTS as u64 - 1) as usize;
        let away = seed.millis(1000, 4000);
        let mut rig = ClusterRig::start(&name).await?;
        let mut stalled = 0;
        let (books, measured) = cluster_load(
            &mut rig,
            "cluster: two servers lost, then one back",
            shape,
            async |rig| {
                let lost: Vec<usize> = (0..HOSTS).filter(|&i| i != kept).collect();
                for &i in &lost {
                    rig.cluster.servers[i].kill();
                }
                // Without a quorum nothing is acknowledged: events committed
                // meanwhile wait in the outbox.
                tokio::time::sleep(away).await;
                stalled = rig.db.pending_events().await?;
                rig.cluster.servers[lost[0]].restart()?;
                rig.serving().await?;
                let drain = rig.drained().await?;
                rig.cluster.servers[lost[1]].restart()?;
                Ok(drain)
            },
        )
        .await?;
        ensure!(books.after_recovery_failures == 0);
        let mut report = report(&measured, &books);
        report.note(format!("{stalled} events waited for the quorum"));
        Ok(report)
    })
    .await
}
