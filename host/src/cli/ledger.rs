//! `beaker ledger`: a product's movements, oldest first, and whether they
//! sum to its level.
//!
//! From the database when the command is given its URL (`--database-url`
//! or `DATABASE_URL`); otherwise through the service itself over NATS
//! (`stock.history`, page by page, and `stock.get`), so an operator who
//! holds NATS credentials and no database password can still read it.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::NatsArgs;
use crate::contract::wire::{Body, Endpoint, HistoryPage, HistoryRequest};
use crate::nats;
use crate::rules::digest::short;
use crate::store::{DbConfig, Store};

/// Where the ledger is read from.
pub(super) enum Source {
    Database(DbConfig),
    Service(Box<NatsArgs>),
}

/// How long each request to the service may wait for its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Movements asked for per page: the most `stock.history` gives.
const PAGE: u32 = 100;

/// One movement as printed, whichever source it came from.
struct Line {
    id: i64,
    time: DateTime<Utc>,
    operation: String,
    quantity: i64,
    level_before: i64,
    level_after: i64,
    rules_name: String,
    rules_version: String,
    /// The database has these; the service's history does not carry them.
    rules_digest: Option<String>,
    trace_id: Option<String>,
    request_id: String,
}

/// Why the ledger could not be read, and the exit status that says so.
struct Failure {
    message: String,
    /// 1: the database or the service refused; 3: no answer at all.
    status: u8,
}

pub(super) async fn ledger(source: Source, sku: &str, json: bool) -> ExitCode {
    let read = match source {
        Source::Database(config) => from_database(&config, sku).await,
        Source::Service(nats) => from_service(&nats, sku).await,
    };
    let (lines, level) = match read {
        Ok(read) => read,
        Err(failure) => {
            eprintln!("beaker ledger: {}", failure.message);
            return ExitCode::from(failure.status);
        }
    };
    if json {
        print_json(&lines);
    } else {
        print_table(sku, &lines, level);
    }
    ExitCode::SUCCESS
}

async fn from_database(config: &DbConfig, sku: &str) -> Result<(Vec<Line>, i64), Failure> {
    let failed = |e: crate::store::StoreError| Failure {
        message: e.to_string(),
        status: 1,
    };
    let store = Store::connect_lazy(config).map_err(failed)?;
    let (rows, level) = tokio::try_join!(store.ledger(sku), store.level(sku)).map_err(failed)?;
    let lines = rows
        .into_iter()
        .map(|row| Line {
            id: row.id,
            time: row.created_at,
            operation: row.operation,
            quantity: i64::from(row.quantity),
            level_before: i64::from(row.level_before),
            level_after: i64::from(row.level_after),
            rules_name: row.rules_name,
            rules_version: row.rules_version,
            rules_digest: Some(row.rules_digest),
            trace_id: row.trace_id,
            request_id: row.request_id.to_string(),
        })
        .collect();
    Ok((lines, level.map_or(0, i64::from)))
}

async fn from_service(args: &NatsArgs, sku: &str) -> Result<(Vec<Line>, i64), Failure> {
    let client = nats::connect_once(&args.into(), "beaker-ledger")
        .await
        .map_err(|e| Failure {
            message: e.to_string(),
            status: 3,
        })?;
    let mut newest_first = Vec::new();
    let mut before = None;
    loop {
        let request = HistoryRequest {
            sku: sku.to_string(),
            limit: Some(PAGE),
            before,
        };
        let page: HistoryPage = ask(&client, Endpoint::History, &request).await?;
        newest_first.extend(page.movements);
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let get = serde_json::json!({ "product-sku": sku });
    let level = match ask::<Body>(&client, Endpoint::Get, &get).await? {
        Body::Success { quantity, .. } => i64::from(quantity),
        Body::Failure { error, .. } => {
            return Err(Failure {
                message: error,
                status: 1,
            });
        }
    };
    let lines = newest_first
        .into_iter()
        .rev()
        .map(|m| {
            let quantity = i64::from(m.quantity);
            let level_after = i64::from(m.level_after);
            let change = if m.operation == "remove" {
                -quantity
            } else {
                quantity
            };
            Line {
                id: m.id,
                time: DateTime::parse_from_rfc3339(&m.at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default(),
                operation: m.operation,
                quantity,
                level_before: level_after - change,
                level_after,
                rules_name: m.rules.name,
                rules_version: m.rules.version,
                rules_digest: None,
                trace_id: None,
                request_id: m.request_id,
            }
        })
        .collect();
    Ok((lines, level))
}

/// Sends `request` to `endpoint` and decodes the reply; an error reply
/// (`{"ok":false,…}`) is a failure with its message.
async fn ask<T: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: Endpoint,
    request: &impl serde::Serialize,
) -> Result<T, Failure> {
    let subject = endpoint.subject();
    let payload = serde_json::to_vec(request).map_err(|e| Failure {
        message: e.to_string(),
        status: 1,
    })?;
    let asked = client.request(subject.to_string(), payload.into());
    let reply = match tokio::time::timeout(REPLY_TIMEOUT, asked).await {
        Err(_) => {
            return Err(Failure {
                message: format!("no reply on {subject} within {REPLY_TIMEOUT:?}"),
                status: 3,
            });
        }
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Err(Failure {
                message: format!(
                    "no service is listening on {subject} (give --database-url to read the database instead)"
                ),
                status: 3,
            });
        }
        Ok(Err(e)) => {
            return Err(Failure {
                message: e.to_string(),
                status: 3,
            });
        }
        Ok(Ok(reply)) => reply,
    };
    if let Ok(Body::Failure { error, .. }) = serde_json::from_slice::<Body>(&reply.payload) {
        return Err(Failure {
            message: format!("{subject}: {error}"),
            status: 1,
        });
    }
    serde_json::from_slice(&reply.payload).map_err(|e| Failure {
        message: format!("{subject} sent a reply this version cannot read: {e}"),
        status: 1,
    })
}

fn print_json(lines: &[Line]) {
    for line in lines {
        let mut row = serde_json::json!({
            "id": line.id,
            "time": line.time.to_rfc3339(),
            "operation": line.operation,
            "quantity": line.quantity,
            "level_before": line.level_before,
            "level_after": line.level_after,
            "rules_name": line.rules_name,
            "rules_version": line.rules_version,
            "request_id": line.request_id,
        });
        // Only what the source knows: the service's history has neither.
        if let Some(digest) = &line.rules_digest {
            row["rules_digest"] = digest.as_str().into();
        }
        if let Some(trace) = &line.trace_id {
            row["trace_id"] = trace.as_str().into();
        }
        println!("{row}");
    }
}

fn print_table(sku: &str, lines: &[Line], level: i64) {
    if lines.is_empty() {
        println!("{sku}: no movements (level {level})");
        return;
    }
    println!(
        "{:>8}  {:<20}  {:<6}  {:>8}  {:>10}  {:>10}  {:<32}  REQUEST",
        "ID", "TIME (UTC)", "OP", "QTY", "BEFORE", "AFTER", "RULES"
    );
    let mut sum: i64 = 0;
    for line in lines {
        sum += line.level_after - line.level_before;
        let rules = match &line.rules_digest {
            Some(digest) => format!(
                "{} {} ({})",
                line.rules_name,
                line.rules_version,
                short(digest)
            ),
            None => format!("{} {}", line.rules_name, line.rules_version),
        };
        println!(
            "{:>8}  {:<20}  {:<6}  {:>8}  {:>10}  {:>10}  {:<32}  {}",
            line.id,
            line.time.format("%Y-%m-%d %H:%M:%S"),
            line.operation,
            line.quantity,
            line.level_before,
            line.level_after,
            rules,
            line.request_id
        );
    }
    println!(
        "{sku}: level {level}; the changes sum to {sum}{}",
        if sum == level { "" } else { " (MISMATCH)" }
    );
}
