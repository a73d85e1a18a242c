//! A private `nats-server` with JetStream, on a free port of loopback:
//! started, killed (an outage), started again on the same port and store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use crate::paths::{free_port, output_dir};
use crate::process::{READY_TIMEOUT, watch_output};

pub fn nats_server_bin() -> PathBuf {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    for candidate in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    PathBuf::from("nats-server")
}

/// A private nats-server with JetStream.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    pub port: u16,
    pub store_dir: tempfile::TempDir,
    extra_args: Vec<String>,
    log: PathBuf,
}

impl NatsServer {
    pub fn start(name: &str) -> Result<Self> {
        Self::start_with(name, &[])
    }

    /// Starts with extra command-line arguments (e.g. `-c FILE`).
    pub fn start_with(name: &str, extra_args: &[&str]) -> Result<Self> {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        Self::start_on(name, free_port()?, "nats-server.log", extra_args)
    }

    /// Starts on `port`, logging to `log_name` in the test's folder: for a
    /// server whose port others must know beforehand (a cluster's routes).
    pub fn start_on(
        name: &str,
        port: u16,
        log_name: &str,
        extra_args: Vec<String>,
    ) -> Result<Self> {
        let store_dir = tempfile::tempdir()?;
        let log = output_dir(name).join(log_name);
        let child = Self::spawn(port, store_dir.path(), &extra_args, &log)?;
        Ok(Self {
            child,
            port,
            store_dir,
            extra_args,
            log,
        })
    }

    fn spawn(port: u16, store: &Path, extra: &[String], log: &Path) -> Result<Child> {
        let mut child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start nats-server (install it, or set NATS_SERVER_BIN)")?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let ready = watch_output(stderr, log.to_path_buf(), |l| l.contains("Server is ready"));
        if ready.recv_timeout(READY_TIMEOUT).is_err() {
            let _ = child.kill();
            bail!(
                "nats-server on port {port} did not become ready; see {}",
                log.display()
            );
        }
        Ok(child)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): an outage.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same JetStream store.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.child = Self::spawn(
            self.port,
            self.store_dir.path(),
            &self.extra_args,
            &self.log,
        )?;
        Ok(())
    }

    pub async fn client(&self) -> Result<async_nats::Client> {
        Ok(async_nats::connect(self.url()).await?)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
