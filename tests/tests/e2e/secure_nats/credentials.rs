//! Each way in, both ways: a credentials file, an nkey seed, a token, a
//! user and password, and client certificates from a private CA serve; a
//! stranger's, a wrong or a broken one is refused with a clear message.

use std::path::Path;

use anyhow::Result;
use beaker_testkit::secure::{
    Authority, ConfigUser, Operator, Permissions, random_secret, seed, start_server, stranger,
    tls_config, token_config, users_config,
};
use beaker_testkit::{Beaker, BeakerConfig, TestDb};
use nkeys::KeyPair;

use super::{fresh, quick, refused, serves};

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
    // A seed with one character of its key changed: its CRC-16 (which
    // catches every burst of up to 16 bits) no longer matches, so it cannot
    // even sign. Changing the checksum characters themselves would leave
    // the seed valid whenever they already held the replacement.
    let broken: String = unknown
        .char_indices()
        .map(|(at, c)| match (at, c) {
            (10, 'A') => 'B',
            (10, _) => 'A',
            _ => c,
        })
        .collect();
    assert_ne!(broken, unknown);
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
