//! Following the bucket: every instance looks at what `active` and
//! `shadow` name, at start and then every poll interval, and loads what
//! changed.
//!
//! Why a poll and not a watch: a watch is a consumer on one of the
//! bucket's replicas, which a cluster losing that server leaves silent
//! until heartbeats are missed, and whose replacement may be placed on the
//! lost server again (see [`super::objects`]). A look is two gets answered
//! by any live replica, bounded in time; it costs two small requests per
//! interval per instance, and a deploy reaches every instance within one
//! interval, through failovers included.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::objects::Meta;
use super::{ACTIVE, Bucket, BucketError, Deployment, Pointer, SHADOW, parse};
use crate::rules::state::RulesState;

/// How long one look (opening the bucket, reading a pointer, fetching a
/// component) may take before it is abandoned until the next.
const LOOK_WITHIN: Duration = Duration::from_secs(5);

/// Follows the bucket until `stop` turns true, looking every `every`.
pub async fn follow(
    js: jetstream::Context,
    bucket: String,
    replicas: usize,
    every: Duration,
    state: Arc<RulesState>,
    mut stop: watch::Receiver<bool>,
) {
    let mut follower = Follower::new(js, bucket, replicas);
    let mut lost: Option<Instant> = None;
    loop {
        let looked = tokio::select! {
            () = crate::shutdown::stopped(&mut stop) => return,
            looked = follower.look(&state) => looked,
        };
        match (looked, lost) {
            (Ok(()), Some(since)) => {
                tracing::info!(
                    bucket = follower.name,
                    lost_for_ms = since.elapsed().as_millis() as u64,
                    "the rules bucket answers again"
                );
                lost = None;
            }
            (Err(e), None) => {
                tracing::warn!(
                    bucket = follower.name,
                    error = %e,
                    "lost the rules bucket; looking again every {}",
                    humantime::format_duration(every)
                );
                lost = Some(Instant::now());
            }
            (Err(e), Some(_)) => {
                tracing::debug!(error = %e, "the rules bucket still does not answer")
            }
            (Ok(()), None) => {}
        }
        tokio::select! {
            () = crate::shutdown::stopped(&mut stop) => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Applies what the bucket names right now (used once at start, before
/// the endpoints open, so that a new instance serves the deployed rules
/// from its first request).
pub async fn sync_once(
    js: &jetstream::Context,
    bucket: &str,
    replicas: usize,
    state: &RulesState,
) -> Result<(), BucketError> {
    Follower::new(js.clone(), bucket.to_string(), replicas)
        .look(state)
        .await
}

/// What one instance has seen of the bucket.
struct Follower {
    js: jetstream::Context,
    name: String,
    replicas: usize,
    /// Opened on the first look, and again after a look that failed.
    bucket: Option<Bucket>,
    /// The sequence of the last `active` and `shadow` descriptions acted
    /// on: a new write has a new sequence, so an unchanged pointer costs
    /// one get and nothing more. Only a newer one is acted on: on a
    /// cluster a direct get may be answered by a replica still catching
    /// up, whose older answer must not swap the rules back.
    active_seen: Option<u64>,
    shadow_seen: Option<u64>,
}

impl Follower {
    fn new(js: jetstream::Context, name: String, replicas: usize) -> Follower {
        Follower {
            js,
            name,
            replicas,
            bucket: None,
            active_seen: None,
            shadow_seen: None,
        }
    }

    async fn look(&mut self, state: &RulesState) -> Result<(), BucketError> {
        let looked = tokio::time::timeout(LOOK_WITHIN, self.look_unbounded(state))
            .await
            .unwrap_or_else(|_| {
                Err(BucketError::Read {
                    object: "active and shadow".into(),
                    reason: format!("no answer within {} s", LOOK_WITHIN.as_secs()),
                })
            });
        if looked.is_err() {
            self.bucket = None;
        }
        looked
    }

    async fn look_unbounded(&mut self, state: &RulesState) -> Result<(), BucketError> {
        if self.bucket.is_none() {
            self.bucket = Some(Bucket::open(&self.js, &self.name, self.replicas).await?);
        }
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        if let Some((sequence, written)) = bucket.reader.latest(ACTIVE).await?
            && newer(self.active_seen, sequence)
        {
            // A deleted pointer leaves the active rules as they are.
            if let Some(meta) = written {
                apply_active(bucket, &meta, state).await?;
            }
            self.active_seen = Some(sequence);
        }
        if let Some((sequence, written)) = bucket.reader.latest(SHADOW).await?
            && newer(self.shadow_seen, sequence)
        {
            match written {
                Some(meta) => apply_shadow(bucket, &meta, state).await?,
                None => state.clear_shadow(),
            }
            self.shadow_seen = Some(sequence);
        }
        Ok(())
    }
}

/// Whether a pointer written at `sequence` is newer than the one acted on.
fn newer(seen: Option<u64>, sequence: u64) -> bool {
    seen.is_none_or(|seen| sequence > seen)
}

/// Loads the component `active` names, unless it is already active.
/// A failed read is returned, to be tried again at the next look; content
/// that is wrong stays wrong until the next deploy, so it is logged and
/// skipped.
async fn apply_active(bucket: &Bucket, meta: &Meta, state: &RulesState) -> Result<(), BucketError> {
    let bytes = bucket.reader.content(ACTIVE, meta).await?;
    let deployment: Deployment = match parse(ACTIVE, &bytes) {
        Ok(deployment) => deployment,
        Err(e) => {
            tracing::error!(error = %e, "the active deployment is not valid; skipped");
            return Ok(());
        }
    };
    let digest = &deployment.current.digest;
    if state.active().digest == *digest {
        return Ok(());
    }
    let component = match bucket.fetch_component(digest).await {
        Ok(component) => component,
        Err(e @ BucketError::Corrupt { .. }) => {
            tracing::error!(error = %e, "the active component is damaged; skipped");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // A component that does not load is reported by the state (log and
    // metric); the instance keeps what it serves.
    let _ = state
        .activate(&component, &format!("bucket:{digest}"))
        .await;
    Ok(())
}

/// Loads the component `shadow` names, unless it already runs as shadow.
async fn apply_shadow(bucket: &Bucket, meta: &Meta, state: &RulesState) -> Result<(), BucketError> {
    let bytes = bucket.reader.content(SHADOW, meta).await?;
    let pointer: Pointer = match parse(SHADOW, &bytes) {
        Ok(pointer) => pointer,
        Err(e) => {
            tracing::error!(error = %e, "the shadow deployment is not valid; skipped");
            return Ok(());
        }
    };
    if state.shadow().is_some_and(|s| s.digest == pointer.digest) {
        return Ok(());
    }
    let component = match bucket.fetch_component(&pointer.digest).await {
        Ok(component) => component,
        Err(e @ BucketError::Corrupt { .. }) => {
            tracing::error!(error = %e, "the shadow component is damaged; skipped");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let origin = format!("bucket:{}", pointer.digest);
    let _ = state.set_shadow(&component, &origin).await;
    Ok(())
}
