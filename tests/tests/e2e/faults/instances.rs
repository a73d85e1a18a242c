//! Three hosts on one NATS and one database share the load and keep the
//! same books.

use std::time::Duration;

use anyhow::{Result, ensure};
use beaker_testkit::campaign::{RunReport, Seed, campaign};
use beaker_testkit::faults::{Books, Load, plan, retry_keyed, stock_up};
use beaker_testkit::{
    Beaker, BeakerConfig, EVENTS_STREAM, NatsServer, TestDb, output_dir, requests_served,
    service_stats,
};

use super::{INITIAL, KEYED_EVERY, SKUS, run_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_load_and_keep_the_books() -> Result<()> {
    campaign("three_instances", |mut seed: Seed| async move {
        let name = run_name("three_instances", &seed);
        let requests = seed.between(600, 1200) as usize;
        let clients = seed.between(6, 16) as usize;
        let plan_seed = seed.fork();
        let _ = std::fs::remove_dir_all(output_dir(&name));
        let nats = NatsServer::start(&name)?;
        let db = TestDb::create().await?;
        let hosts: Vec<Beaker> = (0..3)
            .map(|i| {
                let config = BeakerConfig::new(&name, &nats, &db).env("RUST_LOG", "info");
                let config = BeakerConfig {
                    name: format!("{name}/host-{i}"),
                    ..config
                };
                Beaker::start(&config)
            })
            .collect::<Result<_>>()?;

        let client = nats.client().await?;
        let mut records = stock_up(&client, &SKUS, INITIAL).await?;
        let load = Load::start(
            &nats.url(),
            plan(&SKUS, requests, KEYED_EVERY, plan_seed),
            clients,
            None,
        )
        .await?;
        records.extend(load.finish().await?);
        retry_keyed(&client, &mut records, 1).await?;
        let books = Books::check(
            "three hosts, one NATS, one database, shared products",
            &db.pool,
            &client,
            EVENTS_STREAM,
            &records,
        )
        .await?;

        // Every answer came from one of the three, and each took its share.
        let stats = service_stats(&client, hosts.len(), Duration::from_secs(5)).await?;
        let served: Vec<(String, u64)> = stats
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap_or_default().to_string(),
                    requests_served(s),
                )
            })
            .collect();
        let mut table = String::from("\n| instance | requests served |\n| --- | ---: |\n");
        for (id, count) in &served {
            table.push_str(&format!("| {id} | {count} |\n"));
        }
        println!("{table}");
        books.assert_clean(&name, &records)?;

        let answered: u64 = records.iter().map(|r| r.attempts.len() as u64).sum();
        ensure!(books.answers_lost + books.no_responders == 0);
        ensure!(
            served.len() == 3,
            "{} instances answered $SRV.STATS",
            served.len()
        );
        ensure!(
            served.iter().map(|(_, n)| n).sum::<u64>() == answered,
            "the instances did not serve every request once between them: {served:?} for {answered}"
        );
        for (id, count) in &served {
            ensure!(
                *count * 5 >= answered,
                "instance {id} served {count} of {answered}: not a fair share"
            );
        }
        drop(hosts);
        let mut report = RunReport::default();
        report.note(format!("{requests} requests from {clients} clients"));
        Ok(report)
    })
    .await
}
