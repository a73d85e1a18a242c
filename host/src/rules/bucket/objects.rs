//! Reading the bucket's objects one message at a time, without consumers.
//!
//! The Object Store client reads an object through an ordered consumer,
//! and JetStream places that consumer on one of the stream's replicas. On
//! a cluster that has just lost a server, nats-server 2.9 goes on placing
//! consumers on the lost server for a while; a read then waits for a
//! consumer that never starts, and every retry is a new gamble. Here an
//! object is read with one get per message, answered by whichever replica
//! is up (a direct get, or the stream leader's get when the stream does
//! not allow direct gets), so a read works as long as the stream does.
//!
//! The layout is the Object Store's: an object's description is the last
//! message on `$O.<bucket>.M.<base64url(name)>`, its bytes the chunks on
//! `$O.<bucket>.C.<nuid>`. The description is parsed leniently: only what
//! a read needs, so an entry another client wrote in its own dialect (an
//! empty `mtime`, fields this host does not know) is still read.

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind, Stream};
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::BucketError;

/// What a read needs of an object's description.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Meta {
    /// Names this version of the object's chunks.
    #[serde(default)]
    pub nuid: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub chunks: u64,
    /// `SHA-256=<base64url>` of the bytes, when the writer gave one.
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub deleted: bool,
}

/// The last write of an object's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Described {
    Written(Meta),
    /// A delete marker (this host's, or any other client's).
    Deleted,
    /// Not a description this host can read: why.
    Unreadable(String),
}

/// Reads objects from the bucket's stream.
pub struct Reader {
    stream: Stream,
    bucket: String,
    /// Whether the stream answers direct gets (every replica answers), or
    /// only the leader's message get.
    direct: bool,
}

/// One message, by subject, as the two kinds of get answer it.
enum Got {
    Message(StreamMessage),
    NotFound,
}

impl Reader {
    pub fn new(stream: Stream, bucket: &str, direct: bool) -> Reader {
        Reader {
            stream,
            bucket: bucket.to_string(),
            direct,
        }
    }

    /// The description of `name` and the sequence it was written at, or
    /// `None` if there is none or it is deleted.
    pub async fn meta(&self, name: &str) -> Result<Option<(u64, Meta)>, BucketError> {
        match self.latest(name).await? {
            None | Some((_, Described::Deleted)) => Ok(None),
            Some((sequence, Described::Written(meta))) => Ok(Some((sequence, meta))),
            Some((_, Described::Unreadable(reason))) => Err(BucketError::Invalid {
                object: name.to_string(),
                reason,
            }),
        }
    }

    /// The last write of `name`'s description and its sequence, or `None`
    /// when it was never written. The sequence says which of two answers
    /// is newer, for a reader that may be answered by a replica still
    /// catching up, and lets a follower skip a bad write once.
    pub async fn latest(&self, name: &str) -> Result<Option<(u64, Described)>, BucketError> {
        let subject = format!("$O.{}.M.{}", self.bucket, URL_SAFE.encode(name));
        let message = match self.last(name, &subject).await? {
            Got::Message(message) => message,
            Got::NotFound => return Ok(None),
        };
        let described = match serde_json::from_slice::<Meta>(&message.payload) {
            Ok(meta) if meta.deleted => Described::Deleted,
            Ok(meta) => Described::Written(meta),
            Err(e) => Described::Unreadable(format!("its description is not readable: {e}")),
        };
        Ok(Some((message.sequence, described)))
    }

    /// A whole object, or `None` if it does not exist.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, BucketError> {
        match self.meta(name).await? {
            Some((_, meta)) => self.content(name, &meta).await.map(Some),
            None => Ok(None),
        }
    }

    /// The bytes `meta` describes, checked against its size and digest.
    pub async fn content(&self, name: &str, meta: &Meta) -> Result<Vec<u8>, BucketError> {
        let damaged = |reason: String| BucketError::Damaged {
            object: name.to_string(),
            reason,
        };
        let subject = format!("$O.{}.C.{}", self.bucket, meta.nuid);
        let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        let mut after = 0;
        for chunk in 0..meta.chunks {
            match self.next(name, &subject, after + 1).await? {
                Got::Message(message) => {
                    after = message.sequence;
                    bytes.extend_from_slice(&message.payload);
                }
                // A replica that has not caught up yet, or chunks purged by
                // a newer version: either way, the next read will tell.
                Got::NotFound => {
                    return Err(BucketError::Incomplete {
                        object: name.to_string(),
                        reason: format!("chunk {} of {} is missing", chunk + 1, meta.chunks),
                    });
                }
            }
        }
        if bytes.len() as u64 != meta.size {
            return Err(damaged(format!(
                "{} bytes read where {} were written",
                bytes.len(),
                meta.size
            )));
        }
        if let Some(expected) = meta.digest.as_deref().and_then(sha256_of_digest)
            && expected != Sha256::digest(&bytes).as_slice()
        {
            return Err(damaged(
                "its bytes do not match the digest it was written with".into(),
            ));
        }
        Ok(bytes)
    }

    async fn last(&self, name: &str, subject: &str) -> Result<Got, BucketError> {
        if self.direct {
            direct(name, self.stream.direct_get_last_for_subject(subject).await)
        } else {
            leader(
                name,
                self.stream.get_last_raw_message_by_subject(subject).await,
            )
        }
    }

    async fn next(&self, name: &str, subject: &str, from: u64) -> Result<Got, BucketError> {
        if self.direct {
            let got = self
                .stream
                .direct_get_next_for_subject(subject, Some(from))
                .await;
            direct(name, got)
        } else {
            let got = self
                .stream
                .raw_message_builder()
                .sequence(from)
                .next_by_subject(subject)
                .send()
                .await;
            leader(name, got)
        }
    }
}

fn direct(
    name: &str,
    got: Result<StreamMessage, async_nats::jetstream::stream::DirectGetError>,
) -> Result<Got, BucketError> {
    match got {
        Ok(message) => Ok(Got::Message(message)),
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(Got::NotFound),
        Err(e) => Err(BucketError::Read {
            object: name.to_string(),
            reason: e.to_string(),
        }),
    }
}

fn leader(
    name: &str,
    got: Result<StreamMessage, async_nats::jetstream::stream::LastRawMessageError>,
) -> Result<Got, BucketError> {
    match got {
        Ok(message) => Ok(Got::Message(message)),
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(Got::NotFound),
        Err(e) => Err(BucketError::Read {
            object: name.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// The hash in an Object Store digest (`SHA-256=<base64url>`, padded or
/// not); `None` for any other algorithm or form, which is then not checked.
fn sha256_of_digest(digest: &str) -> Option<Vec<u8>> {
    let encoded = digest.strip_prefix("SHA-256=")?;
    URL_SAFE
        .decode(encoded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(encoded))
        .ok()
        .filter(|hash| hash.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_from_another_client_is_read_for_what_matters() {
        // As another client's delete marker may look: an empty mtime.
        let meta: Meta = serde_json::from_str(
            r#"{"name":"shadow","bucket":"b","nuid":"N","size":0,"chunks":0,"mtime":"","deleted":true}"#,
        )
        .expect("lenient");
        assert!(meta.deleted);
        assert_eq!(meta.nuid, "N");
    }

    #[test]
    fn the_object_store_digest_forms_are_understood() {
        let hash = Sha256::digest(b"beaker");
        let padded = format!("SHA-256={}", URL_SAFE.encode(hash));
        let bare = format!("SHA-256={}", URL_SAFE_NO_PAD.encode(hash));
        assert_eq!(sha256_of_digest(&padded).as_deref(), Some(hash.as_slice()));
        assert_eq!(sha256_of_digest(&bare).as_deref(), Some(hash.as_slice()));
        assert_eq!(sha256_of_digest("MD5=abc"), None);
        assert_eq!(sha256_of_digest("SHA-256=not base64!"), None);
    }
}
