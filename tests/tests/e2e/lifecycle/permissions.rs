//! The NATS permissions the documentation gives the service and the
//! operator are enough to serve, publish events, and deploy rules.

use std::time::Duration;

use anyhow::Result;
use beaker_testkit::secure::Permissions;
use beaker_testkit::{
    Beaker, BeakerConfig, EVENTS_STREAM, NatsServer, TestDb, beaker_cli, output_dir, service_infos,
    sha256_file, stream_events, wait_for_rules, wasm,
};

/// A nats-server configuration list: `"a", "b"`.
fn quoted(subjects: &[String]) -> String {
    subjects
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nats_permissions_are_enough_to_serve_and_deploy() -> Result<()> {
    let name = "documented_permissions";
    let _ = std::fs::remove_dir_all(output_dir(name));
    // The permissions deploy/synadia/permissions.json gives the service's
    // user and the operator's user of `beaker rules …`, for the default
    // stream and bucket names (docs/operations.md shows them).
    let service_permissions = Permissions::documented_for_the_service()?;
    let operator_permissions = Permissions::documented_for_the_operator()?;

    // An account with three users: the service and the operator with only
    // the documented permissions, and a client allowed everything.
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("accounts.conf");
    let user = |name: &str, permissions: &Permissions| {
        format!(
            "{{ user: {name}, password: {name}-pw, permissions: {{ \
             subscribe: {{ allow: [{}] }}, publish: {{ allow: [{}] }} }} }}",
            quoted(&permissions.subscribe),
            quoted(&permissions.publish)
        )
    };
    std::fs::write(
        &conf,
        format!(
            "accounts {{ APP {{ jetstream: enabled, users: [\n{}\n{}\n{{ user: client, password: client-pw }}\n] }} }}\n",
            user("service", &service_permissions),
            user("operator", &operator_permissions),
        ),
    )?;
    let nats = NatsServer::start_with(name, &["-c", &conf.display().to_string()])?;
    let url = |user: &str| format!("nats://{user}:{user}-pw@127.0.0.1:{}", nats.port);
    let db = TestDb::create().await?;
    let mut config = BeakerConfig::new(name, &nats, &db);
    config.nats_url = url("service");
    let beaker = Beaker::start(&config)?;
    let client =
        async_nats::ConnectOptions::with_user_and_password("client".into(), "client-pw".into())
            .connect(nats.url())
            .await?;

    // The endpoints, discovery and a low-stock event into the stream.
    let add = r#"{"product-sku":"perm-1","quantity":12}"#;
    assert!(beaker_testkit::call(&client, "stock.add", add).await?.ok());
    let remove = r#"{"product-sku":"perm-1","quantity":5}"#;
    let removed = beaker_testkit::call(&client, "stock.remove", remove).await?;
    assert_eq!(removed.level(), Some(7), "{:?}", removed.body);
    assert_eq!(
        service_infos(&client, Duration::from_millis(300))
            .await?
            .len(),
        1
    );
    db.wait_outbox_drained(Duration::from_secs(30)).await?;
    let events = stream_events(&client, EVENTS_STREAM).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload["stock-level"], 7);

    // The operator deploys twice and rolls back; the service follows.
    let operator = url("operator");
    let default = wasm("beaker_rules");
    let threshold = wasm("beaker_rules_threshold");
    for (args, active) in [
        (
            vec!["deploy", default.to_str().unwrap_or_default()],
            &default,
        ),
        (
            vec!["deploy", threshold.to_str().unwrap_or_default()],
            &threshold,
        ),
        (vec!["rollback"], &default),
    ] {
        let output = beaker_cli(&operator, &[&["rules"], &args[..]].concat())?;
        assert_eq!(
            output.status.code(),
            Some(0),
            "rules {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let digest = sha256_file(active)?;
        wait_for_rules(&client, 1, "the rules", |r| r.digest == *digest).await?;
    }

    // Nothing was refused along the way, on either side.
    let server_log = std::fs::read_to_string(output_dir(name).join("nats-server.log"))?;
    let violations: Vec<&str> = server_log
        .lines()
        .filter(|l| l.contains("Violation"))
        .collect();
    assert!(violations.is_empty(), "{violations:#?}");
    let complaints = beaker.complaints();
    assert!(complaints.is_empty(), "{complaints:#?}");
    Ok(())
}
