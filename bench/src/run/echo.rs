//! The NATS baseline: request/reply through the same nats-server to an
//! echo responder in a process of its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{Settings, progress};
use crate::error::BenchError;
use crate::load::{self, Phase, Summary};
use crate::nats;

pub(super) async fn echo_baseline(
    settings: &Settings,
    client: &async_nats::Client,
    phase: &impl Fn(usize) -> Phase,
) -> Result<Vec<(usize, Summary)>, BenchError> {
    let me = std::env::current_exe().map_err(|source| BenchError::Spawn {
        what: "the echo responder".into(),
        source,
    })?;
    let mut responder = Command::new(me)
        .args(["echo", "--nats-url", &settings.nats_url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BenchError::Spawn {
            what: "the echo responder".into(),
            source,
        })?;
    let stdout = responder.stdout.take().ok_or_else(|| BenchError::Exited {
        what: "the echo responder".into(),
        log: PathBuf::from("stderr"),
    })?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    if !matches!(ready, Ok(Ok(Some(ref line))) if line == "ready") {
        return Err(BenchError::Exited {
            what: "the echo responder".into(),
            log: PathBuf::from("stderr"),
        });
    }
    let payload = nats::echo_payload();
    let metered: Vec<u32> = responder.id().into_iter().collect();
    let mut results = Vec::new();
    for &concurrency in &settings.concurrency {
        let client = client.clone();
        let payload = payload.clone();
        let summary = load::closed_loop(phase(concurrency), &metered, move |_, _| {
            let client = client.clone();
            let payload = payload.clone();
            async move { nats::call(&client, nats::ECHO_SUBJECT, payload).await }
        })
        .await;
        progress(&format!("echo × {concurrency}"), &summary);
        results.push((concurrency, summary));
    }
    let _ = responder.start_kill();
    let _ = responder.wait().await;
    Ok(results)
}
