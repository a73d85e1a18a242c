//! Rules distribution through a NATS Object Store bucket, so that one
//! deploy reaches every instance.
//!
//! Layout of the bucket (default `beaker-rules`):
//! - `components/<sha256>`: the component's bytes, content-addressed;
//! - `active`: a JSON [`Deployment`] naming the component every instance
//!   should serve, with the history of earlier ones (for rollback);
//! - `shadow`: a JSON [`Pointer`] naming the component to run as the
//!   shadow; absent when there is none.
//!
//! Instances watch the bucket and load what `active` and `shadow` name;
//! the CLI writes them (`beaker rules deploy | rollback | promote`).

use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::{self, Context};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::digest::Digest;
use super::state::RulesState;

/// The object naming the active rules.
pub const ACTIVE: &str = "active";
/// The object naming the shadow rules.
pub const SHADOW: &str = "shadow";
/// How many earlier deployments `active` remembers.
const HISTORY: usize = 20;

/// A component, by digest, with what it says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub digest: Digest,
    pub name: String,
    pub version: String,
    pub deployed_at: DateTime<Utc>,
}

/// The content of `active`: the rules to serve and those served before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    #[serde(flatten)]
    pub current: Pointer,
    /// Earlier deployments, newest first.
    #[serde(default)]
    pub history: Vec<Pointer>,
}

impl Deployment {
    /// `next` becomes active; what was active goes on top of the history.
    pub fn succeed(previous: Option<Deployment>, next: Pointer) -> Deployment {
        let mut history = Vec::new();
        if let Some(previous) = previous {
            history.push(previous.current);
            history.extend(previous.history);
        }
        history.retain(|p| p.digest != next.digest || p.deployed_at != next.deployed_at);
        history.truncate(HISTORY);
        Deployment {
            current: next,
            history,
        }
    }
}

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
    #[error("{object} in the rules bucket is not valid: {reason}")]
    Invalid { object: String, reason: String },
}

/// The object name of a component.
pub fn component_object(digest: &Digest) -> String {
    format!("components/{digest}")
}

/// Opens the bucket, creating it if it does not exist yet.
pub async fn open(js: &Context, bucket: &str) -> Result<ObjectStore, BucketError> {
    if let Ok(store) = js.get_object_store(bucket).await {
        return Ok(store);
    }
    js.create_object_store(object_store::Config {
        bucket: bucket.to_string(),
        description: Some("Beaker rules components and deployments".into()),
        ..Default::default()
    })
    .await
    .map_err(|e| BucketError::Open {
        bucket: bucket.to_string(),
        reason: e.to_string(),
    })
}

/// Reads a whole object, or `None` if it does not exist.
pub async fn read(store: &ObjectStore, name: &str) -> Result<Option<Vec<u8>>, BucketError> {
    let mut object = match store.get(name).await {
        Ok(object) => object,
        Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(BucketError::Read {
                object: name.to_string(),
                reason: e.to_string(),
            });
        }
    };
    let mut bytes = Vec::new();
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| BucketError::Read {
            object: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(Some(bytes))
}

/// Writes a whole object, replacing any earlier one of that name.
pub async fn write(store: &ObjectStore, name: &str, bytes: &[u8]) -> Result<(), BucketError> {
    let mut reader = bytes;
    store
        .put(name, &mut reader)
        .await
        .map(|_| ())
        .map_err(|e| BucketError::Write {
            object: name.to_string(),
            reason: e.to_string(),
        })
}

/// Deletes an object; deleting one that is not there is fine.
pub async fn delete(store: &ObjectStore, name: &str) -> Result<(), BucketError> {
    match store.delete(name).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
        Err(e) => Err(BucketError::Write {
            object: name.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Reads and parses a JSON object.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    store: &ObjectStore,
    name: &str,
) -> Result<Option<T>, BucketError> {
    match read(store, name).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| BucketError::Invalid {
                object: name.to_string(),
                reason: e.to_string(),
            }),
    }
}

pub async fn write_json<T: Serialize>(
    store: &ObjectStore,
    name: &str,
    value: &T,
) -> Result<(), BucketError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| BucketError::Invalid {
        object: name.to_string(),
        reason: e.to_string(),
    })?;
    write(store, name, &bytes).await
}

/// Fetches a component and checks that its bytes have the digest it is
/// stored under.
pub async fn fetch_component(store: &ObjectStore, digest: &Digest) -> Result<Vec<u8>, BucketError> {
    let name = component_object(digest);
    let bytes = read(store, &name).await?.ok_or_else(|| BucketError::Read {
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

/// Stores a component under its digest (a no-op if it is already there).
pub async fn store_component(store: &ObjectStore, bytes: &[u8]) -> Result<Digest, BucketError> {
    let digest = Digest::of(bytes);
    let name = component_object(&digest);
    if store.info(&name).await.is_err() {
        write(store, &name, bytes).await?;
    }
    Ok(digest)
}

/// Follows the bucket: loads whatever `active` and `shadow` name, now and
/// whenever they change, until `stop` turns true. Survives NATS outages by
/// watching again.
pub async fn follow(
    js: jetstream::Context,
    bucket: String,
    state: std::sync::Arc<RulesState>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pause = Duration::from_millis(200);
    loop {
        let result = tokio::select! {
            () = crate::shutdown::stopped(&mut stop) => return,
            result = follow_once(&js, &bucket, &state) => result,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, bucket, "lost the rules bucket; watching again");
        }
        tokio::select! {
            () = crate::shutdown::stopped(&mut stop) => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

async fn follow_once(
    js: &jetstream::Context,
    bucket: &str,
    state: &std::sync::Arc<RulesState>,
) -> Result<(), BucketError> {
    let store = open(js, bucket).await?;
    // The watch starts with the latest of every object, then follows
    // changes, so nothing between reading and watching is missed.
    let mut changes = store
        .watch_with_history()
        .await
        .map_err(|e| BucketError::Read {
            object: "(watch)".into(),
            reason: e.to_string(),
        })?;
    while let Some(change) = changes.next().await {
        let info = change.map_err(|e| BucketError::Read {
            object: "(watch)".into(),
            reason: e.to_string(),
        })?;
        match info.name.as_str() {
            ACTIVE if !info.deleted => apply_active(&store, state).await,
            SHADOW if info.deleted => state.clear_shadow(),
            SHADOW => apply_shadow(&store, state).await,
            _ => {}
        }
    }
    Err(BucketError::Read {
        object: "(watch)".into(),
        reason: "the watch ended".into(),
    })
}

async fn apply_active(store: &ObjectStore, state: &RulesState) {
    let deployment: Deployment = match read_json(store, ACTIVE).await {
        Ok(Some(deployment)) => deployment,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the active deployment");
            return;
        }
    };
    if state.active().digest == deployment.current.digest {
        return;
    }
    let origin = format!("bucket:{}", deployment.current.digest);
    match fetch_component(store, &deployment.current.digest).await {
        Ok(bytes) => {
            let _ = state.activate(&bytes, &origin).await;
        }
        Err(e) => tracing::error!(error = %e, "cannot fetch the deployed rules"),
    }
}

async fn apply_shadow(store: &ObjectStore, state: &RulesState) {
    let pointer: Pointer = match read_json(store, SHADOW).await {
        Ok(Some(pointer)) => pointer,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the shadow deployment");
            return;
        }
    };
    if state.shadow().is_some_and(|s| s.digest == pointer.digest) {
        return;
    }
    let origin = format!("bucket:{}", pointer.digest);
    match fetch_component(store, &pointer.digest).await {
        Ok(bytes) => {
            let _ = state.set_shadow(&bytes, &origin).await;
        }
        Err(e) => tracing::error!(error = %e, "cannot fetch the shadow rules"),
    }
}

/// Applies what the bucket names right now (used once at start, before the
/// endpoints open, so that a new instance serves the deployed rules from
/// its first request).
pub async fn sync_once(
    js: &jetstream::Context,
    bucket: &str,
    state: &RulesState,
) -> Result<(), BucketError> {
    let store = open(js, bucket).await?;
    apply_active(&store, state).await;
    if read(&store, SHADOW).await?.is_some() {
        apply_shadow(&store, state).await;
    }
    Ok(())
}
