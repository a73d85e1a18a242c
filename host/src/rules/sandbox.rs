//! One sandboxed instance's state: a WASI context that grants nothing
//! (no arguments, no environment, a closed stdin, stdout and stderr that
//! discard), its resource table, and the memory cap that notices when it
//! is hit, so that the trap it causes is reported as a memory violation.

use std::time::Duration;

use wasmtime::component::{HasData, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::{ClosedInputStream, SinkOutputStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the epoch advances; deadlines are counted in these ticks.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(1);

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

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 8 << 20,
            deadline: Duration::from_millis(50),
            max_instances: 256,
        }
    }
}

/// The state of one sandboxed instance.
pub(super) struct Sandbox {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryCap,
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
pub(super) struct MemoryCap {
    pub(super) max_bytes: usize,
    pub(super) hit: bool,
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

pub(super) fn cli_view(sandbox: &mut Sandbox) -> wasmtime_wasi::cli::WasiCliCtxView<'_> {
    wasmtime_wasi::cli::WasiCliView::cli(sandbox)
}

/// Gives the WASI `io` interfaces their resource table.
pub(super) struct WasiIo;

impl HasData for WasiIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// The epoch deadline of one call, in ticks.
pub(super) fn deadline_ticks(limits: SandboxLimits) -> u64 {
    let ticks = (limits.deadline.as_micros() / EPOCH_TICK.as_micros()).max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// A fresh store for one instance: nothing granted, memory capped, the
/// deadline set.
pub(super) fn new_store(engine: &Engine, limits: SandboxLimits) -> Store<Sandbox> {
    let wasi = WasiCtxBuilder::new()
        .stdin(ClosedInputStream)
        .stdout(SinkOutputStream)
        .stderr(SinkOutputStream)
        .build();
    let mut store = Store::new(
        engine,
        Sandbox {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                max_bytes: limits.max_memory_bytes,
                hit: false,
            },
        },
    );
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(deadline_ticks(limits));
    store.epoch_deadline_trap();
    store
}
