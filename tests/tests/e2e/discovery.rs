//! NATS micro discovery: `$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`.

use anyhow::Result;
use beaker_testkit::TestEnv;
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_names_the_service_its_endpoints_and_its_rules() -> Result<()> {
    let env = TestEnv::start("discovery_info").await?;
    let info = env.call("$SRV.INFO.beaker", "").await?.body;
    assert_eq!(info["type"], "io.nats.micro.v1.info_response");
    assert_eq!(info["name"], "beaker");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let endpoints: Vec<(String, String, String)> = info["endpoints"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap_or_default().to_string(),
                        e["subject"].as_str().unwrap_or_default().to_string(),
                        e["queue_group"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let expected: Vec<(String, String, String)> = [
        ("add", "stock.add"),
        ("remove", "stock.remove"),
        ("get", "stock.get"),
        ("history", "stock.history"),
    ]
    .iter()
    .map(|(n, s)| (n.to_string(), s.to_string(), "q".to_string()))
    .collect();
    assert_eq!(endpoints, expected);

    let bytes = std::fs::read(beaker_testkit::default_rules())?;
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(info["metadata"]["rules_name"], "beaker-default-rules");
    assert_eq!(info["metadata"]["rules_digest"], digest.as_str());
    assert!(info["metadata"]["rules_version"].is_string());

    let ping = env.call("$SRV.PING", "").await?.body;
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    assert_eq!(ping["id"], info["id"]);
    let by_id = env
        .call(
            &format!(
                "$SRV.PING.beaker.{}",
                info["id"].as_str().unwrap_or_default()
            ),
            "",
        )
        .await?
        .body;
    assert_eq!(by_id["id"], info["id"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_requests_and_errors_per_endpoint() -> Result<()> {
    let env = TestEnv::start("discovery_stats").await?;
    env.add("s", 5).await?;
    env.add("s", 1).await?;
    env.remove("s", 100).await?; // 409
    env.call("stock.remove", "nonsense").await?; // 400
    env.get("s").await?;

    let stats = env.call("$SRV.STATS.beaker", "").await?.body;
    assert_eq!(stats["type"], "io.nats.micro.v1.stats_response");
    let endpoint = |name: &str| {
        stats["endpoints"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["name"] == name).cloned())
            .unwrap_or_default()
    };
    assert_eq!(endpoint("add")["num_requests"], 2);
    assert_eq!(endpoint("add")["num_errors"], 0);
    assert_eq!(endpoint("remove")["num_requests"], 2);
    assert_eq!(endpoint("remove")["num_errors"], 2);
    assert!(
        endpoint("remove")["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("400:")),
        "{}",
        endpoint("remove")
    );
    assert_eq!(endpoint("get")["num_requests"], 1);
    assert!(endpoint("add")["processing_time"].as_u64().unwrap_or(0) > 0);
    Ok(())
}
