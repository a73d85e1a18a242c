//! The `beaker` command line: `serve`, `gateway`, `openapi`, `migrate`,
//! `call`, `ledger`, `rules`.

mod rules;

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use async_nats::HeaderMap;
use clap::{Parser, Subcommand};

use crate::app;
use crate::config::{DbArgs, GatewayCommandArgs, LogArgs, NatsArgs, ServeArgs};
use crate::gateway;
use crate::nats;
use crate::store::{Store, redact_url};
use crate::wire::{ERROR_CODE_HEADER, ERROR_HEADER};

/// Beaker: an inventory service on NATS, with its business rules in a
/// WebAssembly component.
///
/// Every option can also be set through the environment variable shown
/// beside it.
#[derive(Debug, Parser)]
#[command(name = "beaker", version, about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: answer stock.add, stock.remove and stock.get on NATS.
    ///
    /// Migrates the database first (unless --skip-migrations), loads the
    /// rules component, and serves until SIGINT or SIGTERM; then it stops
    /// taking requests, answers those in flight and exits 0.
    Serve(Box<ServeArgs>),
    /// Run the HTTP gateway: NATS request/reply, publish and subscribe over
    /// HTTP, shaped like the Synadia Cloud HTTP Gateway, plus the operator
    /// console (GET /) and the OpenAPI document (GET /openapi.json).
    ///
    /// Routes: POST /v1/nats/subjects/{subject} (request/reply),
    /// PUT /v1/nats/subjects/{subject} (publish), GET /v1/nats/subjects/{subject}
    /// (subscribe, server-sent events). Callers present a token
    /// (Authorization: Bearer <token>); without configured tokens the gateway
    /// refuses to start unless --gateway-allow-anonymous is given.
    ///
    /// Example: BEAKER_GATEWAY_TOKENS=s3cret beaker gateway
    Gateway(Box<GatewayCommandArgs>),
    /// Print the gateway's OpenAPI 3.1 document (generated from schemas/).
    Openapi,
    /// Create the database if needed and apply the migrations, then exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Send one request and print the reply: the body on stdout, the
    /// service's error headers on stderr.
    ///
    /// Exit status: 0 for a successful reply, 1 for an error reply, 3 when
    /// no reply came (no service, timeout, no NATS).
    ///
    /// Example: beaker call stock.add '{"product-sku":"widget-1","quantity":5}'
    Call {
        /// Subject to send to, e.g. stock.get.
        subject: String,
        /// Request body, sent as is; `-` reads it from stdin.
        #[arg(default_value = "")]
        body: String,
        /// Header to send, as NAME:VALUE (repeatable).
        #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// How long to wait for the reply, in milliseconds.
        #[arg(long = "timeout-ms", default_value_t = 5000)]
        timeout_ms: u64,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Check, deploy, shadow, promote and roll back the rules component.
    #[command(subcommand)]
    Rules(Box<rules::RulesCommand>),
    /// Print a product's ledger: every applied change, oldest first.
    Ledger {
        /// The product's SKU.
        sku: String,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Runs the parsed command; errors are printed here, once, for a person.
/// Sets up logging (and, for `serve`, traces and metrics) first.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => {
            let telemetry = match crate::telemetry::init_service(
                cli.log.format,
                "info,async_nats=warn,sqlx=warn",
            ) {
                Ok(telemetry) => std::sync::Arc::new(telemetry),
                Err(e) => {
                    eprintln!("beaker: {e}");
                    return ExitCode::from(1);
                }
            };
            serve(*args, telemetry).await
        }
        Command::Gateway(args) => {
            crate::telemetry::init_logging(cli.log.format, "info,async_nats=warn");
            match gateway::run(*args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "beaker gateway stopped");
                    eprintln!("beaker: {e}");
                    ExitCode::from(1)
                }
            }
        }
        command => {
            // The client commands log only what goes wrong.
            crate::telemetry::init_logging(cli.log.format, "warn");
            run_client(command).await
        }
    }
}

async fn serve(
    args: ServeArgs,
    telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
) -> ExitCode {
    match app::serve(args, telemetry).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "beaker serve stopped");
            eprintln!("beaker: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run_client(command: Command) -> ExitCode {
    match command {
        // `run` serves both; nothing else reaches here with them.
        Command::Serve(_) | Command::Gateway(_) => ExitCode::from(2),
        Command::Openapi => {
            use std::io::Write;
            let document = gateway::openapi::document_bytes();
            match std::io::stdout().write_all(&document) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("beaker openapi: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Migrate { db } => migrate(&db).await,
        Command::Call {
            subject,
            body,
            headers,
            timeout_ms,
            nats,
        } => call(&nats, &subject, &body, &headers, timeout_ms).await,
        Command::Ledger { sku, json, db } => ledger(&db, &sku, json).await,
        Command::Rules(command) => rules::run(*command).await,
    }
}

async fn migrate(db: &DbArgs) -> ExitCode {
    let config = db.config();
    let result = async {
        if Store::ensure_database(&config.url).await? {
            eprintln!("created database {}", redact_url(&config.url));
        }
        let store = Store::connect_lazy(&config)?;
        store.migrate().await?;
        store.close().await;
        Ok::<_, crate::store::StoreError>(())
    }
    .await;
    match result {
        Ok(()) => {
            eprintln!("migrations applied to {}", redact_url(&config.url));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("beaker migrate: {e}");
            ExitCode::from(1)
        }
    }
}

async fn call(
    args: &NatsArgs,
    subject: &str,
    body: &str,
    raw_headers: &[String],
    timeout_ms: u64,
) -> ExitCode {
    let payload = if body == "-" {
        let mut buffer = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut buffer) {
            eprintln!("beaker call: cannot read the body from stdin: {e}");
            return ExitCode::from(2);
        }
        buffer
    } else {
        body.as_bytes().to_vec()
    };
    let mut headers = HeaderMap::new();
    for raw in raw_headers {
        let Some((name, value)) = raw.split_once(':') else {
            eprintln!("beaker call: header {raw:?} is not NAME:VALUE");
            return ExitCode::from(2);
        };
        headers.insert(name.trim(), value.trim());
    }
    let client = match nats::connect_once(args, "beaker-call").await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("beaker call: {e}");
            return ExitCode::from(3);
        }
    };
    let request = async_nats::Request::new()
        .payload(payload.into())
        .headers(headers)
        .timeout(Some(Duration::from_millis(timeout_ms)));
    let reply = match client.send_request(subject.to_string(), request).await {
        Ok(reply) => reply,
        Err(e) => {
            let why = match e.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    format!("no service is listening on {subject}")
                }
                async_nats::RequestErrorKind::TimedOut => {
                    format!("no reply on {subject} within {timeout_ms} ms")
                }
                _ => e.to_string(),
            };
            eprintln!("beaker call: {why}");
            return ExitCode::from(3);
        }
    };
    println!("{}", String::from_utf8_lossy(&reply.payload));
    let mut failed = false;
    if let Some(headers) = &reply.headers {
        for name in [ERROR_HEADER, ERROR_CODE_HEADER] {
            if let Some(value) = headers.get(name) {
                failed = true;
                eprintln!("{name}: {value}");
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn ledger(db: &DbArgs, sku: &str, json: bool) -> ExitCode {
    let store = match Store::connect_lazy(&db.config()) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("beaker ledger: {e}");
            return ExitCode::from(1);
        }
    };
    let (rows, level) = match tokio::try_join!(store.ledger(sku), store.level(sku)) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("beaker ledger: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        for row in &rows {
            let line = serde_json::json!({
                "id": row.id,
                "time": row.created_at.to_rfc3339(),
                "operation": row.operation,
                "quantity": row.quantity,
                "level_before": row.level_before,
                "level_after": row.level_after,
                "rules_name": row.rules_name,
                "rules_version": row.rules_version,
                "rules_digest": row.rules_digest,
                "request_id": row.request_id.to_string(),
                "trace_id": row.trace_id,
            });
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    if rows.is_empty() {
        println!("{sku}: no movements (level {})", level.unwrap_or(0));
        return ExitCode::SUCCESS;
    }
    println!(
        "{:>8}  {:<20}  {:<6}  {:>8}  {:>10}  {:>10}  {:<32}  REQUEST",
        "ID", "TIME (UTC)", "OP", "QTY", "BEFORE", "AFTER", "RULES"
    );
    let mut sum: i64 = 0;
    for row in &rows {
        sum += i64::from(row.level_after) - i64::from(row.level_before);
        let rules = format!(
            "{} {} ({})",
            row.rules_name,
            row.rules_version,
            row.rules_digest.get(..8).unwrap_or(&row.rules_digest)
        );
        println!(
            "{:>8}  {:<20}  {:<6}  {:>8}  {:>10}  {:>10}  {:<32}  {}",
            row.id,
            row.created_at.format("%Y-%m-%d %H:%M:%S"),
            row.operation,
            row.quantity,
            row.level_before,
            row.level_after,
            rules,
            row.request_id
        );
    }
    let level = level.unwrap_or(0);
    println!(
        "{sku}: level {level}; the changes sum to {sum}{}",
        if sum == i64::from(level) {
            ""
        } else {
            " (MISMATCH)"
        }
    );
    ExitCode::SUCCESS
}
