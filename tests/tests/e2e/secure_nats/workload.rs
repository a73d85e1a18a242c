//! The variables Synadia Cloud gives a workload (servers, JWT, seed), over
//! TLS and with only the documented permissions.

use std::process::Command;

use anyhow::Result;
use base64::Engine;
use beaker_testkit::secure::{Authority, Operator, Permissions, seed, start_server, tls_config};
use beaker_testkit::{Beaker, BeakerConfig, TestDb, beaker_bin};
use nkeys::KeyPair;

use super::{fresh, quick, refused, serves};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_synadia_workload_variables_connect_with_least_privilege_over_tls() -> Result<()> {
    let name = "secure_workload";
    let dir = fresh(name)?;
    let operator = Operator::new();
    let ca = Authority::new(dir.path(), "workload")?;
    let server = ca.server("nats")?;
    let config_text = format!("{}{}", operator.server_config()?, tls_config(&server, None));
    let nats = start_server(name, dir.path(), &config_text)?;
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let db = TestDb::create().await?;
    // The documented permissions, and the health check's ping, which
    // deploy/synadia/permissions.json grants for when the metrics port is off.
    let mut permissions = Permissions::documented_for_the_service()?;
    permissions.publish.push("$SRV.PING.beaker".into());
    let service = operator.user("workload", &permissions)?;
    let b64_jwt = base64::engine::general_purpose::STANDARD.encode(&service.jwt);
    let workload = |config: BeakerConfig, jwt: Option<&str>, seed: Option<&str>| {
        let mut config = config
            .env("NEX_WORKLOAD_NATS_SERVERS", url.as_str())
            .env("NATS_TLS_CA", ca.ca.display().to_string());
        if let Some(jwt) = jwt {
            config = config.env("NEX_WORKLOAD_NATS_B64_JWT", jwt);
        }
        if let Some(seed) = seed {
            config = config.env("NEX_WORKLOAD_NATS_NKEY", seed);
        }
        // NATS_URL empty: not set, so the workload's servers are used.
        config.nats_url = String::new();
        config
    };

    let beaker = Beaker::start(&workload(
        BeakerConfig::new(name, &nats, &db),
        Some(&b64_jwt),
        Some(&service.seed),
    ))?;
    let client = operator
        .user("caller", &Permissions::default())?
        .options()?
        .add_root_certificates(ca.ca.clone())
        .connect(url.as_str())
        .await?;
    serves(&client, "workload-1").await?;
    let ready = beaker
        .log_lines()
        .into_iter()
        .find(|line| line["message"] == "ready")
        .unwrap_or_default();
    assert_eq!(ready["nats"], url.as_str(), "{ready}");
    let complaints = beaker.complaints();
    assert!(complaints.is_empty(), "{complaints:#?}");

    // The client commands (the image's health check) read them too.
    let ping = Command::new(beaker_bin())
        .args(["call", "--timeout-ms", "5000", "$SRV.PING.beaker", ""])
        .env_clear()
        .env("NEX_WORKLOAD_NATS_SERVERS", url.as_str())
        .env("NEX_WORKLOAD_NATS_B64_JWT", b64_jwt.as_str())
        .env("NEX_WORKLOAD_NATS_NKEY", service.seed.as_str())
        .env("NATS_TLS_CA", ca.ca.display().to_string())
        .output()?;
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stderr)
    );

    // Half the credentials, or another user's seed: refused, and said so.
    refused(
        &quick(workload(
            BeakerConfig::new(name, &nats, &db),
            Some(&b64_jwt),
            None,
        )),
        &["NEX_WORKLOAD_NATS_B64_JWT and NEX_WORKLOAD_NATS_NKEY must be given together"],
        &[],
    )?;
    let other_seed = seed(&KeyPair::new_user())?;
    refused(
        &quick(workload(
            BeakerConfig::new(name, &nats, &db),
            Some(&b64_jwt),
            Some(&other_seed),
        )),
        &[
            "refused",
            "the workload's JWT and nkey seed",
            "NEX_WORKLOAD_NATS_NKEY",
        ],
        &[&other_seed, &service.seed],
    )?;
    Ok(())
}
