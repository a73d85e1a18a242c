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
    let payload = match request_body(body, std::io::stdin().lock()) {
        Ok(payload) => payload,
        Err(why) => {
            eprintln!("beaker call: {why}");
            return ExitCode::from(2);
        }
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

/// The body to send: `body` as given, or with `-` what `stdin` holds. A
/// `-` with nothing (or only whitespace) on stdin is a mistake, a pipe
/// that produced nothing, so it is refused rather than sent as an empty
/// request; an empty body is sent by omitting it.
fn request_body(body: &str, mut stdin: impl Read) -> Result<Vec<u8>, String> {
    if body != "-" {
        return Ok(body.as_bytes().to_vec());
    }
    let mut buffer = Vec::new();
    stdin
        .read_to_end(&mut buffer)
        .map_err(|e| format!("cannot read the body from stdin (`-`): {e}"))?;
    if buffer.trim_ascii().is_empty() {
        return Err("the body is read from stdin (`-`), but stdin was empty".into());
    }
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dash_reads_the_body_from_stdin_and_anything_else_is_the_body() {
        let stdin = &b"{\"product-sku\":\"a\"}\n"[..];
        assert_eq!(
            request_body("-", stdin).as_deref(),
            Ok(&b"{\"product-sku\":\"a\"}\n"[..])
        );
        assert_eq!(
            request_body("{}", &b"ignored"[..]).as_deref(),
            Ok(&b"{}"[..])
        );
        assert_eq!(request_body("", &b"ignored"[..]).as_deref(), Ok(&b""[..]));
    }

    #[test]
    fn an_empty_or_unreadable_stdin_is_refused_with_the_reason() {
        for empty in [&b""[..], b" \n\t"] {
            let refused = request_body("-", empty).err().unwrap_or_default();
            assert!(refused.contains("stdin was empty"), "{refused}");
        }
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("device gone"))
            }
        }
        let refused = request_body("-", Broken).err().unwrap_or_default();
        assert!(
            refused.contains("cannot read the body from stdin"),
            "{refused}"
        );
        assert!(refused.contains("device gone"), "{refused}");
    }
}
