//! Decentralised auth: an operator with its system and application
//! accounts, the JWTs that bind them, and users with credentials files
//! (trusted ones, and strangers signed by an account nobody trusts).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::{Value, json};
use sha2::{Digest, Sha512_256};

use super::Permissions;

/// A NATS JWT: base64url(header).base64url(claims).base64url(signature),
/// signed by the issuer's nkey. `jti` identifies the claims: the base32 of
/// the SHA-512/256 of the standard claims without it.
fn encode_jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> Result<String> {
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut claims = json!({
        "iat": issued_at,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
    });
    let id = Sha512_256::digest(serde_json::to_vec(&claims)?);
    claims["jti"] = json!(data_encoding::BASE32_NOPAD.encode(&id));
    claims["nats"] = nats;
    let header = json!({ "typ": "JWT", "alg": "ed25519-nkey" });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
    );
    let signature = issuer
        .sign(signed.as_bytes())
        .map_err(|e| anyhow!("cannot sign a JWT: {e}"))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// An nkey's seed, as text.
pub fn seed(key: &KeyPair) -> Result<String> {
    key.seed()
        .map_err(|e| anyhow!("an nkey without a seed: {e}"))
}

/// A user of an operator-mode account: its JWT and its seed.
#[derive(Debug, Clone)]
pub struct JwtUser {
    pub jwt: String,
    pub seed: String,
}

impl JwtUser {
    /// The credentials file's text, as `nsc` writes it.
    pub fn creds(&self) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n",
            self.jwt, self.seed
        )
    }

    /// Writes the credentials file, readable by its owner only.
    pub fn write_creds(&self, path: &Path) -> Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(path)?;
        std::io::Write::write_all(&mut file, self.creds().as_bytes())?;
        Ok(path.to_path_buf())
    }

    /// Connect options that present this user.
    pub fn options(&self) -> Result<async_nats::ConnectOptions> {
        Ok(async_nats::ConnectOptions::with_credentials(&self.creds())?)
    }
}

/// An operator, a system account and one application account with
/// JetStream: a decentralised-auth nats-server's whole trust chain.
#[derive(Debug)]
pub struct Operator {
    operator: KeyPair,
    system: KeyPair,
    account: KeyPair,
}

/// Account limits that limit nothing; with storage, JetStream is on.
fn unlimited(jetstream: bool) -> Value {
    let mut limits = json!({
        "subs": -1, "data": -1, "payload": -1,
        "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1,
    });
    if jetstream {
        for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[key] = json!(-1);
        }
    }
    limits
}

impl Operator {
    pub fn new() -> Self {
        Self {
            operator: KeyPair::new_operator(),
            system: KeyPair::new_account(),
            account: KeyPair::new_account(),
        }
    }

    /// A user of the application account, signed by it.
    pub fn user(&self, name: &str, permissions: &Permissions) -> Result<JwtUser> {
        sign_user(&self.account, name, permissions)
    }

    /// The nats-server configuration: operator mode with a memory resolver
    /// preloaded with both accounts.
    pub fn server_config(&self) -> Result<String> {
        let operator = encode_jwt(
            &self.operator,
            &self.operator.public_key(),
            "test-operator",
            json!({
                "type": "operator",
                "version": 2,
                "system_account": self.system.public_key(),
            }),
        )?;
        let account_jwt = |key: &KeyPair, name: &str, jetstream: bool| {
            encode_jwt(
                &self.operator,
                &key.public_key(),
                name,
                json!({
                    "type": "account",
                    "version": 2,
                    "limits": unlimited(jetstream),
                    "default_permissions": { "pub": {}, "sub": {} },
                }),
            )
        };
        Ok(format!(
            "operator: {operator:?}\nsystem_account: {system:?}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {system}: {system_jwt:?}\n  {account}: {account_jwt:?}\n}}\n",
            system = self.system.public_key(),
            system_jwt = account_jwt(&self.system, "SYS", false)?,
            account = self.account.public_key(),
            account_jwt = account_jwt(&self.account, "APP", true)?,
        ))
    }
}

impl Default for Operator {
    fn default() -> Self {
        Self::new()
    }
}

/// A user JWT issued by `account`.
fn sign_user(account: &KeyPair, name: &str, permissions: &Permissions) -> Result<JwtUser> {
    let user = KeyPair::new_user();
    let mut nats = json!({ "type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1 });
    if !permissions.is_everything()
        && let (Some(nats), Value::Object(claims)) = (nats.as_object_mut(), permissions.claims())
    {
        nats.extend(claims);
    }
    Ok(JwtUser {
        jwt: encode_jwt(account, &user.public_key(), name, nats)?,
        seed: seed(&user)?,
    })
}

/// A user signed by an account no server trusts: what a stale or foreign
/// credentials file looks like.
pub fn stranger(name: &str) -> Result<JwtUser> {
    sign_user(&KeyPair::new_account(), name, &Permissions::default())
}
