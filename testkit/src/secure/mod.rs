//! Secured nats-servers for tests: operator, account and user nkeys with
//! the JWTs that bind them, plain nkey users, tokens, passwords, and a
//! certificate authority with server and client certificates. Everything
//! is made afresh by each test, in a temporary folder; nothing secret is
//! kept in the repository.
//!
//! One module per job: the documented permissions, operator-mode JWTs,
//! users and tokens in a configuration, and TLS certificates. Starting a
//! server with the configuration they make lives here.

mod jwt;
mod permissions;
mod tls;
mod users;

use std::path::Path;

use anyhow::{Context, Result};

use crate::NatsServer;

pub use jwt::{JwtUser, Operator, seed, stranger};
pub use permissions::{Grant, PERMISSIONS_FILE, Permissions, documented_grants, grants_table};
pub use tls::{Authority, CertFiles, tls_config};
pub use users::{ConfigUser, random_secret, token_config, users_config};

/// Starts a nats-server (JetStream on, as always) with this configuration,
/// written to `dir/nats.conf`.
pub fn start_server(name: &str, dir: &Path, config: &str) -> Result<NatsServer> {
    let path = dir.join("nats.conf");
    std::fs::write(&path, config)?;
    NatsServer::start_with(name, &["-c", &path.display().to_string()])
        .with_context(|| format!("nats-server with configuration:\n{config}"))
}
