//! What the host exports over OTLP: one request's spans from the caller
//! through the rules, the database and its event, the buffers flushed on
//! shutdown, and nothing at all (and no complaint) without an endpoint.

use std::time::Duration;

use anyhow::{Context, Result};
use beaker_testkit::otlp::{OtlpReceiver, attribute, hex};
use beaker_testkit::{EVENTS_STREAM, TestEnv, call_with_headers, stream_events};
use nix::sys::signal::Signal;
use opentelemetry_proto::tonic::trace::v1::Span;

use super::{CALLER_SPAN, TRACE_ID};

fn find<'a>(spans: &'a [Span], name: &str, trace: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.name == name && hex(&s.trace_id) == trace)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_traced_from_the_caller_through_the_host_into_its_event() -> Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let url = receiver.url.clone();
    let env = TestEnv::start_with("trace_one_request", move |c| {
        c.env("OTEL_EXPORTER_OTLP_ENDPOINT", url)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
    })
    .await?;
    env.add("traced", 12).await?;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let reply = call_with_headers(
        &env.client,
        "stock.remove",
        &[("traceparent", traceparent.as_str())],
        r#"{"product-sku":"traced","quantity":5}"#,
    )
    .await?;
    assert_eq!(reply.level(), Some(7), "{:?}", reply.body);

    let spans = receiver
        .wait_for_spans(
            "the request, its children and the event's publish",
            |spans| {
                !find(spans, "stock.remove", TRACE_ID).is_empty()
                    && !find(spans, "respond", TRACE_ID).is_empty()
                    && spans.iter().any(|s| {
                        s.name == "publish events.low_stock"
                            && s.links.iter().any(|l| hex(&l.trace_id) == TRACE_ID)
                    })
            },
        )
        .await?;

    // The request continues the caller's trace, as a child of its span.
    let request = find(&spans, "stock.remove", TRACE_ID)[0];
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    let attrs = &request.attributes;
    assert_eq!(
        attribute(attrs, "messaging.system").as_deref(),
        Some("nats")
    );
    assert_eq!(
        attribute(attrs, "messaging.destination.name").as_deref(),
        Some("stock.remove")
    );
    assert_eq!(attribute(attrs, "beaker.sku").as_deref(), Some("traced"));
    assert_eq!(attribute(attrs, "beaker.outcome").as_deref(), Some("ok"));
    assert_eq!(
        attribute(attrs, "rules.name").as_deref(),
        Some("beaker-default-rules")
    );
    assert!(attribute(attrs, "rules.version").is_some());
    assert_eq!(attribute(attrs, "rules.digest").map(|d| d.len()), Some(64));

    // Its children: validation, the transaction (with its statements and
    // the rules call inside it), and the reply.
    let child_of = |parent: &Span, name: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.name == name && s.parent_span_id == parent.span_id)
            .collect()
    };
    assert_eq!(child_of(request, "validate").len(), 1);
    assert_eq!(child_of(request, "respond").len(), 1);
    let transaction = child_of(request, "db.transaction");
    assert_eq!(transaction.len(), 1, "one transaction");
    let transaction = transaction[0];
    let rules = child_of(transaction, "rules.decide");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        attribute(&rules[0].attributes, "beaker.operation").as_deref(),
        Some("remove 5")
    );
    let statements: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent_span_id == transaction.span_id && s.name != "rules.decide")
        .map(|s| s.name.as_str())
        .collect();
    for statement in [
        "BEGIN inventory",
        "SELECT inventory",
        "UPDATE inventory",
        "COMMIT inventory",
    ] {
        assert!(
            statements.contains(&statement),
            "{statement} in {statements:?}"
        );
    }
    for span in spans
        .iter()
        .filter(|s| s.parent_span_id == transaction.span_id && s.name.ends_with("inventory"))
    {
        assert_eq!(
            attribute(&span.attributes, "db.system.name").as_deref(),
            Some("postgresql")
        );
    }

    // The event carries the same trace to its consumers, and its publish is
    // its own span, linked to the request's trace.
    env.db.wait_outbox_drained(Duration::from_secs(30)).await?;
    let events = stream_events(&env.client, EVENTS_STREAM).await?;
    let traced_event = events
        .iter()
        .find(|e| e.payload["stock-level"] == 7)
        .context("the low-stock event")?;
    let header = traced_event
        .headers
        .get("traceparent")
        .map(|v| v.to_string())
        .unwrap_or_default();
    assert!(header.starts_with(&format!("00-{TRACE_ID}-")), "{header}");
    let publish = spans
        .iter()
        .find(|s| {
            s.name == "publish events.low_stock"
                && s.links.iter().any(|l| hex(&l.trace_id) == TRACE_ID)
        })
        .context("publish span")?;
    assert_ne!(
        hex(&publish.trace_id),
        TRACE_ID,
        "the publish starts a trace of its own"
    );

    // The ledger row names the trace.
    let trace_ids: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT trace_id FROM stock_movements WHERE product_sku = 'traced' AND operation = 'remove'",
    )
    .fetch_all(&env.db.pool)
    .await?;
    assert_eq!(trace_ids, vec![Some(TRACE_ID.to_string())]);

    // Metrics go out over OTLP too.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !receiver
        .metric_names()
        .iter()
        .any(|n| n == "beaker.requests")
    {
        assert!(std::time::Instant::now() < deadline, "no metrics exported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_still_buffered_are_exported_on_shutdown() -> Result<()> {
    const FLUSHED_TRACE: &str = "5a0c1b2d3e4f5a6b7c8d9e0f1a2b3c4d";
    let receiver = OtlpReceiver::start().await?;
    let url = receiver.url.clone();
    // A minute between exports: nothing leaves before the host stops.
    let mut env = TestEnv::start_with("flush_on_shutdown", move |c| {
        c.env("OTEL_EXPORTER_OTLP_ENDPOINT", url)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "60000")
    })
    .await?;
    let traceparent = format!("00-{FLUSHED_TRACE}-{CALLER_SPAN}-01");
    let reply = call_with_headers(
        &env.client,
        "stock.add",
        &[("traceparent", traceparent.as_str())],
        r#"{"product-sku":"flushed","quantity":3}"#,
    )
    .await?;
    assert!(reply.ok(), "{:?}", reply.body);
    assert!(
        find(&receiver.spans(), "stock.add", FLUSHED_TRACE).is_empty(),
        "exported before shutdown: the test proves nothing"
    );

    let status = env
        .beaker
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(15))?;
    assert!(status.success(), "exit status {status}");

    // The process is gone, so whatever it sent has been received.
    let spans = receiver.spans();
    let request = find(&spans, "stock.add", FLUSHED_TRACE);
    assert_eq!(request.len(), 1, "the request's span after shutdown");
    assert_eq!(hex(&request[0].parent_span_id), CALLER_SPAN);
    assert!(
        receiver
            .metric_names()
            .iter()
            .any(|n| n == "beaker.requests"),
        "metrics after shutdown: {:?}",
        receiver.metric_names()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_otlp_endpoint_nothing_is_exported_and_nothing_complains() -> Result<()> {
    let env = TestEnv::start("no_otlp").await?;
    env.add("quiet", 5).await?;
    env.remove("quiet", 4).await?;
    env.db.wait_outbox_drained(Duration::from_secs(30)).await?;
    let complaints: Vec<_> = env
        .beaker
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .collect();
    assert!(complaints.is_empty(), "{complaints:?}");
    Ok(())
}
