//! The `beaker serve` processes under test: the test kit's [`Beaker`],
//! started from the binary and with the configuration under test, timed to
//! `ready`, and read through their own `/metrics` and `/proc`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use beaker_testkit::{Beaker, BeakerConfig, metric_sum, parse_prometheus};
use nix::sys::signal::Signal;

use crate::error::BenchError;

/// How long a host may take to stop.
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
    beaker: Beaker,
    metrics_url: String,
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
    /// Reads the two histograms from a `/metrics` text.
    pub fn parse(text: &str) -> Result<Self, BenchError> {
        let samples = parse_prometheus(text).map_err(|e| BenchError::Metrics(e.to_string()))?;
        Ok(Histograms {
            rules_seconds: metric_sum(&samples, "beaker_rules_call_duration_seconds_sum", &[]),
            request_seconds: metric_sum(&samples, "messaging_process_duration_seconds_sum", &[]),
            requests: metric_sum(&samples, "messaging_process_duration_seconds_count", &[]),
        })
    }

    /// The rules' share of request time between two snapshots.
    pub fn rules_share_since(&self, earlier: &Histograms) -> Option<f64> {
        let request = self.request_seconds - earlier.request_seconds;
        (request > 0.0).then(|| (self.rules_seconds - earlier.rules_seconds) / request)
    }
}

impl Host {
    /// Starts `beaker serve` with a cleared environment (nothing set in the
    /// caller's shell changes the configuration under test) and waits for
    /// its `ready` line.
    pub async fn start(config: &HostConfig) -> Result<Host, BenchError> {
        let what = format!("beaker serve {}", config.extra_args.join(" "));
        let kit = BeakerConfig {
            name: "bench".into(),
            command: "serve".into(),
            nats_url: config.nats_url.clone(),
            database_url: config.database_url.clone(),
            rules: config.rules.clone(),
            // The host's default log level: the figures are for the service
            // as it runs, not as it debugs.
            env: vec![("RUST_LOG".into(), "info".into())],
            args: config.extra_args.clone(),
            bin: Some(config.beaker.clone()),
            log: Some(config.log.clone()),
        };
        let beaker = tokio::task::spawn_blocking(move || Beaker::start(&kit))
            .await
            .map_err(|e| BenchError::Harness(e.to_string()))?
            .map_err(|e| BenchError::Harness(format!("{what}: {e:#}")))?;
        let metrics_url = beaker.metrics_url().ok_or_else(|| {
            BenchError::Metrics(format!(
                "{what} logged no metrics address; see {}",
                config.log.display()
            ))
        })?;
        Ok(Host {
            beaker,
            metrics_url,
        })
    }

    /// From spawning the process to its `ready` log line.
    pub fn start_to_ready(&self) -> Duration {
        self.beaker.start_to_ready
    }

    pub fn log(&self) -> &Path {
        &self.beaker.log
    }

    /// The host's peak resident memory so far (`VmHWM`), in bytes.
    /// The host's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.beaker.pid()
    }

    pub fn peak_rss(&self) -> Result<u64, BenchError> {
        self.beaker
            .peak_rss()
            .map_err(|e| BenchError::Metrics(e.to_string()))
    }

    /// A snapshot of the host's own histograms.
    pub async fn histograms(&self, http: &reqwest::Client) -> Result<Histograms, BenchError> {
        let url = format!("{}/metrics", self.metrics_url);
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
        Histograms::parse(&text)
    }

    /// SIGTERM, then waits for the graceful shutdown to finish.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        let log = self.beaker.log.clone();
        let status = tokio::task::spawn_blocking(move || {
            self.beaker.signal_and_wait(Signal::SIGTERM, STOP_TIMEOUT)
        })
        .await
        .map_err(|e| BenchError::Harness(e.to_string()))?
        .map_err(|e| BenchError::Stop {
            what: "beaker".into(),
            message: format!("{e:#}"),
        })?;
        match status.success() {
            true => Ok(()),
            false => Err(BenchError::Stop {
                what: "beaker".into(),
                message: format!("{status}; see {}", log.display()),
            }),
        }
    }
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
        let parsed = Histograms::parse(text).expect("valid exposition");
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
