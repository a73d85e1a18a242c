//! The NATS side of the load: requests to the service, and the echo
//! responder that stands for a service doing nothing.

use std::time::Duration;

use async_nats::RequestErrorKind;
use bytes::Bytes;
use futures::StreamExt;

use crate::error::BenchError;
use crate::load::CallResult;

/// The subject the echo responder answers on.
pub const ECHO_SUBJECT: &str = "bench.echo";
/// The payload size of the echo baseline, about a request and its reply.
pub const ECHO_PAYLOAD_BYTES: usize = 128;
/// How long a request waits for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `url` (or to any of several, comma-separated: a cluster),
/// with the client name shown in the server's connection list.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, BenchError> {
    let servers: Vec<&str> = url.split(',').map(str::trim).collect();
    async_nats::ConnectOptions::new()
        .name(name)
        .connect(servers)
        .await
        .map_err(|e| BenchError::NatsConnect {
            url: url.to_string(),
            message: e.to_string(),
        })
}

/// Sends one request and classifies the answer as the service's callers
/// would: an error reply carries `Nats-Service-Error-Code`.
pub async fn call(
    client: &async_nats::Client,
    subject: &'static str,
    payload: Bytes,
) -> CallResult {
    match send(client, subject, payload).await {
        Ok(reply) => classify(&reply),
        Err(result) => result,
    }
}

/// Sends one request; the reply, or how the call failed.
pub async fn send(
    client: &async_nats::Client,
    subject: &'static str,
    payload: Bytes,
) -> Result<async_nats::Message, CallResult> {
    let request = async_nats::Request::new()
        .payload(payload)
        .timeout(Some(REQUEST_TIMEOUT));
    client
        .send_request(subject, request)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::TimedOut => CallResult::TimedOut,
            RequestErrorKind::NoResponders => CallResult::NoResponders,
            _ => CallResult::Failed(e.to_string()),
        })
}

/// Success, or the error reply's code (500 when the code is unreadable).
pub fn classify(reply: &async_nats::Message) -> CallResult {
    let code = reply
        .headers
        .as_ref()
        .and_then(|headers| headers.get(beaker::contract::wire::ERROR_CODE_HEADER))
        .map(|value| value.as_str().parse::<u16>().unwrap_or(500));
    match code {
        None => CallResult::Ok,
        Some(code) => CallResult::Refused(code),
    }
}

/// The echo baseline's request body.
pub fn echo_payload() -> Bytes {
    Bytes::from(vec![b'x'; ECHO_PAYLOAD_BYTES])
}

/// Answers every request on [`ECHO_SUBJECT`] with its own payload until
/// the connection closes or the process is stopped. Prints `ready` on
/// stdout once the server has the subscription.
pub async fn echo(url: &str) -> Result<(), BenchError> {
    let client = connect(url, "beaker-bench echo").await?;
    let mut requests = client
        .queue_subscribe(ECHO_SUBJECT, "echo".into())
        .await
        .map_err(|e| BenchError::Nats(e.to_string()))?;
    client
        .flush()
        .await
        .map_err(|e| BenchError::Nats(e.to_string()))?;
    println!("ready");
    while let Some(message) = requests.next().await {
        if let Some(reply) = message.reply {
            client
                .publish(reply, message.payload)
                .await
                .map_err(|e| BenchError::Nats(e.to_string()))?;
        }
    }
    Ok(())
}
