//! What the bucket's `active` and `shadow` objects say: which rules every
//! instance serves, and the deployments before them.
//!
//! A deployment names either a component in the bucket (a [`Pointer`]) or
//! the instances' own rules files ([`FileRules`]): the rules each host
//! started with are a version like any other, so that the first deploy can
//! be rolled back, and an operator can always say "back to the files".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::rules::digest::Digest;

/// How many earlier deployments `active` remembers.
const HISTORY: usize = 20;

/// A component, by digest, with what it says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub digest: Digest,
    pub name: String,
    pub version: String,
    pub deployed_at: DateTime<Utc>,
    /// Who made it active (`user@host` for the CLI, the gateway's operator
    /// for the console); absent in deployments written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_by: Option<String>,
}

/// "Each instance serves its own rules file" (`BEAKER_RULES`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRules {
    /// Always `"file"`: what tells this entry from a [`Pointer`].
    pub rules: FileMarker,
    pub deployed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_by: Option<String>,
}

/// The one value of [`FileRules::rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMarker {
    File,
}

/// What a deployment makes the instances serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Target {
    Component(Pointer),
    File(FileRules),
}

impl Target {
    /// The instances' rules files, made active now by `by`.
    pub fn files(by: Option<String>) -> Target {
        Target::File(FileRules {
            rules: FileMarker::File,
            deployed_at: Utc::now(),
            deployed_by: by,
        })
    }

    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Target::Component(pointer) => Some(&pointer.digest),
            Target::File(_) => None,
        }
    }

    pub fn deployed_at(&self) -> DateTime<Utc> {
        match self {
            Target::Component(pointer) => pointer.deployed_at,
            Target::File(file) => file.deployed_at,
        }
    }

    pub fn deployed_by(&self) -> Option<&str> {
        match self {
            Target::Component(pointer) => pointer.deployed_by.as_deref(),
            Target::File(file) => file.deployed_by.as_deref(),
        }
    }

    /// The same rules, deployed again now by `by`.
    pub fn redeployed(&self, by: Option<String>) -> Target {
        match self {
            Target::Component(pointer) => Target::Component(Pointer {
                deployed_at: Utc::now(),
                deployed_by: by,
                ..pointer.clone()
            }),
            Target::File(_) => Target::files(by),
        }
    }

    /// Whether `wanted` names this entry: `file`, a version (`1.2.0`), a
    /// `name@version`, or the first digits (six or more) of a digest.
    pub fn is_named(&self, wanted: &str) -> bool {
        match self {
            Target::File(_) => wanted == "file",
            Target::Component(p) => {
                wanted == p.version
                    || wanted == format!("{}@{}", p.name, p.version)
                    || (wanted.len() >= 6 && p.digest.as_str().starts_with(wanted))
            }
        }
    }

    /// In a few words, for people: `name version (digest)` or "the
    /// instances' rules files".
    pub fn describe(&self) -> String {
        match self {
            Target::Component(p) => format!("{} {} ({})", p.name, p.version, p.digest.short()),
            Target::File(_) => "the instances' rules files".into(),
        }
    }
}

/// The content of `active`: the rules to serve and those served before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    #[serde(flatten)]
    pub current: Target,
    /// Earlier deployments, newest first.
    #[serde(default)]
    pub history: Vec<Target>,
}

impl Deployment {
    /// `next` becomes active; what was active goes on top of the history.
    /// The first deployment remembers the rules files as what came before
    /// it, so that it too can be rolled back.
    pub fn succeed(previous: Option<Deployment>, next: Target) -> Deployment {
        let mut history = Vec::new();
        match previous {
            Some(previous) => {
                history.push(previous.current);
                history.extend(previous.history);
            }
            None => history.push(Target::files(None)),
        }
        history.retain(|t| t.digest() != next.digest() || t.deployed_at() != next.deployed_at());
        history.truncate(HISTORY);
        Deployment {
            current: next,
            history,
        }
    }

    /// The position in the history of the newest entry `wanted` names
    /// (see [`Target::is_named`]).
    pub fn find(&self, wanted: &str) -> Option<usize> {
        self.history.iter().position(|t| t.is_named(wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(byte: u8, version: &str) -> Target {
        Target::Component(Pointer {
            digest: Digest::of(&[byte]),
            name: "r".into(),
            version: version.into(),
            deployed_at: Utc::now(),
            deployed_by: None,
        })
    }

    #[test]
    fn a_deployment_written_before_files_were_a_version_still_reads() {
        let digest = Digest::of(b"x");
        let text = format!(
            r#"{{"digest":"{digest}","name":"r","version":"1","deployed_at":"2026-12-01T10:00:00Z",
                "history":[{{"digest":"{digest}","name":"r","version":"0","deployed_at":"2026-11-01T10:00:00Z"}}]}}"#
        );
        let read: Deployment = serde_json::from_str(&text).expect("the old shape");
        assert!(matches!(&read.current, Target::Component(p) if p.version == "1"));
        assert_eq!(read.history.len(), 1);
    }

    #[test]
    fn the_files_travel_as_their_own_entry() {
        let first = Deployment::succeed(None, pointer(1, "1.0.0"));
        assert_eq!(first.history.len(), 1, "the files come before the first");
        assert!(matches!(first.history[0], Target::File(_)));
        let text = serde_json::to_string(&first).expect("serialises");
        assert!(text.contains(r#""rules":"file""#), "{text}");
        let back: Deployment = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, first);

        let files = Deployment {
            current: Target::files(Some("ops@here".into())),
            history: vec![pointer(1, "1.0.0")],
        };
        let text = serde_json::to_string(&files).expect("serialises");
        let back: Deployment = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, files);
    }

    #[test]
    fn entries_are_found_by_version_name_digest_or_file() {
        let deployment = Deployment::succeed(
            Some(Deployment::succeed(None, pointer(1, "1.0.0"))),
            pointer(2, "2.0.0"),
        );
        assert_eq!(deployment.find("1.0.0"), Some(0));
        assert_eq!(deployment.find("r@1.0.0"), Some(0));
        assert_eq!(deployment.find("file"), Some(1));
        let digest = Digest::of(&[1]);
        assert_eq!(deployment.find(&digest.as_str()[..8]), Some(0));
        assert_eq!(deployment.find(&digest.as_str()[..3]), None, "too short");
        assert_eq!(
            deployment.find("2.0.0"),
            None,
            "the active one is not earlier"
        );
    }
}
