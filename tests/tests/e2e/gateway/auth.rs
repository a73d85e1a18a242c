//! Who may call the gateway and what they may reach: bearer tokens (from
//! the environment or a file, never logged), anonymous mode, the subject
//! allow-lists, and the pages served without a token.

use anyhow::Result;
use beaker_testkit::{Beaker, BeakerConfig, GATEWAY_TOKEN, Http, NatsServer, TestDb, TestEnv};
use reqwest::Method;
use serde_json::json;

use super::{LONG, forwarded_before_marker};

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
    for (path, kind) in [
        ("/console.css", "text/css"),
        ("/api.js", "text/javascript"),
        ("/instances.js", "text/javascript"),
        ("/rules.js", "text/javascript"),
        ("/product.js", "text/javascript"),
        ("/console.js", "text/javascript"),
    ] {
        assert!(html.contains(&path[1..]), "the page loads {path}: {html}");
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
