//! Least privilege: the host told what a missing permission stops, whether
//! it cannot subscribe to its subjects (it stops) or cannot publish its
//! events (it serves, and reports the stalled outbox).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use beaker_testkit::secure::{ConfigUser, Permissions, random_secret, start_server, users_config};
use beaker_testkit::{
    Beaker, BeakerConfig, NatsServer, TestDb, metric_sum, scrape_metrics, wait_until,
};

use super::{fresh, refused, serves};

/// A server whose one user has `permissions`, with a password.
fn server_with_permissions(
    name: &str,
    dir: &Path,
    permissions: Permissions,
) -> Result<(NatsServer, String)> {
    let password = random_secret();
    let users = [
        ConfigUser::Password {
            user: "service".into(),
            password: password.clone(),
            permissions,
        },
        ConfigUser::Password {
            user: "caller".into(),
            password: password.clone(),
            permissions: Permissions::default(),
        },
    ];
    let nats = start_server(name, dir, &users_config(&users))?;
    Ok((nats, password))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_permission_to_subscribe_to_its_subjects_the_host_says_so_and_stops() -> Result<()>
{
    let name = "secure_no_subscribe";
    let dir = fresh(name)?;
    let permissions = Permissions::documented_for_the_service()?.without("stock.>");
    let (nats, password) = server_with_permissions(name, dir.path(), permissions)?;
    let db = TestDb::create().await?;
    let config = BeakerConfig::new(name, &nats, &db)
        .env("NATS_USER", "service")
        .env("NATS_PASSWORD", password.as_str());
    let message = refused(
        &config,
        &[
            "refused",
            r#"Permissions Violation for Subscription to "stock.add""#,
            "docs/operations.md#nats-permissions",
        ],
        &[&password],
    )?;
    assert!(message.contains(r#""stock.remove""#), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_permission_to_publish_events_the_host_logs_what_was_refused_and_reports_the_stall()
-> Result<()> {
    let name = "secure_no_events";
    let dir = fresh(name)?;
    let permissions = Permissions::documented_for_the_service()?.without("events.>");
    let (nats, password) = server_with_permissions(name, dir.path(), permissions)?;
    let db = TestDb::create().await?;
    // A relay connected to NATS whose every publication is refused makes
    // no progress: with a short stall threshold, it is reported at once.
    let config = BeakerConfig::new(name, &nats, &db)
        .env("NATS_USER", "service")
        .env("NATS_PASSWORD", password.as_str())
        .env("BEAKER_OUTBOX_STALL_AFTER", "1s")
        .env("BEAKER_OUTBOX_ROUND_TIMEOUT", "500ms");
    let beaker = Beaker::start(&config)?;
    let client = async_nats::ConnectOptions::with_user_and_password("caller".into(), password)
        .connect(nats.url())
        .await?;
    // Requests are served; the low-stock event cannot be published.
    serves(&client, "events-1").await?;
    let remove = r#"{"product-sku":"events-1","quantity":1}"#;
    assert!(
        beaker_testkit::call(&client, "stock.remove", remove)
            .await?
            .ok()
    );
    wait_until("the refusal in the log", Duration::from_secs(30), || {
        let found = beaker.log_lines().iter().any(|line| {
            line["level"] == "ERROR"
                && line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("NATS refused an operation"))
                && line["refused"]
                    .as_str()
                    .is_some_and(|r| r.contains(r#"Publish to "events.low_stock""#))
        });
        async move { Ok(found) }
    })
    .await?;
    // The event waits in the outbox for the permission.
    assert_eq!(db.pending_events().await?, 1);

    // The stall is reported: a warning, the metric, /readyz; and the age of
    // the oldest event keeps growing.
    wait_until("the stall warning", Duration::from_secs(30), || {
        let found = beaker.log_lines().iter().any(|line| {
            line["level"] == "WARN"
                && line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("the outbox relay is connected to NATS"))
        });
        async move { Ok(found) }
    })
    .await?;
    let first = scrape_metrics(&beaker).await?;
    assert_eq!(metric_sum(&first, "beaker_outbox_relay_stalled", &[]), 1.0);
    assert_eq!(metric_sum(&first, "beaker_outbox_backlog", &[]), 1.0);
    let age = metric_sum(&first, "beaker_outbox_oldest_age_seconds", &[]);
    assert!(age >= 1.0, "oldest age {age}");
    wait_until("the age to move", Duration::from_secs(30), || {
        let beaker = &beaker;
        async move {
            let now = scrape_metrics(beaker).await?;
            Ok(metric_sum(&now, "beaker_outbox_oldest_age_seconds", &[]) >= age + 1.0)
        }
    })
    .await?;
    let ready = reqwest::get(format!(
        "{}/readyz",
        beaker.metrics_url().context("metrics address")?
    ))
    .await?;
    // Requests are still served: the instance stays ready, and says why
    // events are late.
    assert_eq!(ready.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_str(&ready.text().await?)?;
    let events = body["checks"]["events"].as_str().unwrap_or_default();
    assert!(events.starts_with("stalled: 1 pending"), "{body}");
    Ok(())
}
