//! How an instance's following of the rules bucket goes: whether the
//! bucket answers, and which entries it had to skip.
//!
//! An instance that cannot follow the bucket keeps serving, so nothing
//! fails loudly: without this, an operator would learn that a deploy did
//! not reach an instance only when `rules deploy --wait` ran out of time.
//! Both conditions are logged when they start and end, counted in metrics,
//! and reported in `$SRV.INFO` (hence by `beaker rules status`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::report::{BucketReport, SkippedReport};

/// An entry of the bucket the instance skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub object: String,
    /// The stream sequence of the write that was skipped.
    pub sequence: u64,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Seen {
    bucket: Option<String>,
    lost: Option<(DateTime<Utc>, String)>,
    last_skipped: Option<Skipped>,
}

/// The bucket as one instance sees it.
#[derive(Debug, Default)]
pub struct BucketHealth {
    seen: Mutex<Seen>,
    skipped: AtomicU64,
}

impl BucketHealth {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance follows `bucket` (reported even before the first look).
    pub fn following(&self, bucket: &str) {
        self.seen().bucket = Some(bucket.to_string());
    }

    /// A look failed: the bucket is lost from now, or still lost. Returns
    /// whether it was answering until now.
    pub fn lost(&self, reason: &str) -> bool {
        let mut seen = self.seen();
        let was_answering = seen.lost.is_none();
        let since = seen
            .lost
            .as_ref()
            .map_or_else(Utc::now, |(since, _)| *since);
        seen.lost = Some((since, reason.to_string()));
        was_answering
    }

    /// A look succeeded: returns since when the bucket had been lost, if
    /// it had.
    pub fn answers(&self) -> Option<DateTime<Utc>> {
        self.seen().lost.take().map(|(since, _)| since)
    }

    pub fn is_lost(&self) -> bool {
        self.seen().lost.is_some()
    }

    /// An entry that cannot be acted on was skipped; the instance goes on
    /// following the bucket and acts on the next write.
    pub fn skip(&self, object: &str, sequence: u64, reason: &str) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            object,
            sequence,
            reason,
            "skipped an entry of the rules bucket; following the next writes"
        );
        self.seen().last_skipped = Some(Skipped {
            object: object.to_string(),
            sequence,
            reason: reason.to_string(),
            at: Utc::now(),
        });
    }

    /// Entries skipped since start.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// What `$SRV.INFO` says; `None` when the instance follows no bucket.
    pub fn report(&self) -> Option<BucketReport> {
        let seen = self.seen();
        let name = seen.bucket.clone()?;
        Some(BucketReport {
            name,
            lost_since: seen.lost.as_ref().map(|(since, _)| since.to_rfc3339()),
            lost_reason: seen.lost.as_ref().map(|(_, reason)| reason.clone()),
            skipped: self.skipped(),
            last_skipped: seen.last_skipped.as_ref().map(|s| SkippedReport {
                object: s.object.clone(),
                sequence: s.sequence.to_string(),
                reason: s.reason.clone(),
                at: s.at.to_rfc3339(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_keeps_its_first_time_and_answers_ends_it() {
        let health = BucketHealth::default();
        assert_eq!(health.report(), None, "no bucket, nothing to say");
        health.following("b");
        assert!(health.lost("timeout"));
        let first = health.report().and_then(|r| r.lost_since);
        assert!(!health.lost("still"), "already lost");
        let report = health.report().expect("a bucket");
        assert_eq!(report.lost_since, first);
        assert_eq!(report.lost_reason.as_deref(), Some("still"));
        assert!(health.answers().is_some());
        assert!(!health.is_lost());
        assert_eq!(health.answers(), None);
    }

    #[test]
    fn skips_are_counted_and_the_last_is_kept() {
        let health = BucketHealth::default();
        health.following("b");
        health.skip("active", 7, "not JSON");
        health.skip("shadow", 9, "damaged");
        let report = health.report().expect("a bucket");
        assert_eq!(report.skipped, 2);
        let last = report.last_skipped.expect("the last");
        assert_eq!(
            (last.object.as_str(), last.sequence.as_str()),
            ("shadow", "9")
        );
    }
}
