//! Requests and publishes forwarded through the gateway: the reply raw or
//! as an envelope, the same answers NATS clients get, reply subjects held
//! to the inboxes, and the service's own info read over HTTP.

use anyhow::{Context, Result};
use beaker_testkit::{Contract, TestEnv};
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;

use super::{LONG, decode, forwarded_before_marker};

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
