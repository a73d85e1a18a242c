//! What the metrics address serves: request counters that count exactly,
//! the gauges, and readiness that follows the database.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use beaker_testkit::proxy::TcpProxy;
use beaker_testkit::{
    Beaker, BeakerConfig, NatsServer, TestDb, TestEnv, metric_sum, scrape_metrics,
};

fn requests(samples: &HashMap<String, f64>, endpoint: &str, outcome: &str) -> f64 {
    metric_sum(
        samples,
        "beaker_requests_total",
        &[("endpoint", endpoint), ("outcome", outcome)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_requests_made() -> Result<()> {
    let env = TestEnv::start("metrics_count").await?;
    let before = scrape_metrics(&env.beaker).await?;
    for _ in 0..7 {
        env.add("counted", 2).await?;
    }
    for _ in 0..3 {
        env.remove("counted", 1000).await?; // 409
    }
    env.call("stock.get", "not json").await?; // 400
    let after = scrape_metrics(&env.beaker).await?;
    assert_eq!(
        requests(&after, "add", "ok") - requests(&before, "add", "ok"),
        7.0
    );
    assert_eq!(
        requests(&after, "remove", "conflict") - requests(&before, "remove", "conflict"),
        3.0
    );
    assert_eq!(
        requests(&after, "get", "bad_request") - requests(&before, "get", "bad_request"),
        1.0
    );
    let histogram_count: f64 = after
        .iter()
        .filter(|(s, _)| {
            s.starts_with("messaging_process_duration_seconds_count{") && s.contains("stock.add")
        })
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(histogram_count, 7.0);
    let active = after
        .keys()
        .find(|s| s.starts_with("beaker_rules_active{"))
        .context("active rules gauge")?;
    assert!(
        active.contains("rules_name=\"beaker-default-rules\""),
        "{active}"
    );
    for gauge in [
        "db_client_connection_count{",
        "beaker_outbox_backlog{",
        "beaker_nats_connected{",
    ] {
        assert!(
            after.keys().any(|s| s.starts_with(gauge)),
            "{gauge} missing"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() -> Result<()> {
    let nats = NatsServer::start("readiness")?;
    let db = TestDb::create().await?;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse()?).await?;
    let mut config = BeakerConfig::new("readiness", &nats, &db);
    config.database_url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let beaker = Beaker::start(&config)?;
    let url = format!(
        "{}/readyz",
        beaker.metrics_url().context("metrics address")?
    );
    let client = reqwest::Client::new();
    let status = |client: reqwest::Client, url: String| async move {
        let response = client.get(&url).send().await?;
        let code = response.status().as_u16();
        let body: serde_json::Value = serde_json::from_str(&response.text().await?)?;
        anyhow::Ok((code, body))
    };

    let (code, body) = status(client.clone(), url.clone()).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["checks"]["database"], "reachable");

    proxy.cut();
    let (code, body) = status(client.clone(), url.clone()).await?;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["checks"]["database"]
            .as_str()
            .unwrap_or("")
            .starts_with("unreachable"),
        "{body}"
    );
    assert_eq!(body["checks"]["nats"], "connected");
    let health = client.get(url.replace("readyz", "healthz")).send().await?;
    assert_eq!(health.status().as_u16(), 200, "alive all the same");

    proxy.restore().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = status(client.clone(), url.clone()).await?;
        if code == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready again: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
