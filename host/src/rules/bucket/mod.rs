//! Rules distribution through a NATS Object Store bucket, so that one
//! deploy reaches every instance.
//!
//! Layout of the bucket (default `beaker-rules`):
//! - `components/<sha256>`: the component's bytes, content-addressed;
//! - `active`: a JSON [`Deployment`] naming the component every instance
//!   should serve (or their own rules files), with the history of earlier
//!   ones (for rollback);
//! - `shadow`: a JSON [`Pointer`] naming the component to run as the
//!   shadow; absent when there is none.
//!
//! Instances follow the bucket and load what `active` and `shadow` name
//! ([`follow`]); the CLI writes them (`beaker rules deploy | rollback |
//! promote`). Objects are written with the Object Store's own layout, so
//! any NATS client can read them, and read back without consumers
//! ([`objects`]).

mod changes;
mod deployment;
mod follow;
mod objects;

pub use changes::{ChangeError, Deployments, RolledBack};
pub use deployment::{Deployment, FileRules, Pointer, Target};
pub use follow::{Follower, follow};

use async_nats::jetstream::Context;
use async_nats::jetstream::object_store::{self, ObjectStore};
use serde::Serialize;

use super::digest::Digest;
use objects::Reader;

/// The object naming the active rules.
pub const ACTIVE: &str = "active";
/// The object naming the shadow rules.
pub const SHADOW: &str = "shadow";
/// What went wrong with the bucket.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("cannot open the rules bucket {bucket}: {reason}")]
    Open { bucket: String, reason: String },
    #[error("cannot read {object} from the rules bucket: {reason}")]
    Read { object: String, reason: String },
    #[error("cannot write {object} to the rules bucket: {reason}")]
    Write { object: String, reason: String },
    #[error("component {digest} in the bucket does not match its digest")]
    Corrupt { digest: Digest },
    /// Bytes that will not become right by reading again.
    #[error("{object} in the rules bucket is damaged: {reason}")]
    Damaged { object: String, reason: String },
    /// Part of an object not found: a replica still catching up, or an
    /// object whose parts are gone.
    #[error("{object} in the rules bucket is incomplete: {reason}")]
    Incomplete { object: String, reason: String },
    #[error("{object} in the rules bucket is not valid: {reason}")]
    Invalid { object: String, reason: String },
}

/// The object name of a component.
pub fn component_object(digest: &Digest) -> String {
    format!("components/{digest}")
}

/// An open rules bucket: written through the Object Store, read through
/// [`Reader`].
pub struct Bucket {
    store: ObjectStore,
    reader: Reader,
}

impl Bucket {
    /// Opens the bucket, creating it with `replicas` if it does not exist
    /// yet. One that exists with other replicas is left as it is, and said
    /// so: changing a bucket's replicas is an operator's decision.
    pub async fn open(js: &Context, bucket: &str, replicas: usize) -> Result<Bucket, BucketError> {
        let opened = |reason: String| BucketError::Open {
            bucket: bucket.to_string(),
            reason,
        };
        let store = match js.get_object_store(bucket).await {
            Ok(store) => store,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: bucket.to_string(),
                    description: Some("Beaker rules components and deployments".into()),
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| opened(e.to_string()))?,
        };
        Self::with_store(js, bucket, store, Some(replicas)).await
    }

    /// Opens the bucket if it exists, without creating it: for readers
    /// (the gateway) that must not leave a bucket behind by looking.
    pub async fn find(js: &Context, bucket: &str) -> Result<Option<Bucket>, BucketError> {
        use async_nats::jetstream::ErrorCode;
        use async_nats::jetstream::context::GetStreamErrorKind;
        let opened = |reason: String| BucketError::Open {
            bucket: bucket.to_string(),
            reason,
        };
        match js.get_stream(format!("OBJ_{bucket}")).await {
            Ok(_) => {}
            Err(e) => {
                return match e.kind() {
                    GetStreamErrorKind::JetStream(j)
                        if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                    {
                        Ok(None)
                    }
                    _ => Err(opened(e.to_string())),
                };
            }
        }
        let store = js
            .get_object_store(bucket)
            .await
            .map_err(|e| opened(e.to_string()))?;
        Self::with_store(js, bucket, store, None).await.map(Some)
    }

    async fn with_store(
        js: &Context,
        bucket: &str,
        store: ObjectStore,
        replicas: Option<usize>,
    ) -> Result<Bucket, BucketError> {
        let opened = |reason: String| BucketError::Open {
            bucket: bucket.to_string(),
            reason,
        };
        // The bucket is a stream of its own, `OBJ_<bucket>`.
        let mut stream = js
            .get_stream(format!("OBJ_{bucket}"))
            .await
            .map_err(|e| opened(e.to_string()))?;
        let config = stream
            .info()
            .await
            .map_err(|e| opened(e.to_string()))?
            .config
            .clone();
        if let Some(replicas) = replicas
            && config.num_replicas.max(1) != replicas
        {
            tracing::warn!(
                bucket,
                replicas = config.num_replicas.max(1),
                asked = replicas,
                "the rules bucket exists with other replicas; it is left as it is"
            );
        }
        let reader = Reader::new(stream, bucket, config.allow_direct);
        Ok(Bucket { store, reader })
    }

    /// Reads a whole object, or `None` if it does not exist.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, BucketError> {
        self.reader.read(name).await
    }

    /// Reads and parses a JSON object.
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, BucketError> {
        match self.read(name).await? {
            None => Ok(None),
            Some(bytes) => parse(name, &bytes).map(Some),
        }
    }

    /// Writes a whole object, replacing any earlier one of that name.
    pub async fn write(&self, name: &str, bytes: &[u8]) -> Result<(), BucketError> {
        let mut reader = bytes;
        self.store
            .put(name, &mut reader)
            .await
            .map(|_| ())
            .map_err(|e| BucketError::Write {
                object: name.to_string(),
                reason: e.to_string(),
            })
    }

    pub async fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), BucketError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| BucketError::Invalid {
            object: name.to_string(),
            reason: e.to_string(),
        })?;
        self.write(name, &bytes).await
    }

    /// Deletes an object; deleting one that is not there is fine.
    pub async fn delete(&self, name: &str) -> Result<(), BucketError> {
        match self.store.delete(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(BucketError::Write {
                object: name.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Fetches a component and checks that its bytes have the digest it is
    /// stored under.
    pub async fn fetch_component(&self, digest: &Digest) -> Result<Vec<u8>, BucketError> {
        let name = component_object(digest);
        let bytes = self
            .read(&name)
            .await?
            .ok_or_else(|| BucketError::Incomplete {
                object: name.clone(),
                reason: "not found".into(),
            })?;
        if Digest::of(&bytes) != *digest {
            return Err(BucketError::Corrupt {
                digest: digest.clone(),
            });
        }
        Ok(bytes)
    }

    /// Stores a component under its digest (a no-op if it is already
    /// there).
    pub async fn store_component(&self, bytes: &[u8]) -> Result<Digest, BucketError> {
        let digest = Digest::of(bytes);
        let name = component_object(&digest);
        if self.reader.meta(&name).await?.is_none() {
            self.write(&name, bytes).await?;
        }
        Ok(digest)
    }
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T, BucketError> {
    serde_json::from_slice(bytes).map_err(|e| BucketError::Invalid {
        object: name.to_string(),
        reason: e.to_string(),
    })
}
