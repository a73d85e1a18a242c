//! Watching the rules file: when it changes, the host swaps to it. This is
//! the development loop (`make dev` rebuilds the component, the running
//! host picks it up) and a simple way to deploy on one machine.
//!
//! The file is polled (it works the same on every filesystem, bind mounts
//! and volumes included) and read only once its size and modification time
//! have stayed the same for one interval, so a file still being written is
//! not mistaken for a broken component.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::digest::Digest;
use super::state::RulesState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

async fn stamp(path: &PathBuf) -> Option<Stamp> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// Polls `path` every `interval` and activates the component whenever its
/// content changes, until `stop` turns true. `loaded_digest` is the digest
/// of the file as the host loaded it at start.
pub async fn follow_file(
    path: PathBuf,
    interval: Duration,
    loaded_digest: Digest,
    state: Arc<RulesState>,
    mut stop: watch::Receiver<bool>,
) {
    // Nothing seen yet: the first look reads the file and compares its
    // digest with what the host loaded. Taking the first stamp here instead
    // would miss a change made between the host's start and this task's
    // first run (the file replaced right after the host said it was ready).
    let mut seen: Option<Stamp> = None;
    let mut last_digest = loaded_digest;
    let mut missing_reported = false;
    loop {
        tokio::select! {
            () = crate::shutdown::stopped(&mut stop) => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = stamp(&path).await;
        if now.is_none() {
            if !missing_reported {
                tracing::warn!(path = %path.display(), "the rules file is gone; the active rules stay");
                missing_reported = true;
            }
            seen = None;
            continue;
        }
        missing_reported = false;
        if now == seen {
            continue;
        }
        // Changed: wait one more interval for it to settle.
        seen = now;
        tokio::select! {
            () = crate::shutdown::stopped(&mut stop) => return,
            () = tokio::time::sleep(interval) => {}
        }
        if stamp(&path).await != seen {
            continue; // still being written; look again next time
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the rules file");
                continue;
            }
        };
        let digest = Digest::of(&bytes);
        if digest == last_digest {
            continue;
        }
        last_digest = digest;
        tracing::info!(path = %path.display(), "rules file changed; loading it");
        let origin = format!("file:{}", path.display());
        let _ = state.activate_file(&bytes, &origin).await;
    }
}
