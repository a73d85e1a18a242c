//! The credentials a connection presents: the workload's JWT and seed made
//! into a credentials file, credentials written into server URLs, and how
//! a refusal names what was presented without showing it.

use base64::Engine;
use percent_encoding::percent_decode_str;

use async_nats::ConnectErrorKind;

use super::NatsError;

/// The credentials a connection presents, for messages that must say which
/// ones were refused without showing them.
#[derive(Debug)]
pub(super) enum Presented {
    CredsFile(String),
    Workload,
    Nkey,
    Token,
    UserPassword(String),
    UrlUserPassword(String),
    UrlToken,
    Nothing,
}

impl Presented {
    pub(super) fn describe(&self) -> (String, &'static str) {
        match self {
            Self::CredsFile(path) => (
                format!("the credentials file {path}"),
                "NATS_CREDS (is its user signed by an account the server trusts?)",
            ),
            Self::Workload => (
                "the workload's JWT and nkey seed".to_string(),
                "NEX_WORKLOAD_NATS_B64_JWT and NEX_WORKLOAD_NATS_NKEY",
            ),
            Self::Nkey => ("an nkey seed".to_string(), "NATS_NKEY"),
            Self::Token => ("a token".to_string(), "NATS_TOKEN"),
            Self::UserPassword(user) => (
                format!("user {user} with a password"),
                "NATS_USER and NATS_PASSWORD",
            ),
            Self::UrlUserPassword(user) => (
                format!("user {user} with the password in the server URL"),
                "the user and password in NATS_URL",
            ),
            Self::UrlToken => (
                "the token in the server URL".to_string(),
                "the token in NATS_URL",
            ),
            Self::Nothing => (
                "no credentials".to_string(),
                "NATS_CREDS, NATS_NKEY, NATS_TOKEN, or NATS_USER and NATS_PASSWORD",
            ),
        }
    }
}

/// A credentials file's text made of a workload's JWT (base64-encoded, as
/// Synadia Cloud passes it; a bare JWT is taken as it is) and seed.
pub(super) fn workload_credentials(b64_jwt: &str, seed: &str) -> Result<String, NatsError> {
    let packed: String = b64_jwt.chars().filter(|c| !c.is_whitespace()).collect();
    let looks_like_jwt = |text: &str| text.starts_with("eyJ") && text.split('.').count() == 3;
    let jwt = if looks_like_jwt(&packed) {
        packed
    } else {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(&packed).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|text| text.trim().to_string())
            .filter(|text| looks_like_jwt(text))
            .ok_or(NatsError::Workload(
                "NEX_WORKLOAD_NATS_B64_JWT is not a base64-encoded JWT",
            ))?
    };
    let seed = seed.trim();
    if !seed.starts_with("SU") {
        return Err(NatsError::Workload(
            "NEX_WORKLOAD_NATS_NKEY is not a user nkey seed (one starts with SU)",
        ));
    }
    Ok(format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    ))
}

/// Whether a failed connection failed in TLS: rustls reports a refused
/// certificate as an I/O error of the handshake or of the first read.
pub(super) fn is_tls_failure(error: &async_nats::ConnectError) -> bool {
    if error.kind() == ConnectErrorKind::Tls {
        return true;
    }
    let text = error.to_string().to_lowercase();
    ["certificate", "fatal alert", "handshake"]
        .iter()
        .any(|word| text.contains(word))
}

/// Credentials written into a server URL.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum UrlCredentials {
    UserPassword(String, String),
    Token(String),
}

/// The user info of the first server URL that has one, percent-decoded.
pub(super) fn url_credentials(urls: &str) -> Option<UrlCredentials> {
    let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
    urls.split(',').find_map(|u| {
        let parsed = url::Url::parse(u.trim()).ok()?;
        let user = parsed.username();
        if user.is_empty() {
            return None;
        }
        Some(match parsed.password() {
            Some(password) => UrlCredentials::UserPassword(decode(user), decode(password)),
            None => UrlCredentials::Token(decode(user)),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::ConnectOptions;

    const JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVIn0.c2ln";
    const SEED: &str = "SUAIO3FHUX5PNV2LQIIP7TZ3N4L7TX3W53MQGEIVYFIGA635OZCKEYHFLM";

    #[test]
    fn workload_jwt_is_taken_base64_encoded_in_any_alphabet_or_bare() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        for given in [
            STANDARD.encode(JWT),
            STANDARD.encode(format!("{JWT}\n")),
            URL_SAFE_NO_PAD.encode(JWT),
            JWT.to_string(),
        ] {
            let text = workload_credentials(&given, SEED).expect("accepted");
            assert!(text.contains(&format!("\n{JWT}\n")), "{given}: {text}");
            assert!(text.contains(&format!("\n{SEED}\n")), "{given}: {text}");
            assert!(ConnectOptions::with_credentials(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn unusable_workload_credentials_are_refused_without_showing_them() {
        for (jwt, seed) in [("not base64!", SEED), (JWT, "SAAnot-a-user-seed")] {
            let error = workload_credentials(jwt, seed)
                .expect_err("refused")
                .to_string();
            assert!(error.contains("NEX_WORKLOAD_NATS_"), "{error}");
            assert!(!error.contains(seed) && !error.contains(jwt), "{error}");
        }
    }
}
