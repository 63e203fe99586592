//! The wasmtime side, done once at `prepare`: engine, compile (or load
//! cached) components, link, pre-instantiate.
//!
//! One [`Engine`] with the pooling allocator and epoch interruption, one
//! epoch ticker thread for it, and a [`Linker`] with all of WASIp2 plus
//! `wasi:http`. Compiled components are cached on disk, keyed by the engine's
//! compatibility hash and the component's content hash, so a warm start does
//! not compile.

use crate::instance::Host;
use crate::kind::AppKind;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::error::Context;
use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime::{Result, bail};

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
    /// which makes every p2 instance slower: on only for p3 apps.
    pub(crate) concurrency: bool,
}

/// The engine, with its epoch ticker running for as long as it lives.
pub(crate) fn engine(settings: &EngineSettings) -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    let instances = settings.max_instances;
    pool.total_component_instances(instances)
        .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances * 2)
        .total_tables(instances * TABLES_PER_COMPONENT)
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
    start_epoch_ticker(engine.weak());
    Ok(engine)
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: EngineWeak) {
    std::thread::Builder::new()
        .name("switchyard-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("failed to start the epoch ticker thread");
}

/// A linker with all of WASIp2 and `wasi:http@0.2`, and for a p3 app also
/// all of WASIp3 and `wasi:http@0.3` (Rust std still imports p2 there).
pub(crate) fn linker(engine: &Engine, kind: AppKind) -> Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("failed to link WASI")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .context("failed to link wasi:http")?;
    if kind.needs_concurrency() {
        wasmtime_wasi::p3::add_to_linker(&mut linker).context("failed to link WASIp3")?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)
            .context("failed to link wasi:http@0.3")?;
    }
    Ok(linker)
}

/// Read the component at `path`, with a clear error when it is missing or
/// is not a component.
pub fn read_component(path: &Path) -> Result<Vec<u8>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "component `{}` not found: build it with `just build-guest`",
                path.display()
            )
        }
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read `{}`", path.display()));
        }
    };
    if !wasmparser::Parser::is_component(&bytes) {
        bail!(
            "`{}` is not a WebAssembly component: build it for the `wasm32-wasip2` target (see `just build-guest`)",
            path.display()
        );
    }
    Ok(bytes)
}

/// Compile `bytes` (named `what` in messages), from the cache when it can.
pub(crate) fn compile(
    engine: &Engine,
    bytes: &[u8],
    what: &str,
    cache_dir: Option<&Path>,
) -> Result<Component> {
    let cached = cache_dir.map(|dir| cache_path(engine, dir, bytes));
    if let Some(cached) = &cached
        && let Some(component) = load_cached(engine, cached)
    {
        return Ok(component);
    }
    let component = Component::from_binary(engine, bytes)
        .with_context(|| format!("failed to compile {what}"))?;
    release_freed_memory();
    if let Some(cached) = &cached
        && let Err(error) = store_cached(&component, cached)
    {
        tracing::warn!("failed to cache the compiled {what}: {error:#}");
    }
    Ok(component)
}

/// Give the memory compiling freed back to the system: glibc keeps freed
/// memory in its (per-thread) arenas, and compiling a component frees tens
/// of megabytes that would otherwise count in the server's RSS for good.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap pages to the kernel; it
    // is thread-safe and touches no live allocation.
    #[expect(unsafe_code, reason = "FFI call to glibc's malloc_trim")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `DIR/<engine hash>-<content sha256>.cwasm`.
fn cache_path(engine: &Engine, dir: &Path, bytes: &[u8]) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let content: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join(format!("{:016x}-{content}.cwasm", hasher.finish()))
}

fn load_cached(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the file was written by `store_cached` from a component this
    // engine configuration compiled; its name holds the engine's
    // compatibility hash, and wasmtime checks the header again.
    #[expect(unsafe_code, reason = "loading our own precompiled artifact")]
    let loaded = unsafe { Component::deserialize_file(engine, path) };
    match loaded {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!("ignoring the cached `{}`: {error:#}", path.display());
            None
        }
    }
}

/// Write atomically: a temporary file in the same directory, then rename.
fn store_cached(component: &Component, path: &Path) -> Result<()> {
    let dir = path.parent().context("cache path has no directory")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let bytes = component.serialize()?;
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("failed to write `{}`", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(())
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

/// The default cache directory: `$XDG_CACHE_HOME/switchyard` or
/// `~/.cache/switchyard`; `None` when neither is known.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("switchyard"))
}
