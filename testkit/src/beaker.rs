//! The real `beaker` binary as a process: configured through its
//! environment, started and waited for until it logs `ready`, signalled,
//! and read through its JSON log.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::database::TestDb;
use crate::nats_server::NatsServer;
use crate::paths::{beaker_bin, default_rules, output_dir};
use crate::process::{READY_TIMEOUT, watch_output};

/// A running `beaker serve`.
#[derive(Debug)]
pub struct Beaker {
    child: Option<Child>,
    pub log: PathBuf,
    /// From spawning the process to its `ready` log line.
    pub start_to_ready: Duration,
}

/// The token the harness gives every gateway it starts.
pub const GATEWAY_TOKEN: &str = "test-gateway-token-7Qm2x";

/// How to start a `beaker serve` (or another long-running command, such
/// as `beaker gateway`).
#[derive(Debug, Clone)]
pub struct BeakerConfig {
    pub name: String,
    /// The subcommand: `serve` unless changed.
    pub command: String,
    pub nats_url: String,
    pub database_url: String,
    pub rules: PathBuf,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// The binary to run; the one built with the tests when `None`.
    pub bin: Option<PathBuf>,
    /// Where the log goes; a fresh file in the test's output folder when
    /// `None`.
    pub log: Option<PathBuf>,
}

impl BeakerConfig {
    pub fn new(name: &str, nats: &NatsServer, db: &TestDb) -> Self {
        Self {
            name: name.to_string(),
            command: "serve".to_string(),
            nats_url: nats.url(),
            database_url: db.url.clone(),
            rules: default_rules(),
            env: Vec::new(),
            args: Vec::new(),
            bin: None,
            log: None,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// `beaker serve --gateway` on a free port, with [`GATEWAY_TOKEN`].
    pub fn with_gateway(self) -> Self {
        self.arg("--gateway")
            .env("BEAKER_GATEWAY_ADDR", "127.0.0.1:0")
            .env("BEAKER_GATEWAY_TOKENS", GATEWAY_TOKEN)
    }

    /// `beaker gateway` on its own, on a free port, against `nats`; no
    /// token unless one is added with [`BeakerConfig::env`].
    pub fn standalone_gateway(name: &str, nats: &NatsServer) -> Self {
        Self {
            name: name.to_string(),
            command: "gateway".to_string(),
            nats_url: nats.url(),
            database_url: String::new(),
            rules: PathBuf::new(),
            env: vec![("BEAKER_GATEWAY_ADDR".into(), "127.0.0.1:0".into())],
            args: Vec::new(),
            bin: None,
            log: None,
        }
    }

    /// The command, ready to spawn (stderr piped, environment cleared).
    fn command(&self) -> Result<Command> {
        let bin = self.bin.clone().unwrap_or_else(beaker_bin);
        if !bin.exists() {
            bail!("{} is missing: run `make build` first", bin.display());
        }
        let mut command = Command::new(&bin);
        command
            .arg(&self.command)
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NATS_URL", &self.nats_url)
            .env("BEAKER_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,beaker=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if self.command == "serve" {
            command
                .env("DATABASE_URL", &self.database_url)
                .env("BEAKER_RULES", &self.rules)
                // Any free port: tests run side by side.
                .env("BEAKER_METRICS_ADDR", "127.0.0.1:0")
                // Deploys reach the instances within 200 ms, not 1 s: the
                // tests that deploy wait less.
                .env("BEAKER_RULES_BUCKET_POLL", "200ms");
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        Ok(command)
    }

    /// Runs the command to its end (it must stop by itself, e.g. because
    /// its configuration is refused) and returns its status and stderr.
    pub fn run_to_exit(&self, timeout: Duration) -> Result<(ExitStatus, String)> {
        let mut child = self.command()?.spawn().context("cannot start beaker")?;
        let mut stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("beaker {} did not exit within {timeout:?}", self.command);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = reader.join().map_err(|_| anyhow!("stderr reader failed"))?;
        Ok((status, text))
    }
}

impl Beaker {
    /// Starts `beaker serve` (or the configured command) and waits for its
    /// `ready` log line.
    pub fn start(config: &BeakerConfig) -> Result<Self> {
        if config.command == "serve" && !config.rules.exists() {
            bail!(
                "{} is missing: run `make build` first",
                config.rules.display()
            );
        }
        let log = match &config.log {
            Some(log) => log.clone(),
            None => output_dir(&config.name).join(format!(
                "beaker-{}-{}.log",
                config.command,
                uuid::Uuid::new_v4().simple()
            )),
        };
        let started = Instant::now();
        let mut child = config.command()?.spawn().context("cannot start beaker")?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let ready = watch_output(stderr, log.clone(), |line| {
            serde_json::from_str::<Value>(line)
                .map(|v| v["message"] == "ready")
                .unwrap_or(false)
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready.recv_timeout(Duration::from_millis(50)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "beaker exited with {status} before it was ready:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("beaker did not become ready; see {}", log.display());
            }
        }
        Ok(Self {
            child: Some(child),
            log,
            start_to_ready: started.elapsed(),
        })
    }

    /// The process's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        let pid = self.pid().ok_or_else(|| anyhow!("not running"))?;
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
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
            .ok_or_else(|| anyhow!("no VmHWM in {path}"))
    }

    /// The metrics and health endpoint's base URL, from the log line that
    /// announces it (`BEAKER_METRICS_ADDR` is port 0 in tests).
    pub fn metrics_url(&self) -> Option<String> {
        self.log_lines().iter().find_map(|l| {
            l["addr"]
                .as_str()
                .filter(|_| {
                    l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("metrics and health"))
                })
                .map(|a| format!("http://{a}"))
        })
    }

    /// Whether the process is still running (it has not exited or been
    /// stopped).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal and waits (at most `timeout`) for the process to exit.
    pub fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
        timeout: Duration,
    ) -> Result<ExitStatus> {
        let mut child = self.child.take().ok_or_else(|| anyhow!("not running"))?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        nix::sys::signal::kill(pid, signal)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("beaker did not exit within {timeout:?} of {signal}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The gateway's base URL (`http://127.0.0.1:PORT`), from its
    /// `gateway listening` log line, which precedes `ready`.
    pub fn gateway_url(&self) -> Result<String> {
        self.log_lines()
            .iter()
            .find(|line| line["message"] == "gateway listening")
            .and_then(|line| line["addr"].as_str().map(|addr| format!("http://{addr}")))
            .ok_or_else(|| anyhow!("no gateway address in {}", self.log.display()))
    }

    /// Waits for a log line after the first `after` lines that satisfies
    /// `matches`, and returns it with its index: the host's own word that
    /// something happened (a reconnection, a swap) rather than a sleep.
    pub async fn wait_for_log(
        &self,
        after: usize,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<(usize, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.log_lines();
            if let Some((index, line)) = lines
                .into_iter()
                .enumerate()
                .skip(after)
                .find(|(_, line)| matches(line))
            {
                return Ok((index, line));
            }
            if Instant::now() > deadline {
                bail!(
                    "no matching log line within {timeout:?}; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every warning and error logged so far: a clean run has none.
    pub fn complaints(&self) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
            .collect()
    }

    /// The whole log as text.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every JSON log line written so far.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Beaker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the `beaker` CLI with NATS pointed at `nats_url`.
pub fn beaker_cli(nats_url: &str, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(beaker_bin())
        .args(args)
        .env("NATS_URL", nats_url)
        .env("BEAKER_LOG_FORMAT", "json")
        .output()?)
}

/// What a run of the CLI said: its exit status, stdout and stderr as text.
#[derive(Debug, Clone)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// `(code, stdout, stderr)`, for a test that names them itself.
    pub fn into_parts(self) -> (Option<i32>, String, String) {
        (self.code, self.stdout, self.stderr)
    }
}

/// [`beaker_cli`], its output as text: what the tests of a command read.
pub fn beaker_cli_run(nats_url: &str, args: &[&str]) -> Result<CliRun> {
    let output = beaker_cli(nats_url, args)?;
    Ok(CliRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
