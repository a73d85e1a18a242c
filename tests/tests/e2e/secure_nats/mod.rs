//! The host against secured nats-servers: a credentials file in operator
//! mode, an nkey, a token, a user and password, TLS with a private CA and
//! client certificates, the variables Synadia Cloud gives a workload, and
//! the least privileges docs/operations.md documents. Each way in is tested both
//! ways: the right secret serves, a wrong one stops the start with a
//! message that names the setting and never shows the secret.
//!
//! One module per topic; the checks every one of them runs live here.

mod credentials;
mod permissions;
mod workload;

use std::time::Duration;

use anyhow::Result;
use beaker_testkit::{BeakerConfig, output_dir};

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
