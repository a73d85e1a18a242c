//! Secured nats-servers for tests: operator, account and user nkeys with
//! the JWTs that bind them, plain nkey users, tokens, passwords, and a
//! certificate authority with server and client certificates. Everything
//! is made afresh by each test, in a temporary folder; nothing secret is
//! kept in the repository.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::{Value, json};
use sha2::{Digest, Sha512_256};

use crate::{NatsServer, workspace_root};

/// Subjects a NATS user may publish and subscribe to; empty lists allow
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
}

impl Permissions {
    /// The permissions `deploy/synadia/permissions.json` gives the
    /// service's NATS user (the table under "NATS permissions" in
    /// `docs/operations.md` is rendered from it), without the health
    /// check's grant, which is needed only when the metrics port is off.
    pub fn documented_for_the_service() -> Result<Self> {
        let grants = documented_grants("service")?
            .into_iter()
            .filter(|grant| !grant.only_when_metrics_port_is_off);
        Self::from_grants(grants)
    }

    /// The permissions the same file gives the operator's user that runs
    /// `beaker rules …`.
    pub fn documented_for_the_operator() -> Result<Self> {
        Self::from_grants(documented_grants("operator")?)
    }

    fn from_grants(grants: impl IntoIterator<Item = Grant>) -> Result<Self> {
        let mut permissions = Self::default();
        for grant in grants {
            let list = match grant.kind.as_str() {
                "subscribe" => &mut permissions.subscribe,
                "publish" => &mut permissions.publish,
                other => bail!("{PERMISSIONS_FILE}: a grant of kind {other:?}"),
            };
            list.extend(grant.subjects);
        }
        if permissions.subscribe.is_empty() || permissions.publish.is_empty() {
            bail!("{PERMISSIONS_FILE} lists no subjects: {permissions:?}");
        }
        Ok(permissions)
    }

    /// The same without one subject.
    pub fn without(mut self, subject: &str) -> Self {
        self.subscribe.retain(|s| s != subject);
        self.publish.retain(|s| s != subject);
        self
    }

    /// As a user's `permissions` block in a nats-server configuration.
    fn config_block(&self) -> String {
        let list = |subjects: &[String]| {
            subjects
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "permissions: {{ subscribe: {{ allow: [{}] }}, publish: {{ allow: [{}] }} }}",
            list(&self.subscribe),
            list(&self.publish)
        )
    }

    /// As the `pub` and `sub` claims of a user JWT.
    fn claims(&self) -> Value {
        let allow = |subjects: &[String]| match subjects {
            [] => json!({}),
            _ => json!({ "allow": subjects }),
        };
        json!({ "pub": allow(&self.publish), "sub": allow(&self.subscribe) })
    }

    fn is_everything(&self) -> bool {
        self.subscribe.is_empty() && self.publish.is_empty()
    }
}

/// Where the documented NATS permissions live, from the repository root.
pub const PERMISSIONS_FILE: &str = "deploy/synadia/permissions.json";

/// One grant of [`PERMISSIONS_FILE`]: publish or subscribe, the subjects,
/// and what they are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub kind: String,
    pub subjects: Vec<String>,
    pub purpose: String,
    /// Needed only when the metrics port is off (an empty
    /// `BEAKER_METRICS_ADDR`): the image's health check then pings the
    /// service over NATS.
    pub only_when_metrics_port_is_off: bool,
}

/// The grants [`PERMISSIONS_FILE`] documents for one user: `service` or
/// `operator`.
pub fn documented_grants(user: &str) -> Result<Vec<Grant>> {
    let path = workspace_root().join(PERMISSIONS_FILE);
    let text = std::fs::read_to_string(&path).context(PERMISSIONS_FILE)?;
    let file: Value = serde_json::from_str(&text).context(PERMISSIONS_FILE)?;
    let Some(list) = file[user]["grants"].as_array() else {
        bail!("{PERMISSIONS_FILE} has no grants for the {user} user");
    };
    list.iter().map(|grant| read_grant(user, grant)).collect()
}

/// One grant of the file, with every field it must have.
fn read_grant(user: &str, grant: &Value) -> Result<Grant> {
    let text = |key: &str| match grant[key].as_str() {
        Some(value) => Ok(value.to_string()),
        None => Err(anyhow!(
            "{PERMISSIONS_FILE}: a {user} grant without {key:?}"
        )),
    };
    let mut subjects = Vec::new();
    for subject in grant["subjects"].as_array().into_iter().flatten() {
        match subject.as_str() {
            Some(subject) => subjects.push(subject.to_string()),
            None => bail!("{PERMISSIONS_FILE}: a {user} subject that is not text: {subject}"),
        }
    }
    if subjects.is_empty() {
        bail!("{PERMISSIONS_FILE}: a {user} grant without subjects");
    }
    let conditional = grant["only_when_metrics_port_is_off"].as_bool() == Some(true);
    Ok(Grant {
        kind: text("kind")?,
        subjects,
        purpose: text("for")?,
        only_when_metrics_port_is_off: conditional,
    })
}

/// The grants as the Markdown table `docs/operations.md` shows, one line
/// per grant, each line ending in a newline.
pub fn grants_table(grants: &[Grant]) -> String {
    let mut table = String::from("| | subject | for |\n| --- | --- | --- |\n");
    for grant in grants {
        let subjects = grant
            .subjects
            .iter()
            .map(|subject| format!("`{subject}`"))
            .collect::<Vec<_>>()
            .join(", ");
        table.push_str(&format!(
            "| {} | {subjects} | {} |\n",
            grant.kind, grant.purpose
        ));
    }
    table
}

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

/// A user in a nats-server configuration's `authorization { users }`.
#[derive(Debug, Clone)]
pub enum ConfigUser {
    Nkey {
        public_key: String,
        permissions: Permissions,
    },
    Password {
        user: String,
        password: String,
        permissions: Permissions,
    },
}

impl ConfigUser {
    fn entry(&self) -> String {
        let (who, permissions) = match self {
            Self::Nkey {
                public_key,
                permissions,
            } => (format!("nkey: {public_key:?}"), permissions),
            Self::Password {
                user,
                password,
                permissions,
            } => (
                format!("user: {user:?}, password: {password:?}"),
                permissions,
            ),
        };
        match permissions.is_everything() {
            true => format!("{{ {who} }}"),
            false => format!("{{ {who}, {} }}", permissions.config_block()),
        }
    }
}

/// An `authorization` block with these users.
pub fn users_config(users: &[ConfigUser]) -> String {
    let entries: Vec<String> = users.iter().map(ConfigUser::entry).collect();
    format!(
        "authorization {{\n  users = [\n    {}\n  ]\n}}\n",
        entries.join("\n    ")
    )
}

/// An `authorization` block that asks every client for one token.
pub fn token_config(token: &str) -> String {
    format!("authorization {{ token: {token:?} }}\n")
}

/// A random secret: 32 hexadecimal characters.
pub fn random_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A certificate authority, and the certificates it signs, as PEM files.
#[derive(Debug)]
pub struct Authority {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The authority's own certificate: what a peer trusts.
    pub ca: PathBuf,
    dir: PathBuf,
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Authority {
    /// A new authority named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, cert.pem())?;
        Ok(Self {
            issuer: rcgen::Issuer::new(params, key),
            ca,
            dir: dir.to_path_buf(),
        })
    }

    /// A certificate for 127.0.0.1 and localhost, for a server.
    pub fn server(&self, name: &str) -> Result<CertFiles> {
        self.sign(
            name,
            vec!["127.0.0.1".into(), "localhost".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A certificate for a client of mutual TLS.
    pub fn client(&self, name: &str) -> Result<CertFiles> {
        self.sign(
            name,
            vec![format!("{name}.client.test")],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn sign(
        &self,
        name: &str,
        names: Vec<String>,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> Result<CertFiles> {
        let mut params = rcgen::CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let files = CertFiles {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem())?;
        std::fs::write(&files.key, key.serialize_pem())?;
        Ok(files)
    }
}

/// A `tls` block: the server presents `server`; with `clients_from`, it
/// also asks every client for a certificate signed by that authority.
pub fn tls_config(server: &CertFiles, clients_from: Option<&Path>) -> String {
    let mut block = format!(
        "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  timeout: 5\n",
        server.cert.display().to_string(),
        server.key.display().to_string()
    );
    if let Some(ca) = clients_from {
        block.push_str(&format!(
            "  ca_file: {:?}\n  verify: true\n",
            ca.display().to_string()
        ));
    }
    block.push_str("}\n");
    block
}

/// Starts a nats-server (JetStream on, as always) with this configuration,
/// written to `dir/nats.conf`.
pub fn start_server(name: &str, dir: &Path, config: &str) -> Result<NatsServer> {
    let path = dir.join("nats.conf");
    std::fs::write(&path, config)?;
    NatsServer::start_with(name, &["-c", &path.display().to_string()])
        .with_context(|| format!("nats-server with configuration:\n{config}"))
}
