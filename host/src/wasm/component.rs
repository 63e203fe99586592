//! Components on disk: read them (with clear errors), compile them, and
//! cache what was compiled, keyed by the engine's compatibility hash and the
//! component's content hash, so a warm start does not compile.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
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
    if let Some(cached) = &cached
        && let Err(error) = store_cached(&component, cached)
    {
        tracing::warn!("failed to cache the compiled {what}: {error:#}");
    }
    Ok(component)
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

/// The default cache directory: `$XDG_CACHE_HOME/switchyard` or
/// `~/.cache/switchyard`; `None` when neither is known.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("switchyard"))
}
