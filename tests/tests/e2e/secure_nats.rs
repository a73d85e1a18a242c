//! The host against secured nats-servers: a credentials file in operator
//! mode, an nkey, a token, a user and password, TLS with a private CA and
//! client certificates, the variables Synadia Cloud gives a workload, and
//! the least privileges docs/operations.md documents. Each way in is tested both
//! ways: the right secret serves, a wrong one stops the start with a
//! message that names the setting and never shows the secret.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use beaker_testkit::secure::{
    Authority, ConfigUser, Operator, Permissions, random_secret, seed, start_server, stranger,
    tls_config, token_config, users_config,
};
use beaker_testkit::{
    Beaker, BeakerConfig, NatsServer, TestDb, beaker_bin, metric_sum, output_dir, scrape_metrics,
    wait_until,
};
use nkeys::KeyPair;

/// The longest a refused start may take: the host reaches NATS after the
/// database and the rules.
const START: Duration = Duration::from_secs(60);

/// One add through `client` is served.
async fn serves(client: &async_nats::Client, sku: &str) -> Result<()> {
    let body = serde_json::json!({"product-sku": sku, "quantity": 3}).to_string();
    let reply = beaker_testkit::call(client, "stock.add", body).await?;
    assert!(reply.ok(), "{:?}", reply.body);
    assert_eq!(reply.level(), Some(3));
    Ok(())
}

/// Runs a start that must fail: a non-zero exit, a last line that says
/// every one of `expected`, and none of `secrets` anywhere in the output.
fn refused(config: &BeakerConfig, expected: &[&str], secrets: &[&str]) -> Result<String> {
    let (status, stderr) = config.run_to_exit(START)?;
    assert!(!status.success(), "the start succeeded:\n{stderr}");
    let message = stderr
        .lines()
        .rfind(|line| line.starts_with("beaker: "))
        .unwrap_or_default()
        .to_string();
    println!("{message}");
    for word in expected {
        assert!(message.contains(word), "{word:?} is not in {message:?}");
    }
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !stderr.contains(secret),
            "a secret reached the output:\n{stderr}"
        );
    }
    Ok(message)
}

/// A configuration for a start that is expected to fail fast.
fn quick(config: BeakerConfig) -> BeakerConfig {
    config.env("NATS_CONNECT_TIMEOUT_MS", "1000")
}

fn fresh(name: &str) -> Result<tempfile::TempDir> {
    let _ = std::fs::remove_dir_all(output_dir(name));
    Ok(tempfile::tempdir()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_file_signed_by_a_trusted_account_serves_and_a_strangers_is_refused()
-> Result<()> {
    let name = "secure_creds";
    let dir = fresh(name)?;
    let operator = Operator::new();
    let nats = start_server(name, dir.path(), &operator.server_config()?)?;
    let db = TestDb::create().await?;
    let service = operator.user("service", &Permissions::default())?;
    let creds = service.write_creds(&dir.path().join("service.creds"))?;
    let config = BeakerConfig::new(name, &nats, &db).env("NATS_CREDS", creds.display().to_string());
    let _beaker = Beaker::start(&config)?;
    let client = operator
        .user("client", &Permissions::default())?
        .options()?
        .connect(nats.url())
        .await?;
    serves(&client, "creds-1").await?;

    let foreign = stranger("service")?;
    let path = foreign.write_creds(&dir.path().join("foreign.creds"))?;
    let config = BeakerConfig::new(name, &nats, &db).env("NATS_CREDS", path.display().to_string());
    refused(
        &quick(config),
        &[
            "refused",
            "authorization violation",
            "credentials file",
            "NATS_CREDS",
        ],
        &[&foreign.seed, &foreign.jwt],
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nkey_seed_serves_and_an_unknown_or_broken_one_is_refused() -> Result<()> {
    let name = "secure_nkey";
    let dir = fresh(name)?;
    let (service, caller) = (KeyPair::new_user(), KeyPair::new_user());
    let everything = Permissions::default();
    let users = [&service, &caller].map(|key| ConfigUser::Nkey {
        public_key: key.public_key(),
        permissions: everything.clone(),
    });
    let nats = start_server(name, dir.path(), &users_config(&users))?;
    let db = TestDb::create().await?;
    let _beaker =
        Beaker::start(&BeakerConfig::new(name, &nats, &db).env("NATS_NKEY", seed(&service)?))?;
    let client = async_nats::ConnectOptions::with_nkey(seed(&caller)?)
        .connect(nats.url())
        .await?;
    serves(&client, "nkey-1").await?;

    let unknown = seed(&KeyPair::new_user())?;
    // A seed with its checksum broken: it cannot even sign.
    let broken = format!("{}AA", &unknown[..unknown.len() - 2]);
    for (wrong, why) in [
        (&unknown, "authorization violation"),
        (&broken, "not a valid seed"),
    ] {
        let config = BeakerConfig::new(name, &nats, &db).env("NATS_NKEY", wrong.as_str());
        refused(
            &quick(config),
            &[why, "an nkey seed", "NATS_NKEY"],
            &[wrong],
        )?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_serves_and_a_wrong_one_is_refused() -> Result<()> {
    let name = "secure_token";
    let dir = fresh(name)?;
    let token = random_secret();
    let nats = start_server(name, dir.path(), &token_config(&token))?;
    let db = TestDb::create().await?;
    let _beaker =
        Beaker::start(&BeakerConfig::new(name, &nats, &db).env("NATS_TOKEN", token.as_str()))?;
    let client = async_nats::ConnectOptions::with_token(token.clone())
        .connect(nats.url())
        .await?;
    serves(&client, "token-1").await?;

    let wrong = random_secret();
    let config = BeakerConfig::new(name, &nats, &db).env("NATS_TOKEN", wrong.as_str());
    refused(
        &quick(config),
        &[
            "refused",
            "authorization violation",
            "a token",
            "NATS_TOKEN",
        ],
        &[&wrong],
    )?;
    // No credentials at all: the message says so.
    refused(
        &quick(BeakerConfig::new(name, &nats, &db)),
        &["refused", "no credentials"],
        &[&token],
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_and_password_serve_and_a_wrong_password_is_refused() -> Result<()> {
    let name = "secure_password";
    let dir = fresh(name)?;
    let (service_pw, caller_pw) = (random_secret(), random_secret());
    let user = |user: &str, password: &str| ConfigUser::Password {
        user: user.into(),
        password: password.into(),
        permissions: Permissions::default(),
    };
    let nats = start_server(
        name,
        dir.path(),
        &users_config(&[user("service", &service_pw), user("caller", &caller_pw)]),
    )?;
    let db = TestDb::create().await?;
    let config = BeakerConfig::new(name, &nats, &db)
        .env("NATS_USER", "service")
        .env("NATS_PASSWORD", service_pw.as_str());
    let _beaker = Beaker::start(&config)?;
    let client = async_nats::ConnectOptions::with_user_and_password("caller".into(), caller_pw)
        .connect(nats.url())
        .await?;
    serves(&client, "password-1").await?;

    let wrong = random_secret();
    let config = BeakerConfig::new(name, &nats, &db)
        .env("NATS_USER", "service")
        .env("NATS_PASSWORD", wrong.as_str());
    refused(
        &quick(config),
        &["refused", "user service", "NATS_USER and NATS_PASSWORD"],
        &[&wrong, &service_pw],
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_private_ca_serves_and_untrusted_certificates_are_refused() -> Result<()>
{
    let name = "secure_tls";
    let dir = fresh(name)?;
    let trusted = Authority::new(dir.path(), "trusted")?;
    let other = Authority::new(dir.path(), "other")?;
    let server = trusted.server("nats")?;
    let nats = start_server(name, dir.path(), &tls_config(&server, Some(&trusted.ca)))?;
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let db = TestDb::create().await?;
    let tls =
        |config: BeakerConfig, ca: &Path, client: Option<&beaker_testkit::secure::CertFiles>| {
            let mut config = config
                .env("NATS_TLS_CA", ca.display().to_string())
                .env("NATS_TLS_REQUIRED", "true");
            if let Some(files) = client {
                config = config
                    .env("NATS_TLS_CERT", files.cert.display().to_string())
                    .env("NATS_TLS_KEY", files.key.display().to_string());
            }
            config.nats_url = url.clone();
            config
        };

    let host = trusted.client("beaker")?;
    let _beaker = Beaker::start(&tls(
        BeakerConfig::new(name, &nats, &db),
        &trusted.ca,
        Some(&host),
    ))?;
    let caller = trusted.client("caller")?;
    let client = async_nats::ConnectOptions::new()
        .add_root_certificates(trusted.ca.clone())
        .add_client_certificate(caller.cert.clone(), caller.key.clone())
        .require_tls(true)
        .connect(url.as_str())
        .await?;
    serves(&client, "tls-1").await?;

    // The server's certificate is not from the CA the host trusts.
    let config = tls(BeakerConfig::new(name, &nats, &db), &other.ca, Some(&host));
    refused(&quick(config), &["TLS", "NATS_TLS_CA"], &[])?;
    // The host's certificate is not from the CA the server trusts.
    let outsider = other.client("outsider")?;
    let config = tls(
        BeakerConfig::new(name, &nats, &db),
        &trusted.ca,
        Some(&outsider),
    );
    refused(&quick(config), &["TLS", "NATS_TLS_CERT"], &[])?;
    // The host has no certificate at all.
    let config = tls(BeakerConfig::new(name, &nats, &db), &trusted.ca, None);
    refused(&quick(config), &["TLS", "NATS_TLS_CERT"], &[])?;
    Ok(())
}

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
