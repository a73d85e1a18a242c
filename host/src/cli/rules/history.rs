//! `beaker rules history`: the bucket's deployments, newest first, so that
//! an operator can see what `rollback --to` may name.

use std::process::ExitCode;

use serde::Serialize;

use super::table::print_table;
use super::{RemoteArgs, UNREACHABLE, connect, fail};
use crate::rules::bucket::{Deployments, Pointer, Target};

/// One line of the history.
#[derive(Debug, Serialize)]
struct Entry<'a> {
    /// `shadow`, `active` or `earlier`.
    role: &'static str,
    #[serde(flatten)]
    target: &'a Target,
}

pub(super) async fn history(remote: &RemoteArgs, json: bool) -> ExitCode {
    let (_client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    let Deployments { active, shadow } = match store.deployments().await {
        Ok(deployments) => deployments,
        Err(e) => return fail(UNREACHABLE, e),
    };
    let shadow = shadow.map(Target::Component);
    let mut entries = Vec::new();
    if let Some(shadow) = &shadow {
        entries.push(Entry {
            role: "shadow",
            target: shadow,
        });
    }
    if let Some(active) = &active {
        entries.push(Entry {
            role: "active",
            target: &active.current,
        });
        entries.extend(active.history.iter().map(|target| Entry {
            role: "earlier",
            target,
        }));
    }
    if json {
        let document = serde_json::json!({ "bucket": remote.bucket, "deployments": entries });
        println!("{document:#}");
        return ExitCode::SUCCESS;
    }
    if active.is_none() {
        println!(
            "bucket {}: nothing deployed (instances serve their rules file)",
            remote.bucket
        );
    }
    if entries.is_empty() {
        return ExitCode::SUCCESS;
    }
    let rows: Vec<[String; 5]> = entries.iter().map(row).collect();
    let header = ["ROLE", "DEPLOYED", "BY", "RULES", "SHA256"].map(String::from);
    print_table(&header, &rows);
    ExitCode::SUCCESS
}

fn row(entry: &Entry<'_>) -> [String; 5] {
    let (rules, digest) = match entry.target {
        Target::Component(Pointer {
            name,
            version,
            digest,
            ..
        }) => (format!("{name} {version}"), digest.short().to_string()),
        Target::File(_) => ("each instance's rules file".into(), "-".into()),
    };
    [
        entry.role.to_string(),
        entry
            .target
            .deployed_at()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        entry.target.deployed_by().unwrap_or("-").to_string(),
        rules,
        digest,
    ]
}
