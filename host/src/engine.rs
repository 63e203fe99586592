//! The wasmtime side, done once at `prepare`: engine, compile (or load
//! cached) components, link, pre-instantiate.
//!
//! One [`Engine`] with the pooling allocator and epoch interruption, one
//! epoch ticker thread for it, and a [`Linker`] with all of WASIp2 plus
//! `wasi:http`. Compiled components are cached on disk, keyed by the engine's
//! compatibility hash and the component's content hash, so a warm start does
//! not compile.

use crate::bindings::AppPre;
use crate::instance::Host;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::error::Context;
use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime::{Result, bail};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

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

/// A linker with all of WASIp2 and `wasi:http`.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("failed to link WASI")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .context("failed to link wasi:http")?;
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
    if !is_component(&bytes) {
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

/// The header of a component (not a core module): magic, version 0xd, layer 1.
fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") && bytes.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00])
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

/// Pre-instantiate a page app, checking that it is one.
pub(crate) fn pre_instantiate_app(
    linker: &Linker<Host>,
    component: &Component,
    path: &Path,
) -> Result<AppPre<Host>> {
    let imports_renderer = component
        .component_type()
        .imports(linker.engine())
        .any(|(name, _)| name.starts_with("switchyard:server/renderer@"));
    if imports_renderer {
        bail!(
            "`{}` is a router, not an app: serve an app and plug the router in with `--router {}`",
            path.display(),
            path.display()
        );
    }
    let instance_pre = linker.instantiate_pre(component).with_context(|| {
        format!(
            "failed to link `{}`: it imports something Switchyard does not provide",
            path.display()
        )
    })?;
    AppPre::new(instance_pre).with_context(|| {
        format!(
            "`{}` is not a Switchyard app: it must export `wasi:http/incoming-handler@0.2.12` and \
             `switchyard:server/renderer@0.1.0` (target the `switchyard:server/app` world)",
            path.display()
        )
    })
}

/// Pre-instantiate the handler side: a plain app, or a composition of
/// routers and the app. Either way a `wasi:http/proxy` component.
pub(crate) fn pre_instantiate_proxy(
    linker: &Linker<Host>,
    component: &Component,
    what: &str,
) -> Result<ProxyPre<Host>> {
    let instance_pre = linker.instantiate_pre(component).with_context(|| {
        format!("failed to link {what}: it imports something Switchyard does not provide")
    })?;
    ProxyPre::new(instance_pre)
        .with_context(|| format!("{what} does not export `wasi:http/incoming-handler@0.2.12`"))
}

/// The default cache directory: `$XDG_CACHE_HOME/switchyard` or
/// `~/.cache/switchyard`; `None` when neither is known.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("switchyard"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_modules_are_not_components() {
        assert!(is_component(b"\0asm\x0d\0\x01\0rest"));
        assert!(!is_component(b"\0asm\x01\0\0\0"));
        assert!(!is_component(b"hello"));
    }
}
