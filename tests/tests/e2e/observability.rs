//! One request followed from the caller's span through the host, the rules,
//! the database and the event; metrics that count exactly; readiness that
//! follows the database; logs with trace ids and without secrets.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use beaker_testkit::otlp::{OtlpReceiver, attribute, hex};
use beaker_testkit::proxy::TcpProxy;
use beaker_testkit::{
    Beaker, BeakerConfig, EVENTS_STREAM, NatsServer, TestDb, TestEnv, beaker_cli,
    call_with_headers, metric_sum, scrape_metrics, sha256_file, stream_events, wait_for_rules,
    wasm, workspace_root,
};
use nix::sys::signal::Signal;
use opentelemetry_proto::tonic::trace::v1::Span;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

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

fn requests(samples: &HashMap<String, f64>, endpoint: &str, outcome: &str) -> f64 {
    metric_sum(
        samples,
        "beaker_requests_total",
        &[("endpoint", endpoint), ("outcome", outcome)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_requests_made() -> Result<()> {
    let env = TestEnv::start("metrics_count").await?;
    let before = scrape_metrics(&env.beaker).await?;
    for _ in 0..7 {
        env.add("counted", 2).await?;
    }
    for _ in 0..3 {
        env.remove("counted", 1000).await?; // 409
    }
    env.call("stock.get", "not json").await?; // 400
    let after = scrape_metrics(&env.beaker).await?;
    assert_eq!(
        requests(&after, "add", "ok") - requests(&before, "add", "ok"),
        7.0
    );
    assert_eq!(
        requests(&after, "remove", "conflict") - requests(&before, "remove", "conflict"),
        3.0
    );
    assert_eq!(
        requests(&after, "get", "bad_request") - requests(&before, "get", "bad_request"),
        1.0
    );
    let histogram_count: f64 = after
        .iter()
        .filter(|(s, _)| {
            s.starts_with("messaging_process_duration_seconds_count{") && s.contains("stock.add")
        })
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(histogram_count, 7.0);
    let active = after
        .keys()
        .find(|s| s.starts_with("beaker_rules_active{"))
        .context("active rules gauge")?;
    assert!(
        active.contains("rules_name=\"beaker-default-rules\""),
        "{active}"
    );
    for gauge in [
        "db_client_connection_count{",
        "beaker_outbox_backlog{",
        "beaker_nats_connected{",
    ] {
        assert!(
            after.keys().any(|s| s.starts_with(gauge)),
            "{gauge} missing"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() -> Result<()> {
    let nats = NatsServer::start("readiness")?;
    let db = TestDb::create().await?;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse()?).await?;
    let mut config = BeakerConfig::new("readiness", &nats, &db);
    config.database_url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let beaker = Beaker::start(&config)?;
    let url = format!(
        "{}/readyz",
        beaker.metrics_url().context("metrics address")?
    );
    let client = reqwest::Client::new();
    let status = |client: reqwest::Client, url: String| async move {
        let response = client.get(&url).send().await?;
        let code = response.status().as_u16();
        let body: serde_json::Value = serde_json::from_str(&response.text().await?)?;
        anyhow::Ok((code, body))
    };

    let (code, body) = status(client.clone(), url.clone()).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["checks"]["database"], "reachable");

    proxy.cut();
    let (code, body) = status(client.clone(), url.clone()).await?;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["checks"]["database"]
            .as_str()
            .unwrap_or("")
            .starts_with("unreachable"),
        "{body}"
    );
    assert_eq!(body["checks"]["nats"], "connected");
    let health = client.get(url.replace("readyz", "healthz")).send().await?;
    assert_eq!(health.status().as_u16(), 200, "alive all the same");

    proxy.restore().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = status(client.clone(), url.clone()).await?;
        if code == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready again: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_inside_a_request_carry_its_trace_and_span_ids() -> Result<()> {
    let env = TestEnv::start("log_trace_ids").await?;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    call_with_headers(
        &env.client,
        "stock.remove",
        &[("traceparent", traceparent.as_str())],
        r#"{"product-sku":"nothing-here","quantity":1}"#,
    )
    .await?;
    env.add("x", 1).await?; // a second request, so the first has been logged
    let line = env
        .beaker
        .log_lines()
        .into_iter()
        .find(|l| l["message"] == "refused")
        .context("the refusal is logged")?;
    assert_eq!(line["level"], "INFO", "a caller's mistake logs at info");
    let request = line["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["name"] == "request"))
        .context("request span in the log line")?;
    assert_eq!(request["trace_id"], TRACE_ID);
    assert_eq!(request["span_id"].as_str().map(str::len), Some(16));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_ever_reaches_the_logs() -> Result<()> {
    const NATS_TOKEN: &str = "nats-T0ken-s3cret";
    const DB_PASSWORD: &str = "db-Pa55w0rd-s3cret";
    const GATEWAY_TOKEN: &str = "gw-T0ken-s3cret";
    let nats = NatsServer::start_with("no_secrets", &["--auth", NATS_TOKEN])?;
    let db = TestDb::create().await?;
    let mut config = BeakerConfig::new("no_secrets", &nats, &db)
        .env("NATS_TOKEN", NATS_TOKEN)
        .env("BEAKER_GATEWAY_ADDR", "127.0.0.1:0")
        .env("BEAKER_GATEWAY_TOKENS", GATEWAY_TOKEN)
        .env("RUST_LOG", "debug")
        .arg("--gateway");
    // Postgres here trusts local connections, so any password works; the
    // host must still never write it down.
    config.database_url = db
        .url
        .replace("postgres@", &format!("postgres:{DB_PASSWORD}@"));
    let beaker = Beaker::start(&config)?;
    let client = async_nats::ConnectOptions::with_token(NATS_TOKEN.into())
        .connect(nats.url())
        .await?;
    beaker_testkit::call(&client, "stock.add", r#"{"product-sku":"s","quantity":1}"#).await?;
    beaker_testkit::call(&client, "stock.remove", "{bad").await?;
    // A client command that fails to authenticate, and one that works.
    let wrong = std::process::Command::new(beaker_testkit::beaker_bin())
        .args(["call", "stock.get", r#"{"product-sku":"s"}"#])
        .env("NATS_URL", nats.url())
        .env("NATS_TOKEN", format!("{NATS_TOKEN}-wrong"))
        .env("RUST_LOG", "debug")
        .output()?;
    assert_ne!(wrong.status.code(), Some(0));
    let right = std::process::Command::new(beaker_testkit::beaker_bin())
        .args(["call", "stock.get", r#"{"product-sku":"s"}"#])
        .env("NATS_URL", nats.url())
        .env("NATS_TOKEN", NATS_TOKEN)
        .env("RUST_LOG", "debug")
        .output()?;
    assert_eq!(
        right.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );

    let mut everything = std::fs::read_to_string(&beaker.log)?;
    everything.push_str(&String::from_utf8_lossy(&wrong.stderr));
    everything.push_str(&String::from_utf8_lossy(&right.stderr));
    assert!(everything.lines().count() > 20, "the logs were written");
    for secret in [NATS_TOKEN, DB_PASSWORD, GATEWAY_TOKEN] {
        assert!(!everything.contains(secret), "{secret} appears in the logs");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_in_urls_stay_out_of_the_logs() -> Result<()> {
    const NATS_PASSWORD: &str = "nats-Pa55-s3cret";
    let nats = NatsServer::start_with(
        "no_secrets_in_urls",
        &["--user", "svc", "--pass", NATS_PASSWORD],
    )?;
    let db = TestDb::create().await?;
    let mut config = BeakerConfig::new("no_secrets_in_urls", &nats, &db).env("RUST_LOG", "trace");
    config.nats_url = format!("nats://svc:{NATS_PASSWORD}@127.0.0.1:{}", nats.port);
    let beaker = Beaker::start(&config)?;
    let client =
        async_nats::ConnectOptions::with_user_and_password("svc".into(), NATS_PASSWORD.into())
            .connect(nats.url())
            .await?;
    let reply =
        beaker_testkit::call(&client, "stock.add", r#"{"product-sku":"u","quantity":1}"#).await?;
    assert!(reply.ok(), "{:?}", reply.body);
    let log = std::fs::read_to_string(&beaker.log)?;
    assert!(
        log.contains("nats://***@127.0.0.1"),
        "the URL is logged, redacted"
    );
    assert!(
        !log.contains(NATS_PASSWORD),
        "the password appears in the logs"
    );
    Ok(())
}

/// The metric names a PromQL expression selects: identifiers that are not
/// functions (followed by `(`), not label names of `by (…)` / `without (…)`,
/// and not inside label matchers or ranges.
fn selected_metrics(expr: &str) -> Vec<String> {
    // Drop what is between braces or brackets: label matchers and ranges.
    let mut plain = String::new();
    let mut depth = 0;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let chars: Vec<char> = plain.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            // A number, exponent included (1e-9).
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '-' || chars[i] == '+') && chars[i - 1] == 'e'))
            {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next] == ' ' {
            next += 1;
        }
        let rest: String = chars[next..].iter().collect();
        // An aggregation such as `sum by (le) (…)` is a function too.
        let opens = rest.starts_with('(') || rest.starts_with("by") || rest.starts_with("without");
        if opens && (word == "by" || word == "without") {
            // Skip the label list.
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
        } else if !opens && !matches!(word.as_str(), "and" | "or" | "unless") {
            names.push(word);
        }
    }
    names
}

/// The `expr:` of every alert rule, from the rules file's YAML: one
/// expression per rule, on its line or folded (`>-`) over the lines that
/// follow it.
fn alert_exprs(text: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((indent, rest)) = line.split_once("expr:") else {
            continue;
        };
        if !indent.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let rest = rest.trim();
        if rest != ">-" && rest != ">" && rest != "|" {
            exprs.push(rest.to_string());
            continue;
        }
        let mut folded = Vec::new();
        while let Some(next) = lines.peek() {
            let depth = next.len() - next.trim_start().len();
            if next.trim().is_empty() || depth <= indent.len() {
                break;
            }
            folded.push(next.trim().to_string());
            lines.next();
        }
        exprs.push(folded.join(" "));
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_query_only_metrics_the_host_exports() -> Result<()> {
    assert_eq!(
        alert_exprs(
            "  - alert: A\n    expr: a > 1\n  - alert: B\n    expr: >-\n      b\n      unless c\n    for: 1m\n"
        ),
        vec!["a > 1", "b unless c"]
    );
    assert_eq!(
        selected_metrics(
            r#"histogram_quantile(0.5, sum by (le, x) (rate(a_bucket{o!="b"}[1m]))) / clamp_min(max(c), 1e-9)"#
        ),
        vec!["a_bucket", "c"]
    );
    let env = TestEnv::start("dashboard_metrics").await?;
    env.add("dash", 20).await?;
    env.remove("dash", 15).await?; // a low-stock event
    env.call("stock.get", "not json").await?;
    // A shadow, so that its comparisons are exported too.
    let shadow = wasm("beaker_rules_threshold");
    let deployed = beaker_cli(
        &env.nats.url(),
        &["rules", "deploy", "--shadow", &shadow.display().to_string()],
    )?;
    assert_eq!(
        deployed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let digest = sha256_file(&shadow)?;
    wait_for_rules(&env.client, 1, "the shadow", |r| {
        r.shadow.as_ref().is_some_and(|s| s.digest == *digest)
    })
    .await?;
    env.add("dash", 1).await?;
    env.db.wait_outbox_drained(Duration::from_secs(30)).await?;

    let exported: std::collections::HashSet<String> = scrape_metrics(&env.beaker)
        .await?
        .keys()
        .map(|series| series.split('{').next().unwrap_or_default().to_string())
        .collect();
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        workspace_root().join("deploy/grafana/dashboards/beaker.json"),
    )?)?;
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= 10,
        "the dashboard has its queries: {exprs:?}"
    );
    let alerts = alert_exprs(&std::fs::read_to_string(
        workspace_root().join("deploy/prometheus/alerts.yml"),
    )?);
    assert!(alerts.len() >= 5, "the alert rules: {alerts:?}");
    exprs.extend(alerts);
    let mut missing = Vec::new();
    for expr in &exprs {
        for metric in selected_metrics(expr) {
            // `up` is Prometheus's own: whether the scrape worked.
            if metric != "up" && !exported.contains(&metric) {
                missing.push(format!("{metric} (in {expr})"));
            }
        }
    }
    assert!(missing.is_empty(), "not exported: {missing:#?}");
    Ok(())
}

fn collect_exprs(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match value.as_str() {
                    Some(expr) if key == "expr" => into.push(expr.to_string()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, into)),
        _ => {}
    }
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
