//! The process-wide engine: compiling a component once (or finding it in
//! the on-disk cache), checking it against the world, smoke-testing it,
//! and the fresh sandboxed instance every call gets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::Linker;
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};
use wasmtime_wasi::cli::WasiCli;

use super::bindings::{self, RulesPre};
use super::call::{CallError, ReusedInstance, call_decide, classify};
use super::digest::Digest;
use super::sandbox::{EPOCH_TICK, Sandbox, SandboxLimits, WasiIo, cli_view, new_store};
use super::{Decision, Rejection, Request};

/// Where instances get their memory, tables and stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Slots reserved once, when the engine is made, and reused: a fresh
    /// instance per request then costs microseconds. The service uses this.
    #[default]
    Pooling,
    /// New mappings for every instance. Kept so that the micro-benchmarks
    /// can show what pooling saves.
    OnDemand,
}

/// How the engine is built, beyond the sandbox's limits.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub allocation: Allocation,
    /// Where compiled components are kept between runs, keyed by their
    /// bytes and the engine's settings (wasmtime checks both), so that a
    /// component seen before loads in milliseconds instead of being
    /// compiled again (seconds for the JavaScript and Python rules).
    /// `None`: compile every time.
    pub cache_dir: Option<std::path::PathBuf>,
    /// How much of an instance's linear memory is reset with `memset`
    /// when the instance ends, rather than returned to the kernel with
    /// `madvise` (see [`DEFAULT_KEEP_RESIDENT`]).
    pub keep_resident: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            allocation: Allocation::default(),
            cache_dir: None,
            keep_resident: DEFAULT_KEEP_RESIDENT,
        }
    }
}

/// Every request gets a fresh instance; when it ends, its memory must be
/// zeroed for the next. `madvise` does that by dropping the pages, which on
/// a multi-threaded process costs a TLB shootdown on every other core and
/// page faults on the next use; resetting the pages the instance touched
/// with `memset` costs neither. With the kernel's PAGEMAP_SCAN (Linux 6.7
/// and later, detected at start) only the pages actually touched are
/// reset, so keeping a whole small component's memory resident is cheap;
/// on older kernels the first `keep_resident` bytes are reset whether
/// touched or not.
pub const DEFAULT_KEEP_RESIDENT: usize = 1 << 20;

/// Why a component could not become the rules.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read rules component {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    #[error("component does not fit the beaker:inventory/rules world: {0}")]
    Incompatible(String),
    #[error("component failed its smoke test: {0}")]
    SmokeTest(String),
    #[error("cannot set up the rules engine: {0}")]
    Engine(String),
}

/// The process-wide engine and linker, shared by every loaded component.
pub struct RulesEngine {
    pub(super) engine: Engine,
    pub(super) linker: Linker<Sandbox>,
    pub(super) limits: SandboxLimits,
    ticker_stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for RulesEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulesEngine")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Drop for RulesEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A loaded, checked rules component, ready to serve requests.
pub struct Rules {
    pub(super) pre: RulesPre<Sandbox>,
    /// The rules' own name and version, from `describe`.
    pub name: String,
    pub version: String,
    /// The SHA-256 of the component's bytes.
    pub digest: Digest,
    /// When this component was loaded.
    pub loaded_at: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl RulesEngine {
    /// Creates the engine (with the pooling allocator), the linker and the
    /// epoch ticker.
    pub fn new(limits: SandboxLimits) -> Result<Self, LoadError> {
        Self::with_options(limits, EngineOptions::default())
    }

    /// As [`RulesEngine::new`], with the given allocation strategy.
    pub fn with_allocation(
        limits: SandboxLimits,
        allocation: Allocation,
    ) -> Result<Self, LoadError> {
        Self::with_options(
            limits,
            EngineOptions {
                allocation,
                ..EngineOptions::default()
            },
        )
    }

    /// As [`RulesEngine::new`], with the given options.
    pub fn with_options(limits: SandboxLimits, options: EngineOptions) -> Result<Self, LoadError> {
        let allocation = options.allocation;
        let engine_error = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances.saturating_mul(8))
            .total_memories(limits.max_instances.saturating_mul(2))
            .total_tables(limits.max_instances.saturating_mul(4))
            .total_stacks(limits.max_instances)
            .max_memory_size(limits.max_memory_bytes)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_core_instances_per_component(64)
            .linear_memory_keep_resident(options.keep_resident)
            .table_keep_resident(options.keep_resident.min(64 << 10))
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Reserve only what the cap allows: explicit bounds checks are
            // cheap for calls this small, and a pool of hundreds of 4 GiB
            // reservations is not.
            .memory_reservation(limits.max_memory_bytes as u64)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(0)
            .allocation_strategy(match allocation {
                Allocation::Pooling => InstanceAllocationStrategy::Pooling(pool),
                Allocation::OnDemand => InstanceAllocationStrategy::OnDemand,
            });
        if let Some(dir) = options.cache_dir {
            // A cache that cannot be used costs compile time, nothing else.
            let mut cache = CacheConfig::new();
            cache.with_directory(&dir);
            match Cache::new(cache) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                Err(e) => tracing::warn!(
                    dir = %dir.display(),
                    error = %format!("{e:#}"),
                    "cannot use the rules cache directory; components will be compiled every time"
                ),
            }
        }
        let engine = Engine::new(&config).map_err(engine_error)?;

        let mut linker = Linker::<Sandbox>::new(&engine);
        Self::link_wasi(&mut linker).map_err(engine_error)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop = ticker_stop.clone();
        std::thread::Builder::new()
            .name("rules-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| LoadError::Engine(e.to_string()))?;

        Ok(Self {
            engine,
            linker,
            limits,
            ticker_stop,
        })
    }

    /// Links the WASI interfaces a Rust component imports whatever it
    /// does, and nothing else (see the module documentation).
    fn link_wasi(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
        use wasmtime_wasi::p2::bindings::cli;
        use wasmtime_wasi_io::bindings::wasi::io;
        io::error::add_to_linker::<Sandbox, WasiIo>(linker, |s| &mut s.table)?;
        io::poll::add_to_linker::<Sandbox, WasiIo>(linker, |s| &mut s.table)?;
        io::streams::add_to_linker::<Sandbox, WasiIo>(linker, |s| &mut s.table)?;
        let view = cli_view;
        cli::exit::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        cli::environment::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        cli::stdin::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        cli::stdout::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        cli::stderr::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        cli::terminal_input::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        cli::terminal_output::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        cli::terminal_stdin::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        cli::terminal_stdout::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        cli::terminal_stderr::add_to_linker::<Sandbox, WasiCli>(linker, view)?;
        Ok(())
    }

    /// The sandbox settings this engine enforces.
    pub fn limits(&self) -> SandboxLimits {
        self.limits
    }

    /// A fresh store for one instance: nothing granted, capped, timed.
    pub(super) fn store(&self) -> Store<Sandbox> {
        new_store(&self.engine, self.limits)
    }

    /// A fresh instance of the rules in a store of its own; the store's
    /// deadline counts from here, instantiation included.
    async fn fresh(&self, rules: &Rules) -> Result<(Store<Sandbox>, bindings::Rules), CallError> {
        let mut store = self.store();
        let instance = rules
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(&store, e, self.limits))?;
        Ok((store, instance))
    }

    /// Instantiates the rules once, for several calls. The service never
    /// does this: each request gets a fresh instance, so that nothing one
    /// call leaves in the instance's memory can reach the next. This exists
    /// so that the micro-benchmarks can measure what that isolation costs.
    pub async fn instantiate(&self, rules: &Rules) -> Result<ReusedInstance, CallError> {
        let (store, instance) = self.fresh(rules).await?;
        Ok(ReusedInstance {
            store,
            instance,
            limits: self.limits,
        })
    }

    /// Asks the rules to decide one request, in a fresh sandboxed instance,
    /// and checks that the answer is one the host can apply.
    pub async fn decide(
        &self,
        rules: &Rules,
        request: &Request,
        current: Option<u32>,
    ) -> Result<Result<Decision, Rejection>, CallError> {
        let (mut store, instance) = self.fresh(rules).await?;
        call_decide(&mut store, &instance, self.limits, request, current).await
    }
}
