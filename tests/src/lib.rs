//! The end-to-end harness: every test gets its own `nats-server` (with
//! JetStream, on a free port), its own fresh Postgres database, and the real
//! `beaker` binary serving against them, so tests run in parallel and never
//! see each other's traffic.
//!
//! Readiness is signalled, never slept for: nats-server says "Server is
//! ready" and beaker logs a `ready` line, and the harness waits for each.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod campaign;
pub mod faults;
pub mod otlp;
pub mod proxy;
pub mod secure;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

/// How long any process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// No HTTP exchange in a test may take longer than this: a hung gateway
/// fails the test instead of stalling the run.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `beaker` binary built in the same profile as this test.
pub fn beaker_bin() -> PathBuf {
    if let Ok(path) = std::env::var("BEAKER_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test binary> → target/<profile>/beaker
    let bin = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("beaker")))
        .unwrap_or_else(|| workspace_root().join("target/release/beaker"));
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| refuse_stale_binary(&bin));
    bin
}

/// `cargo nextest run` rebuilds the tests but not the `beaker` binary they
/// start (`make test` builds both): fail loudly rather than test old code.
fn refuse_stale_binary(bin: &Path) {
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                if meta.is_dir() {
                    newest(&entry.path())
                } else {
                    meta.modified().ok()
                }
            })
            .max()
    }
    let root = workspace_root();
    let sources = ["host/src", "migrations", "schemas", "wit"]
        .iter()
        .filter_map(|dir| newest(&root.join(dir)))
        .max();
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    if let (Some(sources), Some(built)) = (sources, built) {
        assert!(
            built >= sources,
            "{} is older than the host's sources: run `make build` (make test does it first)",
            bin.display()
        );
    }
}

/// The default rules component, built by `make build`.
pub fn default_rules() -> PathBuf {
    workspace_root().join("target/wasm32-wasip2/release/beaker_rules.wasm")
}

/// A folder for one test's logs and artefacts: `target/test-output/NAME`.
pub fn output_dir(name: &str) -> PathBuf {
    let dir = workspace_root().join("target/test-output").join(name);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn nats_server_bin() -> PathBuf {
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

/// Waits for a line matching `ready` on a child's output; keeps copying
/// every line to `log` meanwhile and afterwards.
fn watch_output(
    stream: impl std::io::Read + Send + 'static,
    log: PathBuf,
    ready: impl Fn(&str) -> bool + Send + 'static,
) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .ok();
        let mut signalled = false;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if !signalled && ready(&line) {
                signalled = true;
                let _ = tx.send(());
            }
        }
    });
    rx
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
        let port = free_port()?;
        let store_dir = tempfile::tempdir()?;
        let log = output_dir(name).join("nats-server.log");
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
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

/// The server that holds the test databases.
pub fn admin_url() -> String {
    std::env::var("BEAKER_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh database, dropped when the test ends.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn create() -> Result<Self> {
        let name = format!("beaker_test_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url())
            .await
            .context("cannot reach the test Postgres (set BEAKER_TEST_ADMIN_URL)")?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        admin.close().await;
        let base = admin_url();
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => bail!("admin URL {base} has no database part"),
        };
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await?;
        Ok(Self { name, url, pool })
    }

    /// A product's level, or None when it has no row.
    pub async fn level(&self, sku: &str) -> Result<Option<i32>> {
        Ok(
            sqlx::query_scalar("SELECT stock_level FROM inventory WHERE product_sku = $1")
                .bind(sku)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Locks a product's row from another session, as a long transaction
    /// would, until the returned transaction is dropped or ended.
    pub async fn lock_row(&self, sku: &str) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT stock_level FROM inventory WHERE product_sku = $1 FOR UPDATE")
            .bind(sku)
            .fetch_one(&mut *transaction)
            .await?;
        Ok(transaction)
    }

    /// Whether some statement of a `beaker` host waits for a row lock.
    pub async fn host_waits_for_a_lock(&self) -> Result<bool> {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'beaker' \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(waiting > 0)
    }

    /// Σ(level_after − level_before) over a product's ledger.
    pub async fn ledger_sum(&self, sku: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(SUM(level_after - level_before), 0)::bigint \
             FROM stock_movements WHERE product_sku = $1",
        )
        .bind(sku)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn count(&self, table: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop is synchronous; do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url())
                    .await
                {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A running `beaker serve`.
#[derive(Debug)]
pub struct Beaker {
    child: Option<Child>,
    pub log: PathBuf,
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
        }
    }

    /// The command, ready to spawn (stderr piped, environment cleared).
    fn command(&self) -> Result<Command> {
        let bin = beaker_bin();
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
                .env("BEAKER_METRICS_ADDR", "127.0.0.1:0");
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
        let dir = output_dir(&config.name);
        let log = dir.join(format!(
            "beaker-{}-{}.log",
            config.command,
            uuid::Uuid::new_v4().simple()
        ));
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
        })
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

/// A reply as a client sees it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub raw: Bytes,
    pub body: Value,
    /// `Nats-Service-Error-Code`, if present.
    pub code: Option<u16>,
    /// `Nats-Service-Error`, if present.
    pub error: Option<String>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.body["ok"] == true && self.code.is_none()
    }

    /// The level reported by a successful reply.
    pub fn level(&self) -> Option<i64> {
        self.body["quantity"].as_i64()
    }
}

/// Sends one request and returns the reply.
pub async fn call(
    client: &async_nats::Client,
    subject: &str,
    payload: impl Into<Bytes>,
) -> Result<Answer> {
    let message = client
        .request(subject.to_string(), payload.into())
        .await
        .with_context(|| format!("request on {subject}"))?;
    Ok(answer_from(message))
}

pub fn answer_from(message: async_nats::Message) -> Answer {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.to_string())
    };
    let code = header("Nats-Service-Error-Code").and_then(|c| c.parse().ok());
    let error = header("Nats-Service-Error");
    let body = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
    Answer {
        raw: message.payload.clone(),
        body,
        code,
        error,
    }
}

/// A whole test environment: NATS, a database, one beaker, a client.
#[derive(Debug)]
pub struct TestEnv {
    pub name: String,
    pub nats: NatsServer,
    pub db: TestDb,
    pub beaker: Beaker,
    pub client: async_nats::Client,
}

impl TestEnv {
    pub async fn start(name: &str) -> Result<Self> {
        Self::start_with(name, |c| c).await
    }

    /// Starts with a configuration adjusted by `adjust`.
    pub async fn start_with(
        name: &str,
        adjust: impl FnOnce(BeakerConfig) -> BeakerConfig,
    ) -> Result<Self> {
        // Logs of earlier runs of this test would only confuse.
        let _ = std::fs::remove_dir_all(output_dir(name));
        let nats = NatsServer::start(name)?;
        let db = TestDb::create().await?;
        let config = adjust(BeakerConfig::new(name, &nats, &db));
        let beaker = Beaker::start(&config)?;
        let client = nats.client().await?;
        Ok(Self {
            name: name.to_string(),
            nats,
            db,
            beaker,
            client,
        })
    }

    pub async fn call(&self, subject: &str, payload: impl Into<Bytes>) -> Result<Answer> {
        call(&self.client, subject, payload).await
    }

    pub async fn add(&self, sku: &str, quantity: i64) -> Result<Answer> {
        self.call(
            "stock.add",
            serde_json::json!({"product-sku": sku, "quantity": quantity}).to_string(),
        )
        .await
    }

    pub async fn remove(&self, sku: &str, quantity: i64) -> Result<Answer> {
        self.call(
            "stock.remove",
            serde_json::json!({"product-sku": sku, "quantity": quantity}).to_string(),
        )
        .await
    }

    pub async fn get(&self, sku: &str) -> Result<Answer> {
        self.call(
            "stock.get",
            serde_json::json!({"product-sku": sku}).to_string(),
        )
        .await
    }

    /// Starts with `beaker serve --gateway` (token [`GATEWAY_TOKEN`]).
    pub async fn start_with_gateway(name: &str) -> Result<Self> {
        Self::start_with(name, BeakerConfig::with_gateway).await
    }

    /// An HTTP client for the gateway inside this environment's beaker.
    pub fn http(&self) -> Result<Http> {
        Ok(Http::new(&self.beaker.gateway_url()?, GATEWAY_TOKEN))
    }
}

/// An HTTP caller of a gateway, with a token.
#[derive(Debug, Clone)]
pub struct Http {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

/// An HTTP response, read to its end.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl HttpReply {
    async fn read(response: reqwest::Response) -> Result<Self> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The gateway's own error reason (`x-nats-api-gateway-error`).
    pub fn gateway_error(&self) -> Option<String> {
        self.header("x-nats-api-gateway-error")
    }

    /// A raw (not enveloped) reply as a NATS client sees it: the body and
    /// the service's error headers, taken from the `NatsH-` headers.
    pub fn answer(&self) -> Answer {
        Answer {
            raw: self.body.clone(),
            body: self.json(),
            code: self
                .header("NatsH-Nats-Service-Error-Code")
                .and_then(|c| c.parse().ok()),
            error: self.header("NatsH-Nats-Service-Error"),
        }
    }
}

impl Http {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            client: reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// The URL of a subject: `{base}/v1/nats/subjects/{subject}`.
    pub fn subject_url(&self, subject: &str) -> String {
        format!("{}/v1/nats/subjects/{subject}", self.base)
    }

    /// A request builder with the bearer token.
    pub fn authorized(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header("Authorization", format!("Bearer {}", self.token))
    }

    /// Sends a built request and reads the whole response.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<HttpReply> {
        HttpReply::read(request.send().await?).await
    }

    /// `POST` a request on a subject, as a gateway caller does.
    pub async fn request(
        &self,
        subject: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<HttpReply> {
        self.send(
            self.authorized(reqwest::Method::POST, &self.subject_url(subject))
                .body(body),
        )
        .await
    }

    /// `GET` any path of the gateway, without a token.
    pub async fn get_path(&self, path: &str) -> Result<HttpReply> {
        HttpReply::read(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await?,
        )
        .await
    }

    /// Opens an event stream (`GET` on a subject) with the token in the
    /// header; the subscription is in place once this returns.
    pub async fn subscribe(&self, subject: &str) -> Result<EventStream> {
        let response = self
            .authorized(reqwest::Method::GET, &self.subject_url(subject))
            .send()
            .await?;
        EventStream::from_response(response)
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// A server-sent event stream being read.
pub struct EventStream {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: String,
    pub content_type: Option<String>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// Wraps a response, failing unless it is a 200 event stream.
    pub fn from_response(response: reqwest::Response) -> Result<Self> {
        let status = response.status();
        if !status.is_success() {
            bail!(
                "event stream refused with {status}: {:?}",
                response.headers().get("x-nats-api-gateway-error")
            );
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Self {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            content_type,
        })
    }

    /// The next event (comments skipped), or None when the stream ended.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Option<SseEvent>> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.take_event() {
                return Ok(Some(event));
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => bail!("no event within {timeout:?}"),
                Ok(None) => return Ok(None),
                Ok(Some(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk?)),
            }
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    event = value.trim_start().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            // A block of comments only (keep-alives) is not an event.
            if !data.is_empty() {
                return Some(SseEvent {
                    event,
                    data: data.join("\n"),
                });
            }
        }
    }
}

/// Validators compiled straight from the files in `schemas/`, independent
/// of the host's own copy, to check what callers receive.
pub struct Contract {
    validators: std::collections::HashMap<String, jsonschema::Validator>,
}

impl Contract {
    pub fn load() -> Result<Self> {
        let dir = workspace_root().join("schemas");
        let mut documents = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("odd file name"))?
                .to_string();
            let value: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            documents.push((name, value));
        }
        let registry = jsonschema::Registry::new()
            .extend(documents.iter().map(|(_, v)| {
                (
                    v["$id"].as_str().unwrap_or_default().to_string(),
                    jsonschema::Resource::from_contents(v.clone()),
                )
            }))?
            .prepare()?;
        let mut validators = std::collections::HashMap::new();
        for (name, value) in &documents {
            let validator = jsonschema::options()
                .with_registry(&registry)
                .build(value)
                .map_err(|e| anyhow!("{name}: {e}"))?;
            validators.insert(name.clone(), validator);
        }
        Ok(Self { validators })
    }

    /// Panics with the reason when `value` does not match schema `name`.
    pub fn assert_valid(&self, name: &str, value: &Value) {
        let validator = self
            .validators
            .get(name)
            .unwrap_or_else(|| panic!("no schema {name}"));
        if let Some(error) = validator.iter_errors(value).next() {
            panic!("{value} does not match {name}: {error}");
        }
    }
}

/// One event as it sits in the JetStream stream.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub sequence: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub headers: async_nats::HeaderMap,
    pub payload: Value,
}

/// The default stream's name.
pub const EVENTS_STREAM: &str = "BEAKER_EVENTS";

/// Every message in a stream, in order.
pub async fn stream_events(client: &async_nats::Client, stream: &str) -> Result<Vec<StreamEvent>> {
    let js = async_nats::jetstream::new(client.clone());
    let mut handle = js.get_stream(stream).await?;
    let state = handle.info().await?.state.clone();
    let mut events = Vec::new();
    if state.messages == 0 {
        return Ok(events);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = handle.get_raw_message(sequence).await?;
        let msg_id = message.headers.get("Nats-Msg-Id").map(|v| v.to_string());
        events.push(StreamEvent {
            sequence,
            subject: message.subject.to_string(),
            msg_id,
            headers: message.headers.clone(),
            payload: serde_json::from_slice(&message.payload).unwrap_or(Value::Null),
        });
    }
    Ok(events)
}

impl TestDb {
    /// Outbox rows not yet published.
    pub async fn pending_events(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Waits until every committed event has been published (the relay's
    /// readiness signal is the outbox itself), or fails after `timeout`.
    pub async fn wait_outbox_drained(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.pending_events().await? == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} events still pending after {timeout:?}",
                    self.pending_events().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The msg_ids of every outbox row, published or not.
    pub async fn outbox_ids(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT msg_id::text FROM outbox ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

impl TestEnv {
    /// Starts another `beaker serve` on this environment's NATS and database.
    pub fn start_another(
        &self,
        adjust: impl FnOnce(BeakerConfig) -> BeakerConfig,
    ) -> Result<Beaker> {
        let config = adjust(BeakerConfig::new(&self.name, &self.nats, &self.db));
        Beaker::start(&config)
    }

    /// Every event in the default stream, after the outbox has drained.
    pub async fn published_events(&self) -> Result<Vec<StreamEvent>> {
        self.db.wait_outbox_drained(Duration::from_secs(30)).await?;
        stream_events(&self.client, EVENTS_STREAM).await
    }
}

/// Sends a request carrying headers.
pub async fn call_with_headers(
    client: &async_nats::Client,
    subject: &str,
    headers: &[(&str, &str)],
    payload: impl Into<Bytes>,
) -> Result<Answer> {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, *value);
    }
    let message = client
        .request_with_headers(subject.to_string(), map, payload.into())
        .await
        .with_context(|| format!("request on {subject}"))?;
    Ok(answer_from(message))
}

/// A component built by `make build` (`target/wasm32-wasip2/release/NAME.wasm`).
pub fn wasm(name: &str) -> PathBuf {
    workspace_root().join(format!("target/wasm32-wasip2/release/{name}.wasm"))
}

/// Hex SHA-256 of a file, computed here rather than trusted from the host.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Copies `from` over `to` atomically (write aside, then rename), as a
/// deploy script or a build would.
pub fn replace_file(from: &Path, to: &Path) -> Result<()> {
    let aside = to.with_extension("partial");
    std::fs::copy(from, &aside)?;
    std::fs::rename(&aside, to)?;
    Ok(())
}

/// Every running instance's `$SRV.INFO`, collected for `window`.
pub async fn service_infos(client: &async_nats::Client, window: Duration) -> Result<Vec<Value>> {
    use futures::StreamExt;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply("$SRV.INFO.beaker", inbox, Bytes::new())
        .await?;
    let deadline = tokio::time::Instant::now() + window;
    let mut infos = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
        infos.push(serde_json::from_slice(&message.payload)?);
    }
    Ok(infos)
}

/// Returns once the server has processed everything this client sent
/// before the call, subscriptions included.
///
/// `Client::flush` only writes the buffer to the socket; a request another
/// connection sends right after may reach the server first and find no
/// subscriber. A message published to a fresh inbox comes back only after
/// the server has read every earlier command on this connection, in order.
pub async fn server_roundtrip(client: &async_nats::Client) -> Result<()> {
    use futures::StreamExt;
    let inbox = client.new_inbox();
    let mut probe = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, Bytes::new()).await?;
    tokio::time::timeout(Duration::from_secs(30), probe.next())
        .await
        .context("the server did not echo a message within 30 s")?
        .context("the probe subscription ended")?;
    Ok(())
}

/// Polls `probe` until it returns true, or fails after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `count` instances report `key` = `value` in their metadata.
pub async fn wait_for_metadata(
    client: &async_nats::Client,
    count: usize,
    key: &str,
    value: &str,
) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let infos = service_infos(client, Duration::from_millis(150)).await?;
        if infos.len() == count && infos.iter().all(|i| i["metadata"][key] == value) {
            return Ok(infos);
        }
        if Instant::now() > deadline {
            bail!(
                "timed out waiting for {count} instance(s) with {key}={value}; last seen: {infos:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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

/// Every sample of a Prometheus text exposition, by series
/// (`name{labels}`). Strict enough to catch a broken exposition: every line
/// is a comment or `name{labels} value`.
pub fn parse_prometheus(text: &str) -> Result<std::collections::HashMap<String, f64>> {
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("not a sample: {line:?}"))?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("not a number in {line:?}"))?;
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            anyhow::ensure!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
        samples.insert(series.to_string(), value);
    }
    Ok(samples)
}

/// One scrape of a running beaker's `/metrics`.
pub async fn scrape_metrics(beaker: &Beaker) -> Result<std::collections::HashMap<String, f64>> {
    let url = beaker.metrics_url().context("metrics address in the log")?;
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    parse_prometheus(&text)
}

/// The sum over the series of metric `name` that carry every given label
/// value (other labels, such as the OpenTelemetry scope, may vary).
pub fn metric_sum(
    samples: &std::collections::HashMap<String, f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.strip_prefix(name).is_some_and(|rest| {
                (rest.is_empty() || rest.starts_with('{'))
                    && labels
                        .iter()
                        .all(|(label, value)| rest.contains(&format!("{label}=\"{value}\"")))
            })
        })
        .map(|(_, value)| *value)
        .sum()
}
