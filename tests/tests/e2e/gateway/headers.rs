//! The header mapping between HTTP and NATS: `NatsH-` headers both ways,
//! `Idempotency-Key` as `Nats-Msg-Id`, and the W3C trace context passed on.

use anyhow::{Context, Result};
use beaker_testkit::TestEnv;
use futures::StreamExt;
use reqwest::Method;

use super::LONG;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_travel_both_ways_and_idempotency_key_becomes_nats_msg_id() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_headers").await?;
    let http = env.http()?;
    // A test responder on an allowed subject: it echoes what it received.
    let mut echo = env.client.subscribe("stock.echo").await?;
    beaker_testkit::server_roundtrip(&env.client).await?;
    let responder = {
        let client = env.client.clone();
        tokio::spawn(async move {
            let message = echo.next().await.context("no request")?;
            let headers = message.headers.clone().unwrap_or_default();
            let mut reply = async_nats::HeaderMap::new();
            reply.insert("Echo-Count", headers.iter().count().to_string().as_str());
            reply.append("Multi", "one");
            reply.append("Multi", "two");
            let reply_to = message.reply.clone().context("no reply subject")?;
            client
                .publish_with_headers(reply_to, reply, message.payload.clone())
                .await?;
            anyhow::Ok(message)
        })
    };
    let reply = http
        .send(
            http.authorized(Method::POST, &http.subject_url("stock.echo"))
                .header("NatsH-Hello-World", "Hi")
                .header("natsh-trace-id", "abc-123")
                .header("Idempotency-Key", "order-42")
                .header("X-Not-Forwarded", "no")
                .body("ping"),
        )
        .await?;
    let request = tokio::time::timeout(LONG, responder)
        .await
        .context("the responder never got the request")???;
    let headers = request.headers.clone().unwrap_or_default();
    assert_eq!(headers.get("Hello-World").map(|v| v.as_str()), Some("Hi"));
    assert_eq!(headers.get("Trace-Id").map(|v| v.as_str()), Some("abc-123"));
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("order-42")
    );
    // The gateway says how long it waits (its default timeout), so the
    // service does not keep the request waiting for a slot any longer.
    assert_eq!(
        headers.get("Beaker-Timeout-Ms").map(|v| v.as_str()),
        Some("2000")
    );
    assert_eq!(
        headers.iter().count(),
        4,
        "only NatsH-, Idempotency-Key and the gateway's timeout pass"
    );
    assert_eq!(&request.payload[..], b"ping");

    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"ping");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(reply.header("NatsH-Echo-Count").as_deref(), Some("4"));
    assert_eq!(reply.header_all("NatsH-Multi"), vec!["one", "two"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_callers_trace_context_reaches_nats_with_its_natsh_headers() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_trace_context").await?;
    let http = env.http()?;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let tracestate = "vendor1=opaque,vendor2=7";
    // A responder on an allowed subject that keeps what it received.
    let mut requests = env.client.subscribe("stock.traced").await?;
    beaker_testkit::server_roundtrip(&env.client).await?;
    let responder = {
        let client = env.client.clone();
        tokio::spawn(async move {
            let message = requests.next().await.context("no request")?;
            let reply_to = message.reply.clone().context("no reply subject")?;
            client.publish(reply_to, "seen".into()).await?;
            anyhow::Ok(message)
        })
    };
    let reply = http
        .send(
            http.authorized(Method::POST, &http.subject_url("stock.traced"))
                .header("traceparent", traceparent)
                .header("tracestate", tracestate)
                .header("NatsH-Tenant", "acme")
                .body("ping"),
        )
        .await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(&reply.body[..], b"seen");

    let request = tokio::time::timeout(LONG, responder).await???;
    let headers = request.headers.clone().unwrap_or_default();
    let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
    assert_eq!(header("traceparent").as_deref(), Some(traceparent));
    assert_eq!(header("tracestate").as_deref(), Some(tracestate));
    assert_eq!(header("Tenant").as_deref(), Some("acme"));
    assert_eq!(&request.payload[..], b"ping");
    Ok(())
}
