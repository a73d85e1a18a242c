//! The `beaker serve` processes under test: started, timed to `ready`,
//! watched through their own /metrics and /proc, and stopped gracefully.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::error::BenchError;

/// How long a host may take to become ready, and to stop.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start one host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub beaker: PathBuf,
    pub nats_url: String,
    pub database_url: String,
    pub rules: PathBuf,
    /// Extra `beaker serve` arguments: the service configuration under test.
    pub extra_args: Vec<String>,
    /// Where its log goes.
    pub log: PathBuf,
}

/// A running host.
#[derive(Debug)]
pub struct Host {
    child: Child,
    pid: u32,
    /// From spawning the process to its `ready` log line.
    pub start_to_ready: Duration,
    /// Where its /metrics answers.
    pub metrics_addr: String,
    pub log: PathBuf,
    logger: tokio::task::JoinHandle<()>,
}

/// What the host's histograms had summed up at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Histograms {
    /// `beaker_rules_call_duration_seconds_sum`, every series.
    pub rules_seconds: f64,
    /// `messaging_process_duration_seconds_sum`, every series.
    pub request_seconds: f64,
    /// `messaging_process_duration_seconds_count`, every series.
    pub requests: f64,
}

impl Histograms {
    /// Parses the Prometheus text format.
    pub fn parse(text: &str) -> Self {
        let mut sums = Histograms::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            match &line[..name_end] {
                "beaker_rules_call_duration_seconds_sum" => sums.rules_seconds += value,
                "messaging_process_duration_seconds_sum" => sums.request_seconds += value,
                "messaging_process_duration_seconds_count" => sums.requests += value,
                _ => {}
            }
        }
        sums
    }

    /// The rules' share of request time between two snapshots.
    pub fn rules_share_since(&self, earlier: &Histograms) -> Option<f64> {
        let request = self.request_seconds - earlier.request_seconds;
        (request > 0.0).then(|| (self.rules_seconds - earlier.rules_seconds) / request)
    }
}

impl Host {
    /// Starts `beaker serve` with a cleared environment (so that nothing
    /// set in the caller's shell changes the configuration under test) and
    /// waits for its `ready` line.
    pub async fn start(config: &HostConfig) -> Result<Host, BenchError> {
        let what = format!("beaker serve {}", config.extra_args.join(" "));
        let mut command = Command::new(&config.beaker);
        command
            .arg("serve")
            .arg("--rules")
            .arg(&config.rules)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(&config.extra_args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NATS_URL", &config.nats_url)
            .env("DATABASE_URL", &config.database_url)
            .env("BEAKER_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let log_file = tokio::fs::File::create(&config.log)
            .await
            .map_err(|source| BenchError::Write {
                path: config.log.clone(),
                source,
            })?;
        let started = Instant::now();
        let mut child = command.spawn().map_err(|source| BenchError::Spawn {
            what: what.clone(),
            source,
        })?;
        let pid = child.id().ok_or_else(|| BenchError::Exited {
            what: what.clone(),
            log: config.log.clone(),
        })?;
        let stderr = child.stderr.take().ok_or_else(|| BenchError::Exited {
            what: what.clone(),
            log: config.log.clone(),
        })?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let logger = tokio::spawn(follow_log(stderr, log_file, ready_tx));
        let ready = tokio::select! {
            ready = ready_rx => ready.ok(),
            _ = child.wait() => None,
            _ = tokio::time::sleep(READY_TIMEOUT) => {
                return Err(BenchError::NotReady {
                    what,
                    seconds: READY_TIMEOUT.as_secs(),
                    log: config.log.clone(),
                });
            }
        };
        let Some((ready_at, metrics_addr)) = ready else {
            return Err(BenchError::Exited {
                what,
                log: config.log.clone(),
            });
        };
        let metrics_addr = metrics_addr.ok_or_else(|| {
            BenchError::Metrics(format!(
                "{what} logged no metrics address; see {}",
                config.log.display()
            ))
        })?;
        Ok(Host {
            child,
            pid,
            start_to_ready: ready_at - started,
            metrics_addr,
            log: config.log.clone(),
            logger,
        })
    }

    /// The host's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Result<u64, BenchError> {
        let path = PathBuf::from(format!("/proc/{}/status", self.pid));
        let status = std::fs::read_to_string(&path).map_err(|source| BenchError::Read {
            path: path.clone(),
            source,
        })?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .ok_or_else(|| BenchError::Metrics(format!("no VmHWM in {}", path.display())))
    }

    /// A snapshot of the host's own histograms.
    pub async fn histograms(&self, http: &reqwest::Client) -> Result<Histograms, BenchError> {
        let url = format!("http://{}/metrics", self.metrics_addr);
        let response = http
            .get(&url)
            .send()
            .await
            .map_err(|e| BenchError::Metrics(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(BenchError::Metrics(format!("{url}: {}", response.status())));
        }
        let text = response
            .text()
            .await
            .map_err(|e| BenchError::Metrics(format!("{url}: {e}")))?;
        Ok(Histograms::parse(&text))
    }

    /// SIGTERM, then waits for the graceful shutdown to finish.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        let what = format!("beaker (pid {})", self.pid);
        let pid = i32::try_from(self.pid).map_err(|e| BenchError::Stop {
            what: what.clone(),
            message: e.to_string(),
        })?;
        kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|e| BenchError::Stop {
            what: what.clone(),
            message: e.to_string(),
        })?;
        let status = tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .map_err(|_| BenchError::Stop {
                what: what.clone(),
                message: format!("still running {} s after SIGTERM", STOP_TIMEOUT.as_secs()),
            })?
            .map_err(|e| BenchError::Stop {
                what: what.clone(),
                message: e.to_string(),
            })?;
        let _ = (&mut self.logger).await;
        if status.success() {
            Ok(())
        } else {
            Err(BenchError::Stop {
                what,
                message: format!("{status}; see {}", self.log.display()),
            })
        }
    }
}

/// Copies the host's log to its file; reports the moment of the `ready`
/// line and the metrics address logged before it.
async fn follow_log(
    stderr: tokio::process::ChildStderr,
    mut file: tokio::fs::File,
    ready: oneshot::Sender<(Instant, Option<String>)>,
) {
    let mut ready = Some(ready);
    let mut metrics_addr = None;
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if ready.is_some()
            && let Ok(entry) = serde_json::from_str::<Value>(&line)
        {
            let message = entry["message"].as_str().unwrap_or_default();
            if message.starts_with("metrics and health on") {
                metrics_addr = entry["addr"].as_str().map(str::to_string);
            }
            if message == "ready"
                && let Some(ready) = ready.take()
            {
                let _ = ready.send((Instant::now(), metrics_addr.take()));
            }
        }
        if file.write_all(line.as_bytes()).await.is_err() || file.write_all(b"\n").await.is_err() {
            break;
        }
    }
    let _ = file.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_series_of_the_two_histograms() {
        let text = "\
# HELP beaker_rules_call_duration_seconds one rules decision
# TYPE beaker_rules_call_duration_seconds histogram
beaker_rules_call_duration_seconds_bucket{rules_name=\"a\",le=\"0.001\"} 3
beaker_rules_call_duration_seconds_sum{rules_name=\"a\"} 0.25
beaker_rules_call_duration_seconds_sum{rules_name=\"b\"} 0.5
beaker_rules_call_duration_seconds_count{rules_name=\"a\"} 3
messaging_process_duration_seconds_sum{messaging_destination_name=\"stock.add\"} 10
messaging_process_duration_seconds_sum{messaging_destination_name=\"stock.get\",error_type=\"x\"} 5
messaging_process_duration_seconds_count{messaging_destination_name=\"stock.add\"} 1000
beaker_requests_total{endpoint=\"add\"} 7
";
        let parsed = Histograms::parse(text);
        assert_eq!(
            parsed,
            Histograms {
                rules_seconds: 0.75,
                request_seconds: 15.0,
                requests: 1000.0
            }
        );
        let later = Histograms {
            rules_seconds: 1.75,
            request_seconds: 65.0,
            requests: 2000.0,
        };
        assert_eq!(later.rules_share_since(&parsed), Some(0.02));
        assert_eq!(parsed.rules_share_since(&parsed), None);
    }
}
