//! `beaker rules status`: every running instance with its rules, shadow
//! and last refusal, and what the bucket holds.

use std::process::ExitCode;

use serde_json::Value;

use super::{RemoteArgs, UNREACHABLE, connect, fail};
use crate::rules::bucket::Deployments;
use crate::service::micro::discover;
use crate::startup::SERVICE_NAME;

pub(super) async fn status(remote: &RemoteArgs, json: bool) -> ExitCode {
    let (client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    let Deployments { active, shadow } = store.deployments().await.unwrap_or_default();
    let instances = discover(&client, SERVICE_NAME, remote.discovery_window)
        .await
        .unwrap_or_default();
    if json {
        let document = serde_json::json!({
            "bucket": {
                "name": remote.bucket,
                "active": active,
                "shadow": shadow,
            },
            "instances": instances.values().map(|info| {
                let mut entry = info.metadata.as_object().cloned().unwrap_or_default();
                entry.insert("id".into(), Value::String(info.id.clone()));
                Value::Object(entry)
            }).collect::<Vec<_>>(),
        });
        println!("{document:#}");
    } else {
        match &active {
            Some(d) => println!(
                "bucket {}: active {}, deployed {}{}; {} earlier deployment(s) (beaker rules history)",
                remote.bucket,
                d.current.describe(),
                d.current.deployed_at().format("%Y-%m-%d %H:%M:%S UTC"),
                d.current
                    .deployed_by()
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default(),
                d.history.len()
            ),
            None => println!(
                "bucket {}: nothing deployed (instances serve their rules file)",
                remote.bucket
            ),
        }
        if let Some(s) = &shadow {
            println!(
                "bucket {}: shadow {} {} ({})",
                remote.bucket,
                s.name,
                s.version,
                s.digest.short()
            );
        }
        if !instances.is_empty() {
            println!(
                "{:<32}  {:<32}  {:<12}  {:<25}  SHADOW",
                "INSTANCE", "RULES", "SHA256", "ACTIVE SINCE"
            );
        }
        for (id, info) in &instances {
            let Ok(rules) = info.rules() else {
                println!(
                    "{id:<32}  (its metadata reports no rules: another service, or another version?)"
                );
                continue;
            };
            let shadow_text = match &rules.shadow {
                None => "-".to_string(),
                Some(s) => format!(
                    "{} {} ({}): {} agree, {} diverge, {} failed",
                    s.name,
                    s.version,
                    s.digest.short(),
                    s.agreements,
                    s.divergences,
                    s.failures,
                ),
            };
            println!(
                "{:<32}  {:<32}  {:<12}  {:<25}  {}",
                id,
                format!("{} {}", rules.name, rules.version),
                rules.digest.short(),
                short_time(&rules.since),
                shadow_text
            );
            if let Some(refusal) = &rules.refused {
                println!(
                    "{:<32}  last refused {} at {}: {}",
                    "",
                    refusal.digest.short(),
                    short_time(&refusal.at),
                    refusal.reason
                );
            }
            if let Some(bucket) = &rules.bucket {
                if let (Some(since), Some(reason)) = (&bucket.lost_since, &bucket.lost_reason) {
                    println!(
                        "{:<32}  BUCKET LOST since {}: {reason} (it serves what it had; deploys do not reach it)",
                        "",
                        short_time(since)
                    );
                }
                if let Some(skipped) = &bucket.last_skipped {
                    println!(
                        "{:<32}  skipped {} bucket entr{}; the last, {} at sequence {} ({}): {}",
                        "",
                        bucket.skipped,
                        if bucket.skipped == 1 { "y" } else { "ies" },
                        skipped.object,
                        skipped.sequence,
                        short_time(&skipped.at),
                        skipped.reason
                    );
                }
            }
        }
    }
    if instances.is_empty() {
        return fail(
            UNREACHABLE,
            format!("no running instance answered on $SRV.INFO.{SERVICE_NAME}"),
        );
    }
    ExitCode::SUCCESS
}

/// An RFC 3339 time to the second, for the table.
fn short_time(rfc3339: &str) -> &str {
    rfc3339.get(..19).unwrap_or(rfc3339)
}
