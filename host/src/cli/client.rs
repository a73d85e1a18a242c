//! The client commands: `beaker call` (one request, as any NATS client
//! would send it) and `beaker migrate`.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use async_nats::HeaderMap;

use crate::config::{DbArgs, NatsArgs};
use crate::contract::wire::{ERROR_CODE_HEADER, ERROR_HEADER};
use crate::nats;
use crate::store::{DbConfig, Store, redact_url};

pub(super) async fn migrate(db: &DbArgs) -> ExitCode {
    let config = DbConfig::from(db);
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

pub(super) async fn call(
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
    let client = match nats::connect_once(&args.into(), "beaker-call").await {
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
