//! Scaling out: the same load against one host and then three, on a NATS
//! cluster of three servers started for the purpose (the test kit's
//! [`NatsCluster`]) and the one Postgres. Beaker adds no clustering of its
//! own: the hosts share the load through the queue group, so the ceiling
//! they meet is the database's — which the same-SQL baseline measures in
//! the same run.

use std::path::Path;

use beaker_testkit::NatsCluster;

use crate::error::BenchError;
use crate::host::{Host, HostConfig};
use crate::load::{self, Phase, Summary};
use crate::mix::Mix;
use crate::nats;
use crate::run::Settings;
use crate::sql;

/// Servers in the cluster, and the most hosts measured.
const SERVERS: usize = 3;

/// One host and three, under the same load.
#[derive(Debug, Clone)]
pub struct ScalingResults {
    pub mix: Mix,
    pub concurrency: usize,
    pub one_host: Summary,
    pub three_hosts: Summary,
}

/// Starts the cluster, measures `mix` at `concurrency` with one host, then
/// with three (each preferring another server), and stops everything.
pub async fn measure(
    settings: &Settings,
    mix: Mix,
    concurrency: usize,
) -> Result<ScalingResults, BenchError> {
    let cluster = NatsCluster::start("bench-scaling", SERVERS)
        .await
        .map_err(|e| BenchError::Harness(format!("the NATS cluster: {e:#}")))?;
    sql::reset(&settings.database_url, settings.products, &[], 0).await?;
    let config = |i: usize| HostConfig {
        beaker: settings.beaker.clone(),
        nats_url: cluster.urls_from(i),
        database_url: settings.database_url.clone(),
        rules: settings.rules.clone(),
        extra_args: vec![
            "--events-replicas=3".into(),
            "--rules-bucket-replicas=3".into(),
        ],
        log: log(&settings.log_dir, i),
    };
    let client = nats::connect(&cluster.urls_from(0), "beaker-bench scaling").await?;
    let phase = Phase {
        concurrency,
        warmup: settings.warmup,
        measure: settings.measure,
    };
    let products = settings.products;
    let drive = |client: async_nats::Client, metered: Vec<u32>| async move {
        load::closed_loop(phase, &metered, move |worker, sequence| {
            let client = client.clone();
            let pick = mix.pick(products, worker, sequence);
            async move { nats::call(&client, pick.subject(), pick.payload()).await }
        })
        .await
    };
    let mut hosts = vec![Host::start(&config(0)).await?];
    let pids = |hosts: &[Host]| hosts.iter().filter_map(Host::pid).collect::<Vec<_>>();
    let one_host = drive(client.clone(), pids(&hosts)).await;
    eprintln!("    one host on the cluster: {:.0}/s", one_host.throughput);
    for i in 1..SERVERS {
        hosts.push(Host::start(&config(i)).await?);
    }
    let three_hosts = drive(client.clone(), pids(&hosts)).await;
    eprintln!(
        "    three hosts on the cluster: {:.0}/s",
        three_hosts.throughput
    );
    for host in hosts {
        host.stop().await?;
    }
    drop(cluster);
    Ok(ScalingResults {
        mix,
        concurrency,
        one_host,
        three_hosts,
    })
}

fn log(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("beaker-scaling-{i}.log"))
}
