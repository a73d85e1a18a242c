//! A PostgreSQL cluster of a test's own, in a temporary folder, on a free
//! port of 127.0.0.1: the fault scenarios stop it, crash it and start it
//! again without touching the machine's shared server.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::paths::{free_port, output_dir};

/// How to stop the cluster (`pg_ctl stop -m MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Ends every session (their transactions roll back), then stops.
    Fast,
    /// Stops at once, like a crash; the next start replays the WAL.
    Immediate,
}

impl StopMode {
    fn name(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A PostgreSQL cluster in a temporary folder, listening on a free port of
/// 127.0.0.1 only, so that a test can stop and start it without touching
/// the machine's shared server. Postgres refuses to run as root: then the
/// cluster belongs to, and runs as, the `postgres` user.
#[derive(Debug)]
pub struct LocalPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// uid and gid to run as, when the test runs as root.
    run_as: Option<(u32, u32)>,
    running: bool,
    /// Where the server log is copied when the cluster goes away.
    log_copy: PathBuf,
}

impl LocalPostgres {
    /// Creates the cluster (`initdb`) and starts it.
    pub fn start(name: &str) -> Result<Self> {
        let bin = postgres_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("beaker-pg-").tempdir()?;
        let run_as = if current_uid()? == 0 {
            let uid = id_of("-u")?;
            let gid = id_of("-g")?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .with_context(|| format!("chown {} to postgres", dir.path().display()))?;
            Some((uid, gid))
        } else {
            None
        };
        let mut cluster = Self {
            dir,
            bin,
            port: free_port()?,
            run_as,
            running: false,
            log_copy: output_dir(name).join("postgres.log"),
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        cluster.start_again()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A URL of a database on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server and waits until it accepts connections
    /// (`pg_ctl -w`). `fsync` is off: the faults here end processes, not
    /// the machine, and the page cache outlives a process.
    pub fn start_again(&mut self) -> Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data_dir();
        let log = self.log_path();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "start".as_ref(),
            ],
        )
        .with_context(|| format!("see {}", self.log_path().display()))?;
        self.running = true;
        Ok(())
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self, mode: StopMode) -> Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.name().as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "stop".as_ref(),
            ],
        )?;
        self.running = false;
        Ok(())
    }

    /// A small pool on a database of this cluster.
    pub async fn pool(&self, database: &str) -> Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.url(database))
            .await?)
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output> {
        let mut command = Command::new(self.bin.join(program));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        let output = command
            .output()
            .with_context(|| format!("cannot run {}", self.bin.join(program).display()))?;
        if !output.status.success() {
            bail!(
                "{program} {} failed ({}): {}{}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output)
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop(StopMode::Immediate);
        }
        let _ = std::fs::copy(self.log_path(), &self.log_copy);
        // The TempDir removes the folder.
    }
}

/// The folder of `initdb` and `pg_ctl`: `BEAKER_TEST_PG_BINDIR`, else the
/// newest `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`.
fn postgres_bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("BEAKER_TEST_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    let output = Command::new("pg_config").arg("--bindir").output();
    if let Ok(output) = output
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    bail!(
        "cannot find initdb and pg_ctl (install PostgreSQL's server package, \
         or set BEAKER_TEST_PG_BINDIR)"
    )
}

fn current_uid() -> Result<u32> {
    id(&["-u"])
}

/// The uid (`-u`) or gid (`-g`) of the `postgres` user.
fn id_of(flag: &str) -> Result<u32> {
    id(&[flag, "postgres"]).context(
        "tests run as root, and Postgres refuses root: a `postgres` user must exist to run it",
    )
}

fn id(args: &[&str]) -> Result<u32> {
    let output = Command::new("id").args(args).output()?;
    if !output.status.success() {
        bail!(
            "id {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}
