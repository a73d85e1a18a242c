//! A component's identity: the SHA-256 of its bytes, in hex. It names the
//! rules everywhere — the ledger, `$SRV.INFO`, the bucket's objects — and
//! people read its first twelve digits ([`Digest::short`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The hex SHA-256 of a component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// How many hex digits people are shown.
    pub const SHORT: usize = 12;

    /// The digest of these bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex(&<Sha256 as sha2::Digest>::digest(bytes)))
    }

    /// A digest as text, if it is one: 64 lower-case hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let valid =
            text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first twelve digits, for people and logs.
    pub fn short(&self) -> &str {
        self.0.get(..Self::SHORT).unwrap_or(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The first digits of a digest given as text, for people; the text as it
/// is when it is shorter.
pub fn short(text: &str) -> &str {
    text.get(..Digest::SHORT).unwrap_or(text)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_the_hex_sha256_and_shows_twelve_digits() {
        let digest = Digest::of(b"abc");
        assert_eq!(
            digest.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest.short(), "ba7816bf8f01");
        assert_eq!(Digest::parse(digest.as_str()), Some(digest.clone()));
        assert_eq!(Digest::parse("BA7816"), None);
        assert_eq!(
            serde_json::to_string(&digest).unwrap_or_default(),
            format!("\"{digest}\"")
        );
        assert_eq!(short("abc"), "abc");
    }
}
