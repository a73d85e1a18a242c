//! Bearer tokens: where they come from and how a presented one is checked.
//!
//! Tokens are secrets. They are kept only as SHA-256 digests, never logged,
//! and a presented token is compared with every configured one in constant
//! time, so neither the answer's timing nor its content says how close a
//! guess was or how many tokens exist.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why the tokens could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the gateway tokens file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("gateway token {position} {place} contains whitespace; tokens are single words")]
    Whitespace { position: usize, place: String },
}

/// The configured tokens, as digests.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves, nor their digests.
        f.debug_struct("Tokens")
            .field("count", &self.digests.len())
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Tokens from a comma-separated list (e.g. `BEAKER_GATEWAY_TOKENS`) and
    /// from a file with one token per line, where blank lines and lines
    /// starting with `#` are ignored.
    pub fn load(list: Option<&str>, file: Option<&Path>) -> Result<Self, TokenError> {
        let mut tokens = Self::default();
        if let Some(list) = list {
            for (i, token) in list
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .enumerate()
            {
                tokens.add(token, i + 1, "in the list")?;
            }
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
                path: path.display().to_string(),
                source,
            })?;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                tokens.add(
                    line,
                    number + 1,
                    &format!("on line {} of the file", number + 1),
                )?;
            }
        }
        Ok(tokens)
    }

    fn add(&mut self, token: &str, position: usize, place: &str) -> Result<(), TokenError> {
        if token.chars().any(char::is_whitespace) {
            return Err(TokenError::Whitespace {
                position,
                place: place.to_string(),
            });
        }
        self.digests.push(digest(token));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether `presented` is one of the tokens. Every configured digest is
    /// compared, whatever the outcome of the previous ones.
    pub fn accepts(&self, presented: &str) -> bool {
        let candidate = digest(presented);
        let mut found = subtle::Choice::from(0);
        for known in &self.digests {
            found |= known.ct_eq(&candidate);
        }
        found.into()
    }
}

/// The token in an `Authorization` header value: `Bearer <token>` (the
/// scheme is case-insensitive), or a bare token as some gateway clients
/// send it.
pub fn token_from_authorization(value: &str) -> Option<&str> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None => value,
    };
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn tokens_from_list_and_file() {
        let mut file = tempfile_like();
        writeln!(file.1, "# operators\n\n  from-file  \n").expect("write");
        let tokens = Tokens::load(Some(" a1 ,b2,,"), Some(&file.0)).expect("valid");
        assert_eq!(tokens.len(), 3);
        assert!(tokens.accepts("a1"));
        assert!(tokens.accepts("b2"));
        assert!(tokens.accepts("from-file"));
        assert!(!tokens.accepts("a"));
        assert!(!tokens.accepts(""));
        assert!(!tokens.accepts("# operators"));
        assert_eq!(format!("{tokens:?}"), "Tokens { count: 3 }");
        let _ = std::fs::remove_file(&file.0);
    }

    #[test]
    fn bad_token_sources_are_refused_clearly() {
        let missing =
            Tokens::load(None, Some(Path::new("/nonexistent/tokens"))).expect_err("missing file");
        assert!(
            missing.to_string().contains("/nonexistent/tokens"),
            "{missing}"
        );
        let spaced = Tokens::load(Some("one,se cr3t"), None).expect_err("whitespace");
        assert!(spaced.to_string().contains("token 2"), "{spaced}");
        assert!(
            !spaced.to_string().contains("cr3t"),
            "the token is not echoed"
        );
    }

    #[test]
    fn authorization_header_forms() {
        assert_eq!(token_from_authorization("Bearer abc"), Some("abc"));
        assert_eq!(token_from_authorization("bearer  abc "), Some("abc"));
        assert_eq!(token_from_authorization("abc"), Some("abc"));
        assert_eq!(token_from_authorization("Basic YWJj"), None);
        assert_eq!(token_from_authorization("Bearer "), None);
        assert_eq!(token_from_authorization(""), None);
    }

    fn tempfile_like() -> (std::path::PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!("beaker-tokens-{}", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&path).expect("create");
        (path, file)
    }
}
