//! The gateway's limits and the statuses they give: no responders (503),
//! a request timeout (504, bounded by `?timeout=`), and the body limit (413).

use std::time::{Duration, Instant};

use anyhow::Result;
use beaker_testkit::TestEnv;
use reqwest::Method;

use super::forwarded_before_marker;

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
