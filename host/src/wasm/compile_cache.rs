//! The compile cache: components compiled once are kept on disk, keyed by
//! the engine's compatibility hash and the component's SHA-256, so a warm
//! start does not compile.
//!
//! What is read back is machine code that will run, so nothing in the
//! cache is trusted until it is checked: the directory must be the user's
//! own and writable by no one else (it is created `0700`; another is
//! refused, naming it), and each artifact is deserialized only if its bytes
//! match the SHA-256 written beside it (else it is compiled again). Writes
//! go to a unique temporary file, are synced, then renamed into place. The
//! cache is bounded ([`MAX_BYTES`]): past it, the oldest artifacts go.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::{Engine, Result, bail};

/// The most the cache may hold; the oldest artifacts are removed past it.
pub(crate) const MAX_BYTES: u64 = 1 << 30;

/// A [`Hasher`] that feeds SHA-256: a digest that does not depend on the
/// Rust release, for what offers only a [`Hash`] impl.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
}

/// A checked cache directory.
pub(crate) struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// The cache at `dir`, created `0700` when missing; refused when it is
    /// not a directory the user owns and no one else may write.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| {
                    format!("failed to create the compile cache `{}`", dir.display())
                })?;
        }
        let metadata = std::fs::symlink_metadata(dir)
            .with_context(|| format!("failed to read the compile cache `{}`", dir.display()))?;
        let fix = format!(
            "use a directory of your own (`chmod 700 {}`), or start with `--no-cache`",
            dir.display()
        );
        if !metadata.is_dir() {
            bail!(
                "the compile cache `{}` is not a directory: {fix}",
                dir.display()
            );
        }
        if metadata.uid() != current_uid() {
            bail!(
                "the compile cache `{}` belongs to another user (uid {}): {fix}",
                dir.display(),
                metadata.uid()
            );
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            bail!(
                "the compile cache `{}` may be written by other users (mode {mode:o}): {fix}",
                dir.display()
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// `DIR/<engine hash>-<component sha256>.cwasm`. Both are SHA-256
    /// (the engine's of what its compatibility hash feeds a hasher), so a
    /// name means the same under any Rust release, unlike `DefaultHasher`,
    /// whose algorithm may change between releases.
    pub(crate) fn artifact(&self, engine: &Engine, component: &[u8]) -> PathBuf {
        let mut engine_hash = Sha256Hasher(Sha256::new());
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let engine_hash = hex(&engine_hash.0.finalize()[..8]);
        let content = hex(&Sha256::digest(component));
        self.dir.join(format!("{engine_hash}-{content}.cwasm"))
    }

    /// The component compiled at `artifact`, if it is there and its bytes
    /// match the digest beside it.
    pub(crate) fn load(&self, engine: &Engine, artifact: &Path) -> Option<Component> {
        let bytes = std::fs::read(artifact).ok()?;
        let expected = std::fs::read_to_string(digest_path(artifact)).ok()?;
        if hex(&Sha256::digest(&bytes)) != expected.trim() {
            tracing::warn!(
                "ignoring the cached `{}`: it does not match its digest; compiling again",
                artifact.display()
            );
            return None;
        }
        // SAFETY: these bytes are what `store` wrote, from a component this
        // engine configuration compiled: the directory is the user's alone,
        // the bytes match the SHA-256 written beside them, the name holds
        // the engine's compatibility hash, and wasmtime checks the header.
        #[expect(
            unsafe_code,
            reason = "loading our own, verified, precompiled artifact"
        )]
        let loaded = unsafe { Component::deserialize(engine, &bytes) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!("ignoring the cached `{}`: {error:#}", artifact.display());
                None
            }
        }
    }

    /// Keep `component` at `artifact`, with its digest; then trim the cache.
    pub(crate) fn store(&self, component: &Component, artifact: &Path) -> Result<()> {
        let bytes = component.serialize()?;
        let digest = hex(&Sha256::digest(&bytes));
        self.write_atomically(&digest_path(artifact), digest.as_bytes())?;
        self.write_atomically(artifact, &bytes)?;
        self.evict_oldest(MAX_BYTES);
        Ok(())
    }

    /// A unique temporary file in the cache, synced, then renamed to `path`.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let mut temporary = tempfile::NamedTempFile::new_in(&self.dir)
            .with_context(|| format!("failed to write to `{}`", self.dir.display()))?;
        temporary.write_all(bytes)?;
        temporary.as_file().sync_all()?;
        temporary
            .persist(path)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
        Ok(())
    }

    /// Remove the oldest artifacts (and their digests) until the cache holds
    /// at most `limit` bytes.
    fn evict_oldest(&self, limit: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut artifacts: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let path = entry.path();
                if path.extension()? != "cwasm" {
                    return None;
                }
                let metadata = entry.metadata().ok()?;
                Some((metadata.modified().ok()?, metadata.len(), path))
            })
            .collect();
        let mut total: u64 = artifacts.iter().map(|(_, size, _)| size).sum();
        artifacts.sort();
        for (_, size, path) in artifacts {
            if total <= limit {
                break;
            }
            let _ = std::fs::remove_file(digest_path(&path));
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
            }
        }
    }
}

fn digest_path(artifact: &Path) -> PathBuf {
    artifact.with_extension("cwasm.sha256")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn current_uid() -> u32 {
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    #[expect(unsafe_code, reason = "FFI call to geteuid")]
    unsafe {
        libc::geteuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_others_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        CompileCache::open(&cache).unwrap();
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "created for the user alone");
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = CompileCache::open(&cache).err().unwrap().to_string();
        assert!(
            error.contains("may be written by other users (mode 777)"),
            "{error}"
        );
    }

    #[test]
    fn eviction_removes_the_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        for (name, age) in [("old", 30), ("new", 10)] {
            let path = dir.path().join(format!("{name}.cwasm"));
            std::fs::write(&path, [0u8; 100]).unwrap();
            std::fs::write(digest_path(&path), "x").unwrap();
            let time = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(time)
                .unwrap();
        }
        cache.evict_oldest(150);
        assert!(!dir.path().join("old.cwasm").exists());
        assert!(!dir.path().join("old.cwasm.sha256").exists());
        assert!(dir.path().join("new.cwasm").exists());
    }
}
