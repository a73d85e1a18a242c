//! What running instances say about themselves over NATS micro, asked
//! through the host's own discovery helper.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use beaker::rules::RulesReport;
use beaker::service::micro::{Verb, ask_all};
use serde_json::Value;

/// The service's name in the micro protocol.
const SERVICE: &str = "beaker";

/// Every running instance's `$SRV.INFO`, collected for `window`.
pub async fn service_infos(client: &async_nats::Client, window: Duration) -> Result<Vec<Value>> {
    ask_all(client, Verb::Info, SERVICE, window, None)
        .await
        .map_err(|e| anyhow!("$SRV.INFO.{SERVICE}: {e}"))
}

/// Every running instance's `$SRV.STATS`, once `count` have answered (or
/// after `timeout`, with those that did).
pub async fn service_stats(
    client: &async_nats::Client,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Value>> {
    ask_all(client, Verb::Stats, SERVICE, timeout, Some(count))
        .await
        .map_err(|e| anyhow!("$SRV.STATS.{SERVICE}: {e}"))
}

/// Requests an instance's statistics count over its `stock.*` endpoints.
pub fn requests_served(stats: &Value) -> u64 {
    stats["endpoints"]
        .as_array()
        .map(|endpoints| {
            endpoints
                .iter()
                .filter_map(|e| e["num_requests"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// The rules an instance reports in its `$SRV.INFO`.
pub fn rules_of(info: &Value) -> Result<RulesReport> {
    Ok(RulesReport::from_metadata(&info["metadata"])?)
}

/// Every running instance's id and rules, collected for `window`.
pub async fn rules_reports(
    client: &async_nats::Client,
    window: Duration,
) -> Result<Vec<(String, RulesReport)>> {
    service_infos(client, window)
        .await?
        .iter()
        .map(|info| {
            let id = info["id"].as_str().unwrap_or_default().to_string();
            Ok((id, rules_of(info)?))
        })
        .collect()
}

/// Waits until exactly `count` instances answer and every one's rules
/// satisfy `holds` (`what` names the wait in the error), and returns them.
pub async fn wait_for_rules(
    client: &async_nats::Client,
    count: usize,
    what: &str,
    holds: impl Fn(&RulesReport) -> bool,
) -> Result<Vec<(String, RulesReport)>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reports = rules_reports(client, Duration::from_millis(150)).await?;
        if reports.len() == count && reports.iter().all(|(_, r)| holds(r)) {
            return Ok(reports);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {count} instance(s) with {what}; last seen: {reports:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
