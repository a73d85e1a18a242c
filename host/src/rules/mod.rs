//! The rules runtime: loads a rules component, checks it against the WIT
//! world, and runs one sandboxed call per request.
//!
//! One [`Engine`] (with the pooling allocator and epoch interruption) lives
//! for the whole process. Loading a component compiles it once into
//! [`Rules`], which holds a pre-linked [`RulesPre`]; every request then gets
//! a fresh instance in its own [`Store`], capped in memory and bounded in
//! time, so that no state, and no failure, carries from one request to the
//! next.
//!
//! What a component may use: the `beaker:inventory/rules` world imports
//! nothing, but a component built with Rust's standard library for
//! `wasm32-wasip2` imports the WASI `cli` and `io` interfaces whatever it
//! does. The host links exactly those, backed by a context that grants
//! nothing: no arguments, no environment variables, a closed stdin, and
//! stdout/stderr that discard what is written. Filesystem, sockets, clocks
//! and randomness are not linked at all, so a component that imports them
//! is refused when it is loaded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::cli::WasiCli;
use wasmtime_wasi::p2::pipe::{ClosedInputStream, SinkOutputStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bounds::BOUNDS;
use crate::schema::shorten;

pub mod bucket;
pub mod cases;
pub mod state;
pub mod watch;

mod bindings {
    wasmtime::component::bindgen!({
        world: "rules",
        path: "../wit",
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

use bindings::RulesPre;
pub use bindings::beaker::inventory::types::{
    Decision, Event, Limits, LowStock, Operation, Rejection, Request, RulesInfo, Stock,
};

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// The most events one decision may ask for.
const MAX_EVENTS_PER_DECISION: usize = 16;
/// The longest rules name or version we accept.
const MAX_NAME_LEN: usize = 64;

/// Sandbox settings, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct SandboxLimits {
    /// The most linear memory one instance may have, in bytes.
    pub max_memory_bytes: usize,
    /// How long one call (instantiation included) may run.
    pub deadline: Duration,
    /// How many instances may exist at once (one per request in flight).
    pub max_instances: u32,
}

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
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    pub allocation: Allocation,
    /// Where compiled components are kept between runs, keyed by their
    /// bytes and the engine's settings (wasmtime checks both), so that a
    /// component seen before loads in milliseconds instead of being
    /// compiled again (seconds for the JavaScript and Python rules).
    /// `None`: compile every time.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 8 << 20,
            deadline: Duration::from_millis(50),
            max_instances: 256,
        }
    }
}

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

/// Why one call into the rules failed. Each is the component's fault (or
/// the host's load), never the caller's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the rules exceeded their deadline of {0:?}")]
    Deadline(Duration),
    #[error("the rules exceeded their memory cap of {0} bytes")]
    Memory(usize),
    #[error("the rules trapped: {0}")]
    Trap(String),
    #[error("the rules returned an invalid decision: {0}")]
    Nonsense(String),
    #[error("no rules instance is free: {0}")]
    Exhausted(String),
}

impl CallError {
    /// A label for logs and metrics.
    /// Every value [`CallError::kind`] takes, for metrics that start at 0.
    pub const KINDS: [&'static str; 5] = [
        "deadline",
        "memory",
        "trap",
        "invalid_decision",
        "exhausted",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Deadline(_) => "deadline",
            CallError::Memory(_) => "memory",
            CallError::Trap(_) => "trap",
            CallError::Nonsense(_) => "invalid_decision",
            CallError::Exhausted(_) => "exhausted",
        }
    }
}

/// The process-wide engine and linker, shared by every loaded component.
pub struct RulesEngine {
    engine: Engine,
    linker: Linker<Sandbox>,
    limits: SandboxLimits,
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
    pre: RulesPre<Sandbox>,
    /// The rules' own name and version, from `describe`.
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of the component's bytes.
    pub digest: String,
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

impl Rules {
    /// The first 12 hex digits of the digest, for logs.
    pub fn short_digest(&self) -> &str {
        self.digest.get(..12).unwrap_or(&self.digest)
    }
}

/// The state of one sandboxed instance.
struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and tables, and remembers whether the cap was hit so
/// that the resulting trap is reported as a memory violation.
struct MemoryCap {
    max_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > 100_000 {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }
}

fn cli_view(sandbox: &mut Sandbox) -> wasmtime_wasi::cli::WasiCliCtxView<'_> {
    wasmtime_wasi::cli::WasiCliView::cli(sandbox)
}

/// Gives the WASI `io` interfaces their resource table.
struct WasiIo;

impl HasData for WasiIo {
    type Data<'a> = &'a mut ResourceTable;
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
            .max_core_instances_per_component(64);
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

    /// Reads and loads a component file.
    pub async fn load_file(&self, path: &std::path::Path) -> Result<Rules, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.display().to_string(),
                source,
            })?;
        self.load(&bytes).await
    }

    /// Compiles a component, checks it against the world and smoke-tests
    /// it. Compilation runs on a blocking thread: it can take seconds.
    pub async fn load(&self, bytes: &[u8]) -> Result<Rules, LoadError> {
        // Binary components start with the wasm magic; the text format (WAT,
        // handy for tests) starts with a parenthesis.
        let text = std::str::from_utf8(bytes)
            .map(str::trim_start)
            .unwrap_or("");
        if !bytes.starts_with(b"\0asm") && !text.starts_with('(') {
            return Err(LoadError::Invalid(
                "the file is neither a WebAssembly binary (no \\0asm header) nor WebAssembly text"
                    .into(),
            ));
        }
        let digest = hex(&Sha256::digest(bytes));
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, owned))
            .await
            .map_err(|e| LoadError::Engine(e.to_string()))?
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;
        let pre =
            RulesPre::new(instance_pre).map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;

        let info = self
            .describe(&pre)
            .await
            .map_err(|e| LoadError::SmokeTest(format!("describe failed: {e}")))?;
        check_name("name", &info.name)?;
        check_name("version", &info.version)?;
        let rules = Rules {
            pre,
            name: info.name,
            version: info.version,
            digest,
            loaded_at: chrono::Utc::now(),
        };
        self.smoke_test(&rules).await?;
        Ok(rules)
    }

    async fn describe(&self, pre: &RulesPre<Sandbox>) -> Result<RulesInfo, CallError> {
        let mut store = self.store();
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(&store, e, self.limits))?;
        instance
            .call_describe(&mut store)
            .await
            .map_err(|e| classify(&store, e, self.limits))
    }

    /// A candidate must answer a few ordinary decisions without trapping
    /// and without an invalid decision before it may serve.
    async fn smoke_test(&self, rules: &Rules) -> Result<(), LoadError> {
        let cases = [
            (Operation::Get, None),
            (Operation::Get, Some(5)),
            (Operation::Add(1), None),
            (Operation::Add(3), Some(7)),
            (Operation::Remove(1), None),
            (Operation::Remove(2), Some(5)),
            (Operation::Remove(9), Some(5)),
        ];
        for (operation, current) in cases {
            let request = Request {
                sku: "smoke-test".into(),
                operation,
            };
            if let Err(e) = self.decide(rules, &request, current).await {
                return Err(LoadError::SmokeTest(format!(
                    "{} with stock {}: {e}",
                    describe_operation(operation),
                    current.map_or("none".to_string(), |l| l.to_string())
                )));
            }
        }
        Ok(())
    }

    fn store(&self) -> Store<Sandbox> {
        let wasi = WasiCtxBuilder::new()
            .stdin(ClosedInputStream)
            .stdout(SinkOutputStream)
            .stderr(SinkOutputStream)
            .build();
        let mut store = Store::new(
            &self.engine,
            Sandbox {
                wasi,
                table: ResourceTable::new(),
                limiter: MemoryCap {
                    max_bytes: self.limits.max_memory_bytes,
                    hit: false,
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(deadline_ticks(self.limits));
        store.epoch_deadline_trap();
        store
    }

    /// Instantiates the rules once, for several calls. The service never
    /// does this: each request gets a fresh instance, so that nothing one
    /// call leaves in the instance's memory can reach the next. This exists
    /// so that the micro-benchmarks can measure what that isolation costs.
    pub async fn instantiate(&self, rules: &Rules) -> Result<ReusedInstance, CallError> {
        let mut store = self.store();
        let instance = rules
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(&store, e, self.limits))?;
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
        let mut store = self.store();
        let instance = rules
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(&store, e, self.limits))?;
        call_decide(&mut store, &instance, self.limits, request, current).await
    }
}

/// An instance kept for several calls (see [`RulesEngine::instantiate`]).
pub struct ReusedInstance {
    store: Store<Sandbox>,
    instance: bindings::Rules,
    limits: SandboxLimits,
}

impl std::fmt::Debug for ReusedInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReusedInstance").finish_non_exhaustive()
    }
}

impl ReusedInstance {
    /// Decides one more request on this instance, with a deadline of its own.
    pub async fn decide(
        &mut self,
        request: &Request,
        current: Option<u32>,
    ) -> Result<Result<Decision, Rejection>, CallError> {
        self.store.set_epoch_deadline(deadline_ticks(self.limits));
        call_decide(
            &mut self.store,
            &self.instance,
            self.limits,
            request,
            current,
        )
        .await
    }
}

/// The epoch deadline of one call, in ticks.
fn deadline_ticks(limits: SandboxLimits) -> u64 {
    let ticks = (limits.deadline.as_micros() / EPOCH_TICK.as_micros()).max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// One `decide` call on an instance, its answer checked.
async fn call_decide(
    store: &mut Store<Sandbox>,
    instance: &bindings::Rules,
    limits: SandboxLimits,
    request: &Request,
    current: Option<u32>,
) -> Result<Result<Decision, Rejection>, CallError> {
    let bounds = Limits {
        max_quantity: BOUNDS.max_quantity,
        max_stock_level: BOUNDS.max_stock_level,
    };
    let answer = instance
        .call_decide(
            &mut *store,
            request,
            current.map(|level| Stock { level }),
            bounds,
        )
        .await
        .map_err(|e| classify(store, e, limits))?;
    match answer {
        Ok(decision) => check_decision(request, &decision).map(|()| Ok(decision)),
        Err(rejection) => Ok(Err(tidy_rejection(rejection))),
    }
}

/// Turns a wasmtime error into the violation that caused it.
fn classify(store: &Store<Sandbox>, error: wasmtime::Error, limits: SandboxLimits) -> CallError {
    if store.data().limiter.hit {
        return CallError::Memory(limits.max_memory_bytes);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Deadline(limits.deadline),
        Some(trap) => CallError::Trap(trap.to_string()),
        None => {
            let text = format!("{error:#}");
            if text.contains("maximum concurrent") || text.contains("pooling") {
                CallError::Exhausted(shorten(&text))
            } else {
                CallError::Trap(shorten(&text))
            }
        }
    }
}

/// A decision is applied only if it stays within the bounds and its
/// events describe this very change.
fn check_decision(request: &Request, decision: &Decision) -> Result<(), CallError> {
    if decision.level > BOUNDS.max_stock_level {
        return Err(CallError::Nonsense(format!(
            "level {} is above the maximum stock level {}",
            decision.level, BOUNDS.max_stock_level
        )));
    }
    if matches!(request.operation, Operation::Get) && !decision.events.is_empty() {
        return Err(CallError::Nonsense("a get asked for events".into()));
    }
    if decision.events.len() > MAX_EVENTS_PER_DECISION {
        return Err(CallError::Nonsense(format!(
            "{} events; at most {MAX_EVENTS_PER_DECISION} are allowed",
            decision.events.len()
        )));
    }
    for event in &decision.events {
        match event {
            Event::LowStock(LowStock { sku, level }) => {
                if *sku != request.sku || *level != decision.level {
                    return Err(CallError::Nonsense(
                        "a low-stock event must name the request's product and its new level"
                            .into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Rejection messages reach callers as they are: keep them short and
/// never empty.
fn tidy_rejection(rejection: Rejection) -> Rejection {
    let tidy = |message: String, fallback: &str| {
        let trimmed = message.trim();
        if trimmed.is_empty() {
            fallback.to_string()
        } else {
            shorten(trimmed)
        }
    };
    match rejection {
        Rejection::InvalidRequest(m) => Rejection::InvalidRequest(tidy(m, "invalid request")),
        Rejection::UnknownProduct(m) => Rejection::UnknownProduct(tidy(m, "unknown product")),
        Rejection::RuleViolated(m) => {
            Rejection::RuleViolated(tidy(m, "refused by a business rule"))
        }
    }
}

fn check_name(what: &str, value: &str) -> Result<(), LoadError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(LoadError::SmokeTest(format!(
            "describe returned the {what} {:?}: use 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ + -",
            shorten(value)
        )))
    }
}

/// How an operation reads in messages: `add 3`, `remove 1`, `get`.
pub fn describe_operation(operation: Operation) -> String {
    match operation {
        Operation::Add(n) => format!("add {n}"),
        Operation::Remove(n) => format!("remove {n}"),
        Operation::Get => "get".into(),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
