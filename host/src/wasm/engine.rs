//! The engine and the linker, made once at `prepare`.
//!
//! One [`Engine`] with the pooling allocator and epoch interruption, one
//! epoch ticker thread for it, and a [`Linker`] with all of WASIp2 plus
//! `wasi:http` (and WASIp3 for p3 apps and middleware).

use super::store::Host;
use std::time::Duration;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::error::Context;
use wasmtime::{
    Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig, Result,
};

/// How often the epoch advances: the granularity at which a running guest
/// yields to the runtime (and so how late a timeout can fire).
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances per component instance the pool makes room for: a router
/// + app composition holds the core instances of both (a counter only).
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// Tables per component instance (each slot is reserved address space).
const TABLES_PER_COMPONENT: u32 = 8;

/// What the engine is sized for.
#[derive(Debug, Clone)]
pub(crate) struct EngineSettings {
    /// The most component instances alive at once (requests in flight).
    pub(crate) max_instances: u32,
    /// The most linear memory one instance may have, in bytes.
    pub(crate) max_memory: u64,
    /// The component model's concurrency support, which WASIp3 needs and
    /// which makes every p2 instance slower: on only for p3 apps and
    /// chains with middleware.
    pub(crate) concurrency: bool,
}

/// The engine, with its epoch ticker running for as long as it lives.
pub(crate) fn engine(settings: &EngineSettings) -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    let instances = settings.max_instances;
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(instances)
        .max_memory_size(usize::try_from(settings.max_memory).unwrap_or(usize::MAX))
        // Keep the first pages of each memory and table mapped between
        // instances: resetting them with madvise on every request is the
        // largest per-request cost otherwise.
        .linear_memory_keep_resident(256 << 10)
        .table_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .concurrency_support(settings.concurrency)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).context("failed to create the wasmtime engine")?;
    start_epoch_ticker(engine.weak())?;
    Ok(engine)
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: EngineWeak) -> Result<()> {
    std::thread::Builder::new()
        .name("switchyard-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("failed to start the epoch ticker thread")?;
    Ok(())
}

/// A linker with all of WASIp2, `wasi:http@0.2` and the data interfaces
/// (`wasi:keyvalue`, `wasi:config`, `revalidate`), and with `p3` (a p3 app,
/// or middleware) also all of WASIp3 and `wasi:http@0.3` (Rust std still
/// imports p2 there).
pub(crate) fn linker(engine: &Engine, p3: bool) -> Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("failed to link WASI")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .context("failed to link wasi:http")?;
    crate::data::add_to_linker(&mut linker).context("failed to link the data interfaces")?;
    if p3 {
        wasmtime_wasi::p3::add_to_linker(&mut linker).context("failed to link WASIp3")?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)
            .context("failed to link wasi:http@0.3")?;
    }
    Ok(linker)
}

/// Link `component` (named `what` in messages) with the host's imports.
pub(crate) fn link(
    linker: &Linker<Host>,
    component: &Component,
    what: &str,
) -> Result<InstancePre<Host>> {
    linker.instantiate_pre(component).with_context(|| {
        format!("failed to link {what}: it imports something Switchyard does not provide")
    })
}
