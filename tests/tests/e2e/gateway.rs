//! The HTTP gateway as an HTTP caller sees it: each route, the header
//! mapping, authentication, allow-lists, the error statuses, the body
//! limit, and answers identical to those NATS clients get.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use beaker_testkit::{
    Beaker, BeakerConfig, Contract, GATEWAY_TOKEN, Http, NatsServer, TestDb, TestEnv,
};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(10);

fn decode(data: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(data.as_str().unwrap_or_default())
        .unwrap_or_default()
}

/// Subscribes to every subject on the test's private NATS server, runs
/// `refused` (which must forward nothing), then sends `marker` through the
/// gateway's own connection. The server delivers one connection's messages
/// in order, so every message the gateway published before the marker is
/// in the subscription ahead of it. Returns the subjects seen before the
/// marker, leaving out the server's own traffic (JetStream API calls and
/// advisories, replies to inboxes), which the host's rules-bucket watcher
/// and relay cause at any moment and none of the refused subjects is.
async fn forwarded_before_marker<F, Fut>(env: &TestEnv, refused: F) -> Result<Vec<String>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut everything = env.client.subscribe(">").await?;
    beaker_testkit::server_roundtrip(&env.client).await?;
    refused().await?;
    let marker = r#"{"product-sku":"marker-7"}"#;
    let reply = env.http()?.request("stock.get", marker).await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout(LONG, everything.next())
            .await
            .context("the marker never arrived")?
            .context("subscription ended")?;
        if message.subject.as_str() == "stock.get" && &message.payload[..] == marker.as_bytes() {
            return Ok(seen);
        }
        let subject = message.subject.as_str();
        if !subject.starts_with("$JS.") && !subject.starts_with("_INBOX.") {
            seen.push(subject.to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_returns_the_reply_raw_or_as_the_envelope() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_request_raw_envelope").await?;
    let http = env.http()?;
    let contract = Contract::load()?;

    // Raw: the body exactly as the service sent it, as JSON.
    let added = http
        .request("stock.add", r#"{"product-sku":"gw-1","quantity":5}"#)
        .await?;
    assert_eq!(added.status, 200);
    assert_eq!(
        &added.body[..],
        br#"{"ok":true,"product-sku":"gw-1","quantity":5}"#
    );
    assert_eq!(
        added.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(added.header("NatsH-Nats-Service-Error-Code"), None);
    contract.assert_valid("stock-add.response.json", &added.json());
    assert_eq!(env.db.level("gw-1").await?, Some(5));

    // A refusal is still the service's reply: 200, with its code in NatsH-.
    let refused = http
        .request("stock.remove", r#"{"product-sku":"gw-1","quantity":9}"#)
        .await?;
    assert_eq!(refused.status, 200);
    assert_eq!(refused.json()["ok"], false);
    assert_eq!(
        refused.header("NatsH-Nats-Service-Error-Code").as_deref(),
        Some("409")
    );
    assert_eq!(
        refused.header("NatsH-Nats-Service-Error").as_deref(),
        refused.json()["error"].as_str()
    );
    contract.assert_valid("stock-remove.response.json", &refused.json());

    // Envelope: subject (the requester's inbox), headers both ways, base64 data.
    let enveloped = http
        .send(
            http.authorized(Method::POST, &http.subject_url("stock.remove"))
                .header("Accept", "application/json")
                .body(r#"{"product-sku":"gw-1","quantity":9}"#),
        )
        .await?;
    assert_eq!(enveloped.status, 200);
    let envelope = enveloped.json();
    assert!(
        envelope["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("_INBOX.")),
        "{envelope}"
    );
    assert_eq!(decode(&envelope["data"]), refused.body.to_vec());
    assert_eq!(envelope["headers"]["Nats-Service-Error-Code"], "409");
    assert_eq!(
        envelope["header"]["Nats-Service-Error-Code"],
        json!(["409"])
    );
    assert!(envelope.get("reply").is_none(), "{envelope}");
    assert_eq!(
        env.db.level("gw-1").await?,
        Some(5),
        "the refusals changed nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_callers_get_the_same_answers_as_nats_clients() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_same_answers").await?;
    let http = env.http()?;
    // The same script against two products, one over NATS, one over HTTP.
    let script = |sku: &str| -> Vec<(&'static str, String)> {
        vec![
            ("stock.get", json!({"product-sku": sku}).to_string()),
            (
                "stock.remove",
                json!({"product-sku": sku, "quantity": 1}).to_string(),
            ),
            (
                "stock.add",
                json!({"product-sku": sku, "quantity": 12}).to_string(),
            ),
            (
                "stock.remove",
                json!({"product-sku": sku, "quantity": 5}).to_string(),
            ),
            (
                "stock.remove",
                json!({"product-sku": sku, "quantity": 50}).to_string(),
            ),
            ("stock.get", json!({"product-sku": sku}).to_string()),
            (
                "stock.add",
                json!({"product-sku": sku, "quantity": 0}).to_string(),
            ),
            (
                "stock.add",
                json!({"product-sku": sku, "quantity": "7"}).to_string(),
            ),
            (
                "stock.add",
                format!(r#"{{"product-sku":"{sku}","quantity":1,"x":2}}"#),
            ),
            ("stock.get", "not json".to_string()),
            ("stock.get", String::new()),
            ("stock.get", "[]".to_string()),
        ]
    };
    for ((subject, over_nats), (_, over_http)) in
        script("via-nats").into_iter().zip(script("via-http"))
    {
        let nats = env.call(subject, over_nats.clone()).await?;
        let web = http.request(subject, over_http.clone()).await?;
        assert_eq!(web.status, 200, "{subject} {over_http}: {web:?}");
        let web = web.answer();
        let same = |text: &str| text.replace("via-http", "via-nats");
        assert_eq!(
            same(&String::from_utf8_lossy(&web.raw)),
            String::from_utf8_lossy(&nats.raw),
            "{subject} {over_http}"
        );
        assert_eq!(web.code, nats.code, "{subject} {over_http}");
        assert_eq!(
            web.error.as_deref().map(same),
            nats.error,
            "{subject} {over_http}"
        );
    }
    assert_eq!(
        env.db.level("via-http").await?,
        env.db.level("via-nats").await?
    );
    Ok(())
}

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
    assert_eq!(
        headers.iter().count(),
        3,
        "only NatsH- and Idempotency-Key pass"
    );
    assert_eq!(&request.payload[..], b"ping");

    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"ping");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(reply.header("NatsH-Echo-Count").as_deref(), Some("3"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_delivers_the_message_and_reply_subjects_must_be_inboxes() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_publish").await?;
    let http = env.http()?;
    let mut audit = env.client.subscribe("stock.audit").await?;
    beaker_testkit::server_roundtrip(&env.client).await?;

    let published = http
        .send(
            http.authorized(Method::PUT, &http.subject_url("stock.audit"))
                .header("NatsH-Origin", "web")
                .header("Idempotency-Key", "k-1")
                .body("hello"),
        )
        .await?;
    assert_eq!(published.status, 200, "{published:?}");
    assert!(published.body.is_empty());
    let message = tokio::time::timeout(LONG, audit.next())
        .await?
        .context("ended")?;
    assert_eq!(&message.payload[..], b"hello");
    assert_eq!(message.reply, None);
    let headers = message.headers.clone().unwrap_or_default();
    assert_eq!(headers.get("Origin").map(|v| v.as_str()), Some("web"));
    assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("k-1"));

    let with_reply = http
        .send(
            http.authorized(
                Method::PUT,
                &format!("{}?reply=_INBOX.mine.1", http.subject_url("stock.audit")),
            )
            .body("again"),
        )
        .await?;
    assert_eq!(with_reply.status, 200);
    let message = tokio::time::timeout(LONG, audit.next())
        .await?
        .context("ended")?;
    assert_eq!(message.reply.as_deref(), Some("_INBOX.mine.1"));

    // A reply subject outside the inboxes could make a service publish its
    // answer anywhere (say, as a fake event): refused, nothing sent.
    let seen = forwarded_before_marker(&env, || async {
        let spoof = http
            .send(
                http.authorized(
                    Method::PUT,
                    &format!("{}?reply=events.low_stock", http.subject_url("stock.get")),
                )
                .body(r#"{"product-sku":"x"}"#),
            )
            .await?;
        assert_eq!(spoof.status, 403, "{spoof:?}");
        assert!(spoof.gateway_error().is_some_and(|e| e.contains("inbox")));
        Ok(())
    })
    .await?;
    assert!(seen.is_empty(), "forwarded: {seen:?}");

    // Publishing to a service subject acts like any publish: it is applied,
    // and its reply goes to the inbox named, where the caller listens.
    let mut inbox = env.client.subscribe("_INBOX.put-caller.1").await?;
    beaker_testkit::server_roundtrip(&env.client).await?;
    let add = http
        .send(
            http.authorized(
                Method::PUT,
                &format!(
                    "{}?reply=_INBOX.put-caller.1",
                    http.subject_url("stock.add")
                ),
            )
            .body(r#"{"product-sku":"put-1","quantity":3}"#),
        )
        .await?;
    assert_eq!(add.status, 200);
    let reply = tokio::time::timeout(LONG, inbox.next())
        .await?
        .context("ended")?;
    assert_eq!(
        &reply.payload[..],
        br#"{"ok":true,"product-sku":"put-1","quantity":3}"#
    );
    assert_eq!(env.db.level("put-1").await?, Some(3));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_tokens_get_401_and_nothing_is_forwarded() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_unauthorized").await?;
    let http = env.http()?;
    let url = http.subject_url("stock.add");
    let body = r#"{"product-sku":"intruder","quantity":5}"#;
    let seen = forwarded_before_marker(&env, || async {
        let attempts = [
            http.client.post(&url).body(body),
            http.client
                .post(&url)
                .header("Authorization", "Bearer wrong")
                .body(body),
            http.client
                .post(&url)
                .header("Authorization", format!("Bearer {GATEWAY_TOKEN}x"))
                .body(body),
            http.client
                .post(&url)
                .header("Authorization", format!("Basic {GATEWAY_TOKEN}"))
                .body(body),
            // The query form is for event streams (GET) only.
            http.client
                .post(format!("{url}?authorization={GATEWAY_TOKEN}"))
                .body(body),
            http.client.put(&url).body(body),
            http.client.get(format!(
                "{}?authorization=wrong",
                http.subject_url("events.low_stock")
            )),
        ];
        for attempt in attempts {
            let reply = http.send(attempt).await?;
            assert_eq!(reply.status, 401, "{reply:?}");
            assert!(reply.gateway_error().is_some(), "{reply:?}");
            assert_eq!(
                reply.header("www-authenticate").as_deref(),
                Some("Bearer realm=\"beaker\"")
            );
            assert!(reply.json()["message"].is_string(), "{reply:?}");
        }
        Ok(())
    })
    .await?;
    assert!(seen.is_empty(), "forwarded without a valid token: {seen:?}");
    assert_eq!(env.db.level("intruder").await?, None);

    // The token is a secret: no log line carries it.
    assert!(!env.beaker.log_text().contains(GATEWAY_TOKEN));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_outside_the_allow_lists_are_refused() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_forbidden").await?;
    let http = env.http()?;
    let seen = forwarded_before_marker(&env, || async {
        for (method, subject, status) in [
            (Method::POST, "other.thing", 403),
            (Method::POST, "$SRV.STATS.beaker", 403),
            (Method::POST, "stock.add.deeper", 403),
            (Method::PUT, "events.low_stock", 403),
            (Method::GET, "stock.add", 403),
            (Method::GET, "events.>", 403),
            (Method::POST, "stock..add", 400),
            (Method::POST, "stock.*", 400),
            (Method::PUT, "stock.>", 400),
            (Method::POST, "stock.a%20b", 400),
        ] {
            let reply = http
                .send(
                    http.authorized(method.clone(), &http.subject_url(subject))
                        .body("{}"),
                )
                .await?;
            assert_eq!(reply.status, status, "{method} {subject}: {reply:?}");
            let reason = reply.gateway_error().unwrap_or_default();
            assert!(!reason.is_empty(), "{method} {subject}");
            assert_eq!(reply.json()["message"], reason.as_str());
        }
        Ok(())
    })
    .await?;
    assert!(seen.is_empty(), "forwarded: {seen:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_responders_is_503_and_a_silent_responder_is_504() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_503_504").await?;
    let http = env.http()?;

    let nobody = http.request("stock.nobody", "{}").await?;
    assert_eq!(nobody.status, 503, "{nobody:?}");
    assert!(
        nobody
            .gateway_error()
            .is_some_and(|e| e.contains("no responders"))
    );

    // A responder that takes every request and never answers.
    let silent = env.client.subscribe("stock.silent").await?;
    beaker_testkit::server_roundtrip(&env.client).await?;
    let started = Instant::now();
    let timed_out = http
        .send(
            http.authorized(
                Method::POST,
                &format!("{}?timeout=300", http.subject_url("stock.silent")),
            )
            .body("{}"),
        )
        .await?;
    let waited = started.elapsed();
    assert_eq!(timed_out.status, 504, "{timed_out:?}");
    assert!(
        timed_out
            .gateway_error()
            .is_some_and(|e| e.contains("300 ms"))
    );
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(
        waited < Duration::from_millis(1800),
        "the default 2000 ms was used: {waited:?}"
    );
    drop(silent);

    for bad in ["abc", "0", "-5", "1.5", "999999999"] {
        let reply = http
            .send(
                http.authorized(
                    Method::POST,
                    &format!("{}?timeout={bad}", http.subject_url("stock.get")),
                )
                .body(r#"{"product-sku":"a"}"#),
            )
            .await?;
        assert_eq!(reply.status, 400, "timeout={bad}: {reply:?}");
        assert!(reply.gateway_error().is_some_and(|e| e.contains("timeout")));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_and_are_not_forwarded() -> Result<()> {
    let env = TestEnv::start_with("gateway_413", |c| {
        c.with_gateway()
            .env("BEAKER_GATEWAY_MAX_BODY_BYTES", "1024")
    })
    .await?;
    let http = env.http()?;
    let seen = forwarded_before_marker(&env, || async {
        let too_big = format!(r#"{{"product-sku":"{}"}}"#, "a".repeat(1100));
        let declared = http.request("stock.get", too_big.clone()).await?;
        assert_eq!(declared.status, 413, "{declared:?}");
        assert!(declared.gateway_error().is_some_and(|e| e.contains("1024")));
        // Without a Content-Length (chunked), the limit holds while reading.
        let chunks: Vec<Result<String, std::io::Error>> = vec![
            Ok(too_big[..600].to_string()),
            Ok(too_big[600..].to_string()),
        ];
        let streamed = http
            .request(
                "stock.get",
                reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
            )
            .await?;
        assert_eq!(streamed.status, 413, "{streamed:?}");
        let published = http
            .send(
                http.authorized(Method::PUT, &http.subject_url("stock.audit"))
                    .body(too_big),
            )
            .await?;
        assert_eq!(published.status, 413);
        Ok(())
    })
    .await?;
    assert!(seen.is_empty(), "forwarded: {seen:?}");

    // At the limit exactly, the request goes through (and the service
    // judges it: 50 characters is its longest SKU).
    let at_limit = format!(r#"{{"product-sku":"{}"}}"#, "a".repeat(1024 - 18));
    assert_eq!(at_limit.len(), 1024);
    let reply = http.request("stock.get", at_limit).await?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.answer().code, Some(400));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_stock_events_stream_as_server_sent_events() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_events").await?;
    let http = env.http()?;
    let contract = Contract::load()?;
    let mut with_header = http.subscribe("events.low_stock").await?;
    assert_eq!(
        with_header.content_type.as_deref(),
        Some("text/event-stream")
    );
    // A browser's EventSource cannot send headers: the token rides in the query.
    let mut with_query = EventStreamFromQuery::open(&http).await?;

    http.request("stock.add", r#"{"product-sku":"sse-1","quantity":12}"#)
        .await?;
    http.request("stock.remove", r#"{"product-sku":"sse-1","quantity":4}"#)
        .await?;
    for stream in [&mut with_header, &mut with_query.0] {
        let event = stream.next_event(LONG).await?.context("stream ended")?;
        assert_eq!(event.event, "msg");
        let envelope: Value = serde_json::from_str(&event.data)?;
        assert_eq!(envelope["subject"], "events.low_stock");
        let payload: Value = serde_json::from_slice(&decode(&envelope["data"]))?;
        contract.assert_valid("low-stock.event.json", &payload);
        assert_eq!(payload, json!({"product-sku": "sse-1", "stock-level": 8}));
    }
    Ok(())
}

struct EventStreamFromQuery(beaker_testkit::EventStream);

impl EventStreamFromQuery {
    async fn open(http: &Http) -> Result<Self> {
        let url = format!(
            "{}?authorization={}&idleHeartbeat=500",
            http.subject_url("events.low_stock"),
            http.token
        );
        let response = http.client.get(url).send().await?;
        Ok(Self(beaker_testkit::EventStream::from_response(response)?))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_event_streams_and_exits_cleanly() -> Result<()> {
    let mut env = TestEnv::start_with_gateway("gateway_sigterm").await?;
    let http = env.http()?;
    let mut stream = http.subscribe("events.low_stock").await?;
    let status = tokio::task::spawn_blocking(move || {
        let status = env
            .beaker
            .signal_and_wait(nix::sys::signal::Signal::SIGTERM, LONG);
        (env, status)
    });
    let closed = stream
        .next_event(LONG)
        .await?
        .context("ended without a closed event")?;
    assert_eq!(closed.event, "closed");
    let (env, status) = status.await?;
    assert!(status?.success());
    let log = env.beaker.log_lines();
    let gateway_stopped = log.iter().position(|l| l["message"] == "gateway stopped");
    let service_drained = log
        .iter()
        .position(|l| l["message"] == "every request in flight was answered");
    assert!(gateway_stopped.is_some(), "{log:?}");
    assert!(
        gateway_stopped < service_drained,
        "the gateway stops before the service"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_to_start_without_tokens_unless_told_to_serve_anyone() -> Result<()> {
    let name = "gateway_anonymous";
    let nats = NatsServer::start(name)?;

    let (status, stderr) = BeakerConfig::standalone_gateway(name, &nats).run_to_exit(LONG)?;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("BEAKER_GATEWAY_TOKENS"), "{stderr}");
    assert!(stderr.contains("--gateway-allow-anonymous"), "{stderr}");

    let (status, stderr) = BeakerConfig::standalone_gateway(name, &nats)
        .env("BEAKER_GATEWAY_TOKENS", "t1")
        .arg("--gateway-allow-anonymous")
        .run_to_exit(LONG)?;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot be combined"), "{stderr}");

    // Anonymous, in front of a separately running service.
    let db = TestDb::create().await?;
    let _service = Beaker::start(&BeakerConfig::new(name, &nats, &db))?;
    let gateway = Beaker::start(
        &BeakerConfig::standalone_gateway(name, &nats).arg("--gateway-allow-anonymous"),
    )?;
    let http = Http::new(&gateway.gateway_url()?, "");
    let reply = http
        .send(
            http.client
                .post(http.subject_url("stock.add"))
                .body(r#"{"product-sku":"anon","quantity":2}"#),
        )
        .await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["quantity"], 2);
    assert!(
        gateway.log_lines().iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("without a token"))),
        "anonymous mode is announced"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_come_from_a_file_and_never_reach_the_logs() -> Result<()> {
    let name = "gateway_tokens_file";
    let nats = NatsServer::start(name)?;
    let db = TestDb::create().await?;
    let _service = Beaker::start(&BeakerConfig::new(name, &nats, &db))?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tokens");
    std::fs::write(&file, "# operators\nalpha-Secret-1\n\n  beta-Secret-2  \n")?;

    let missing = BeakerConfig::standalone_gateway(name, &nats)
        .env(
            "BEAKER_GATEWAY_TOKENS_FILE",
            dir.path().join("nope").display().to_string(),
        )
        .run_to_exit(LONG)?;
    assert_eq!(missing.0.code(), Some(1));
    assert!(
        missing.1.contains("cannot read the gateway tokens file"),
        "{}",
        missing.1
    );

    let gateway = Beaker::start(
        &BeakerConfig::standalone_gateway(name, &nats)
            .env("BEAKER_GATEWAY_TOKENS_FILE", file.display().to_string())
            .env("BEAKER_GATEWAY_TOKENS", "gamma-Secret-3"),
    )?;
    let base = gateway.gateway_url()?;
    for (token, status) in [
        ("alpha-Secret-1", 200),
        ("beta-Secret-2", 200),
        ("gamma-Secret-3", 200),
        ("# operators", 401),
        ("alpha-Secret", 401),
    ] {
        let reply = Http::new(&base, token)
            .request("stock.get", r#"{"product-sku":"a"}"#)
            .await?;
        assert_eq!(reply.status, status, "{token}");
    }
    let log = gateway.log_text();
    assert!(log.contains("\"tokens\":3"), "the count is logged");
    for secret in ["alpha-Secret", "beta-Secret", "gamma-Secret"] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_health_are_served_without_a_token() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_console_health").await?;
    let http = env.http()?;
    let page = http.get_path("/").await?;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("console.js"), "{html}");
    for (path, kind) in [
        ("/console.js", "text/javascript"),
        ("/console.css", "text/css"),
    ] {
        let asset = http.get_path(path).await?;
        assert_eq!(asset.status, 200, "{path}");
        assert!(
            asset
                .header("content-type")
                .is_some_and(|c| c.starts_with(kind))
        );
    }
    let health = http.get_path("/healthz").await?;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"nats": "connected"}));
    let missing = http.get_path("/v2/anything").await?;
    assert_eq!(missing.status, 404);
    assert!(missing.gateway_error().is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_version_is_read_through_the_gateway() -> Result<()> {
    let env = TestEnv::start_with_gateway("gateway_rules_info").await?;
    let over_http = env.http()?.request("$SRV.INFO.beaker", "").await?;
    assert_eq!(over_http.status, 200, "{over_http:?}");
    let over_nats = env.call("$SRV.INFO.beaker", "").await?;
    assert_eq!(over_http.json(), over_nats.body);
    assert_eq!(
        over_http.json()["metadata"]["rules_name"],
        "beaker-default-rules"
    );
    assert!(over_http.json()["metadata"]["rules_version"].is_string());
    Ok(())
}
