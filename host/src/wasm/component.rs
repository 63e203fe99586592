//! Components on disk: read them (with clear errors) and compile them,
//! through the compile cache when there is one.

use super::compile_cache::CompileCache;
use crate::metrics::Metrics;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::{Engine, Result, bail};

/// Read the component at `path`, with a clear error when it is missing or
/// is not a component.
pub fn read(path: &Path) -> Result<Vec<u8>> {
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

/// Compile `bytes` (named `what` in messages), from the cache when it can,
/// counting the lookup and the time compiling takes in `metrics`.
pub(crate) fn compile(
    engine: &Engine,
    bytes: &[u8],
    what: &str,
    cache_dir: Option<&Path>,
    metrics: &Metrics,
) -> Result<Component> {
    let cache = cache_dir.map(CompileCache::open).transpose()?;
    let artifact = cache.as_ref().map(|cache| cache.artifact(engine, bytes));
    if let (Some(cache), Some(artifact)) = (&cache, &artifact)
        && let Some(component) = cache.load(engine, artifact)
    {
        metrics.compiled(None);
        return Ok(component);
    }
    // A large component takes a while (a minute or more for some
    // toolchains' output): say what the wait is for.
    if cache.is_some() {
        tracing::info!("compiling {what} (stored in the compile cache for later starts)");
    } else {
        tracing::info!("compiling {what}");
    }
    let started = std::time::Instant::now();
    let component = Component::from_binary(engine, bytes)
        .with_context(|| format!("failed to compile {what}"))?;
    metrics.compiled(Some(started.elapsed()));
    if let (Some(cache), Some(artifact)) = (&cache, &artifact)
        && let Err(error) = cache.store(&component, artifact)
    {
        tracing::warn!("failed to cache the compiled {what}: {error:#}");
    }
    Ok(component)
}

/// The default cache directory: `$XDG_CACHE_HOME/switchyard` or
/// `~/.cache/switchyard`; `None` when neither is known.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("switchyard"))
}
