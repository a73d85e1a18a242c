//! The rules component, where it comes from, and its sandbox.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{ConfigError, at_least};
use crate::rules::{EngineOptions, SandboxLimits};
use crate::startup::RulesSettings;

/// Where the default rules component lands after `make build`.
pub const DEFAULT_RULES_PATH: &str = "target/wasm32-wasip2/release/beaker_rules.wasm";

/// The rules component and its sandbox.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rules")]
pub struct RulesArgs {
    /// Path to the rules component (.wasm).
    #[arg(long = "rules", env = "BEAKER_RULES", default_value = DEFAULT_RULES_PATH, value_name = "FILE")]
    pub path: PathBuf,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Swap to the rules file whenever it changes.
    #[arg(long = "rules-watch", env = "BEAKER_RULES_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,
    /// How often the rules file is checked for changes (at least 10ms).
    #[arg(long = "rules-watch-interval", env = "BEAKER_RULES_WATCH_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub watch_interval: Duration,
    /// NATS Object Store bucket the rules are deployed through (empty: none).
    #[arg(
        long = "rules-bucket",
        env = "BEAKER_RULES_BUCKET",
        default_value = "beaker-rules"
    )]
    pub bucket: String,
    #[command(flatten)]
    pub bucket_replicas: BucketReplicasArgs,
    /// How often the rules bucket is read for a new deploy (at least 50ms):
    /// a deploy reaches every instance within this interval.
    #[arg(
        long = "rules-bucket-poll",
        env = "BEAKER_RULES_BUCKET_POLL",
        default_value = "1s",
        value_parser = humantime::parse_duration
    )]
    pub bucket_poll: Duration,
}

/// Replicas of the rules bucket, for whoever creates it first (a host or
/// `beaker rules deploy`).
#[derive(Debug, Clone, Args)]
pub struct BucketReplicasArgs {
    /// Replicas of the rules bucket when it is created (1 on a single
    /// server; 3 on a cluster). An existing bucket is left as it is.
    #[arg(
        id = "rules_bucket_replicas",
        long = "rules-bucket-replicas",
        env = "BEAKER_RULES_BUCKET_REPLICAS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(1..=5)
    )]
    pub replicas: u8,
}

impl RulesArgs {
    /// The rules settings of a host that takes at most `max_in_flight`
    /// requests at once (each holds one sandboxed instance).
    pub fn settings(&self, max_in_flight: u32) -> Result<RulesSettings, ConfigError> {
        let watch = match self.watch {
            true => Some(at_least(
                "BEAKER_RULES_WATCH_INTERVAL",
                self.watch_interval,
                Duration::from_millis(10),
            )?),
            false => None,
        };
        Ok(RulesSettings {
            path: self.path.clone(),
            watch,
            bucket: Some(self.bucket.trim().to_string()).filter(|b| !b.is_empty()),
            bucket_replicas: usize::from(self.bucket_replicas.replicas),
            bucket_poll: at_least(
                "BEAKER_RULES_BUCKET_POLL",
                self.bucket_poll,
                Duration::from_millis(50),
            )?,
            sandbox: self.sandbox.limits(max_in_flight),
            engine: self.sandbox.engine_options(),
        })
    }
}

/// The rules sandbox alone, for commands that run rules offline.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sandbox")]
pub struct SandboxArgs {
    /// Memory cap of one rules instance, in MiB.
    #[arg(
        long = "rules-memory-mib",
        env = "BEAKER_RULES_MEMORY_MIB",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub memory_mib: u32,
    /// Deadline of one rules call, in milliseconds.
    #[arg(
        long = "rules-deadline-ms",
        env = "BEAKER_RULES_DEADLINE_MS",
        default_value_t = 50,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub deadline_ms: u64,
    /// Where compiled rules components are kept between runs, keyed by
    /// their content and the compiler's settings, so that a host starts
    /// and swaps without compiling a component it has seen (default
    /// $XDG_CACHE_HOME/beaker or ~/.cache/beaker; empty: no cache).
    #[arg(
        long = "rules-cache-dir",
        env = "BEAKER_RULES_CACHE_DIR",
        value_name = "DIR"
    )]
    pub cache_dir: Option<PathBuf>,
    /// How much of a rules instance's memory is zeroed in place when the
    /// instance ends, in KiB, rather than given back to the kernel (0: all
    /// given back; costs more CPU per request, less resident memory).
    #[arg(
        long = "rules-keep-resident-kib",
        env = "BEAKER_RULES_KEEP_RESIDENT_KIB",
        default_value_t = (crate::rules::DEFAULT_KEEP_RESIDENT >> 10) as u32,
        value_parser = clap::value_parser!(u32).range(0..=1_048_576)
    )]
    pub keep_resident_kib: u32,
}

impl SandboxArgs {
    /// How the rules engine is built: the cache directory resolved.
    pub fn engine_options(&self) -> EngineOptions {
        let cache_dir = match &self.cache_dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(dir.clone()),
            None => std::env::var_os("XDG_CACHE_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .filter(|d| !d.is_empty())
                        .map(|home| PathBuf::from(home).join(".cache"))
                })
                .map(|base| base.join("beaker")),
        };
        EngineOptions {
            cache_dir,
            keep_resident: usize::try_from(self.keep_resident_kib)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 10),
            ..EngineOptions::default()
        }
    }

    /// The sandbox of `max_in_flight` requests at once, and a few more
    /// instances for the shadow and for candidates being smoke-tested.
    pub fn limits(&self, max_in_flight: u32) -> SandboxLimits {
        SandboxLimits {
            max_memory_bytes: usize::try_from(self.memory_mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
            deadline: Duration::from_millis(self.deadline_ms),
            max_instances: max_in_flight.saturating_add(8),
        }
    }
}
