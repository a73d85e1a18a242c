//! How long a rules deploy takes to be active on every instance.
//!
//! Runs `beaker rules deploy FILE` as an operator would, and meanwhile asks
//! `$SRV.INFO.beaker` every few milliseconds until every instance reports
//! the new component's digest in its metadata. Two intervals come out: from
//! starting the command (which first checks the component locally), and
//! from the command's `deployed to bucket` line (the component uploaded
//! and the active pointer written) — the latter is the hosts' part.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use beaker::rules::Digest;
use beaker::service::micro::InstanceInfo;

use crate::error::BenchError;
use crate::nats;

/// How often the instances are asked.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// How long to wait for every instance to switch.
const SWAP_TIMEOUT: Duration = Duration::from_secs(30);
const INFO_SUBJECT: &str = "$SRV.INFO.beaker";

/// What the swap took.
#[derive(Debug, Clone)]
pub struct SwapTiming {
    pub instances: usize,
    /// From starting `beaker rules deploy` to the last instance reporting.
    pub from_command: Duration,
    /// From the command's `deployed to bucket` line to the last instance
    /// reporting.
    pub from_deployed: Option<Duration>,
    /// The command's exit status (0: it saw every instance switch).
    pub command_status: Option<i32>,
}

/// Deploys `component` to the instances serving at `url` (there must be
/// `instances` of them) and times the swap.
pub async fn measure(
    url: &str,
    beaker: &Path,
    component: &Path,
    instances: usize,
    log: PathBuf,
) -> Result<SwapTiming, BenchError> {
    let bytes = tokio::fs::read(component)
        .await
        .map_err(|source| BenchError::Read {
            path: component.to_path_buf(),
            source,
        })?;
    let digest = Digest::of(&bytes).to_string();
    let client = nats::connect(url, "beaker-bench swap").await?;
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| BenchError::Nats(e.to_string()))?;
    let ask = || {
        let client = client.clone();
        let inbox = inbox.clone();
        async move {
            client
                .publish_with_reply(INFO_SUBJECT, inbox, bytes::Bytes::new())
                .await
                .map_err(|e| BenchError::Nats(e.to_string()))
        }
    };

    // Every instance must answer before the deploy starts.
    let mut digests: HashMap<String, String> = HashMap::new();
    let known_by = Instant::now() + Duration::from_secs(10);
    while digests.len() < instances {
        if Instant::now() > known_by {
            return Err(BenchError::Swap(format!(
                "{} of {instances} instances answered {INFO_SUBJECT}",
                digests.len()
            )));
        }
        ask().await?;
        let window = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(window);
        loop {
            tokio::select! {
                Some(answer) = answers.next() => {
                    if let Some((id, now)) = instance_digest(&answer.payload) {
                        digests.insert(id, now);
                    }
                }
                _ = &mut window => break,
            }
        }
    }
    if digests.values().any(|d| *d == digest) {
        return Err(BenchError::Swap(format!(
            "an instance already runs {}",
            component.display()
        )));
    }

    let mut log_file = tokio::fs::File::create(&log)
        .await
        .map_err(|source| BenchError::Write {
            path: log.clone(),
            source,
        })?;
    let started = Instant::now();
    let mut deploy = Command::new(beaker)
        .args(["rules", "deploy"])
        .arg(component)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NATS_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BenchError::Spawn {
            what: "beaker rules deploy".into(),
            source,
        })?;
    let stderr = deploy.stderr.take().ok_or_else(|| BenchError::Exited {
        what: "beaker rules deploy".into(),
        log: log.clone(),
    })?;
    let deployed = tokio::spawn(async move {
        let mut deployed_at = None;
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if deployed_at.is_none() && line.contains("deployed to bucket") {
                deployed_at = Some(Instant::now());
            }
            let _ = log_file.write_all(format!("{line}\n").as_bytes()).await;
        }
        let _ = log_file.flush().await;
        deployed_at
    });

    let mut switched: HashMap<String, Instant> = HashMap::new();
    let mut poll = tokio::time::interval(POLL_EVERY);
    let give_up = tokio::time::sleep(SWAP_TIMEOUT);
    tokio::pin!(give_up);
    let all_switched = loop {
        tokio::select! {
            _ = poll.tick() => ask().await?,
            Some(answer) = answers.next() => {
                let now = Instant::now();
                if let Some((id, reported)) = instance_digest(&answer.payload)
                    && reported == digest
                {
                    switched.entry(id).or_insert(now);
                    if switched.len() >= instances {
                        break now;
                    }
                }
            }
            _ = &mut give_up => {
                return Err(BenchError::Swap(format!(
                    "{} of {instances} instances reported the new rules within {} s",
                    switched.len(),
                    SWAP_TIMEOUT.as_secs()
                )));
            }
        }
    };
    let status = tokio::time::timeout(SWAP_TIMEOUT, deploy.wait())
        .await
        .map_err(|_| BenchError::Swap("beaker rules deploy did not finish".into()))?
        .map_err(|e| BenchError::Swap(e.to_string()))?;
    let deployed_at = deployed.await.ok().flatten();
    Ok(SwapTiming {
        instances,
        from_command: all_switched - started,
        from_deployed: deployed_at.map(|at| all_switched.saturating_duration_since(at)),
        command_status: status.code(),
    })
}

/// The instance id and rules digest in a `$SRV.INFO` answer, read with the
/// host's own types.
fn instance_digest(payload: &[u8]) -> Option<(String, String)> {
    let info: InstanceInfo = serde_json::from_slice(payload).ok()?;
    let rules = info.rules().ok()?;
    Some((info.id, rules.digest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_digest_from_an_info_answer() {
        let digest = "ab".repeat(32);
        let answer = format!(
            r#"{{"type":"io.nats.micro.v1.info_response","name":"beaker","id":"abc","version":"0.1.0",
            "metadata":{{"rules_digest":"{digest}","rules_name":"x","rules_version":"1","rules_since":"t"}}}}"#
        );
        assert_eq!(
            instance_digest(answer.as_bytes()),
            Some(("abc".to_string(), digest))
        );
        assert_eq!(instance_digest(b"{}"), None);
        assert_eq!(instance_digest(b"not json"), None);
    }
}
