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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::watch;

use super::objects::{Described, Meta};
use super::{ACTIVE, Bucket, BucketError, Deployment, Pointer, SHADOW, Target, parse};
use crate::rules::state::RulesState;

/// How long one look (opening the bucket, reading a pointer, fetching a
/// component) may take before it is abandoned until the next.
const LOOK_WITHIN: Duration = Duration::from_secs(5);

/// Follows the bucket until `stop` turns true, looking every `every`.
/// `follower` is the one that synced at start: what it saw (and skipped)
/// then is not acted on, or reported, a second time.
pub async fn follow(
    mut follower: Follower,
    every: Duration,
    state: Arc<RulesState>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let looked = tokio::select! {
            () = crate::shutdown::stopped(&mut stop) => return,
            looked = follower.look(&state) => looked,
        };
        match looked {
            Ok(()) => {
                if let Some(since) = state.bucket.answers() {
                    let lost_for = (chrono::Utc::now() - since).num_milliseconds();
                    tracing::info!(
                        bucket = follower.name,
                        lost_for_ms = lost_for,
                        "the rules bucket answers again"
                    );
                }
            }
            Err(e) => {
                if state.bucket.lost(&e.to_string()) {
                    tracing::warn!(
                        bucket = follower.name,
                        error = %e,
                        "lost the rules bucket; looking again every {}",
                        humantime::format_duration(every)
                    );
                } else {
                    tracing::debug!(error = %e, "the rules bucket still does not answer");
                }
            }
        }
        tokio::select! {
            () = crate::shutdown::stopped(&mut stop) => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// What one instance has seen of the bucket.
pub struct Follower {
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
    /// Per object, a write whose parts were not found and how many looks
    /// found them missing: a replica catching up is given a few looks,
    /// then the write is skipped.
    incomplete: HashMap<&'static str, (u64, u32)>,
}

/// Looks that may find a write incomplete before it is skipped.
const INCOMPLETE_LOOKS: u32 = 3;

/// What a look made of one write.
enum Acted {
    /// Acted on, or nothing to do: do not look at this write again.
    Done,
    /// Cannot be acted on, ever: skip it, say why, follow the next write.
    Skip(String),
}

impl Follower {
    /// A follower of `name`; `state` reports it from now on.
    pub fn new(
        js: jetstream::Context,
        name: String,
        replicas: usize,
        state: &RulesState,
    ) -> Follower {
        state.bucket.following(&name);
        Follower {
            js,
            name,
            replicas,
            bucket: None,
            active_seen: None,
            shadow_seen: None,
            incomplete: HashMap::new(),
        }
    }

    /// Applies what the bucket names right now. Used once at start, before
    /// the endpoints open, so that a new instance serves the deployed rules
    /// from its first request; then [`follow`] goes on from what it saw.
    pub async fn sync(&mut self, state: &RulesState) -> Result<(), BucketError> {
        self.look(state).await
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
        if let Some((sequence, described)) = bucket.reader.latest(ACTIVE).await?
            && newer(self.active_seen, sequence)
        {
            let acted = match described {
                Described::Written(meta) => apply_active(bucket, &meta, state).await,
                // A deleted pointer leaves the active rules as they are.
                Described::Deleted => Ok(Acted::Done),
                Described::Unreadable(reason) => Ok(Acted::Skip(reason)),
            };
            if self.settle(ACTIVE, sequence, acted, state)? {
                self.active_seen = Some(sequence);
            }
        }
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        if let Some((sequence, described)) = bucket.reader.latest(SHADOW).await?
            && newer(self.shadow_seen, sequence)
        {
            let acted = match described {
                Described::Written(meta) => apply_shadow(bucket, &meta, state).await,
                Described::Deleted => {
                    state.clear_shadow();
                    Ok(Acted::Done)
                }
                Described::Unreadable(reason) => Ok(Acted::Skip(reason)),
            };
            if self.settle(SHADOW, sequence, acted, state)? {
                self.shadow_seen = Some(sequence);
            }
        }
        Ok(())
    }

    /// What to make of a look at one write: `Ok(true)` when it needs no
    /// further look (acted on, or skipped and reported), `Ok(false)` when
    /// it is looked at again next time, `Err` when the bucket itself
    /// failed. Damaged or foreign content is skipped at once; missing parts
    /// after [`INCOMPLETE_LOOKS`] looks.
    fn settle(
        &mut self,
        object: &'static str,
        sequence: u64,
        acted: Result<Acted, BucketError>,
        state: &RulesState,
    ) -> Result<bool, BucketError> {
        let reason = match acted {
            Ok(Acted::Done) => {
                self.incomplete.remove(object);
                return Ok(true);
            }
            Ok(Acted::Skip(reason)) => reason,
            Err(
                e @ (BucketError::Damaged { .. }
                | BucketError::Corrupt { .. }
                | BucketError::Invalid { .. }),
            ) => e.to_string(),
            Err(e @ BucketError::Incomplete { .. }) => {
                let looks = match self.incomplete.get(object) {
                    Some(&(seen, looks)) if seen == sequence => looks + 1,
                    _ => 1,
                };
                if looks < INCOMPLETE_LOOKS {
                    self.incomplete.insert(object, (sequence, looks));
                    tracing::debug!(object, sequence, error = %e, "a write of the rules bucket is incomplete; looking again");
                    return Ok(false);
                }
                self.incomplete.remove(object);
                format!("{e} ({looks} looks)")
            }
            Err(e) => return Err(e),
        };
        state.bucket.skip(object, sequence, &reason);
        Ok(true)
    }
}

/// Whether a pointer written at `sequence` is newer than the one acted on.
fn newer(seen: Option<u64>, sequence: u64) -> bool {
    seen.is_none_or(|seen| sequence > seen)
}

/// Makes active what `active` names, unless it already is: a component
/// of the bucket, or the instance's rules file. A component that does not
/// load is reported by the state (log, metric, `$SRV.INFO`); the instance
/// keeps what it serves.
async fn apply_active(
    bucket: &Bucket,
    meta: &Meta,
    state: &RulesState,
) -> Result<Acted, BucketError> {
    let bytes = bucket.reader.content(ACTIVE, meta).await?;
    let deployment: Deployment = match parse(ACTIVE, &bytes) {
        Ok(deployment) => deployment,
        Err(e) => return Ok(Acted::Skip(e.to_string())),
    };
    let digest = match &deployment.current {
        Target::File(_) => {
            state.serve_file().await;
            return Ok(Acted::Done);
        }
        Target::Component(pointer) => &pointer.digest,
    };
    if state.active().digest == *digest {
        return Ok(Acted::Done);
    }
    let component = bucket.fetch_component(digest).await?;
    let _ = state
        .activate(&component, &format!("bucket:{digest}"))
        .await;
    Ok(Acted::Done)
}

/// Loads the component `shadow` names, unless it already runs as shadow.
async fn apply_shadow(
    bucket: &Bucket,
    meta: &Meta,
    state: &RulesState,
) -> Result<Acted, BucketError> {
    let bytes = bucket.reader.content(SHADOW, meta).await?;
    let pointer: Pointer = match parse(SHADOW, &bytes) {
        Ok(pointer) => pointer,
        Err(e) => return Ok(Acted::Skip(e.to_string())),
    };
    if state.shadow().is_some_and(|s| s.digest == pointer.digest) {
        return Ok(Acted::Done);
    }
    let component = bucket.fetch_component(&pointer.digest).await?;
    let origin = format!("bucket:{}", pointer.digest);
    let _ = state.set_shadow(&component, &origin).await;
    Ok(Acted::Done)
}
