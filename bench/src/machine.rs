//! What the figures were measured on: they mean little without it.

use crate::error::BenchError;

/// The machine and the versions of the services.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub postgres: String,
    pub nats_server: String,
}

impl Machine {
    /// Reads /proc, asks Postgres for its version and takes the NATS
    /// server's from its INFO.
    pub async fn describe(
        database_url: &str,
        nats: &async_nats::Client,
    ) -> Result<Self, BenchError> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, name)| name.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| format!("Linux {}", k.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        let mut db = crate::sql::connection(database_url).await?;
        let postgres: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut db)
            .await?;
        Ok(Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            memory_gib: memory_kib / (1024.0 * 1024.0),
            kernel,
            postgres: postgres
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            nats_server: nats.server_info().version,
        })
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB memory, {}; PostgreSQL {}, nats-server {} (both on loopback)",
            self.cores, self.cpu, self.memory_gib, self.kernel, self.postgres, self.nats_server
        )
    }
}
