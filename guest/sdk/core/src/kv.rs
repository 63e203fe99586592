//! Key-value stores the server grants (`[keyvalue.NAME]` in
//! `switchyard.toml`), through the standard `wasi:keyvalue`: an embedded
//! file by default, Redis or Valkey when replicas share it. Values are JSON
//! (serde) or raw bytes; counters are decimal integers, so
//! `get::<u64>` reads what [`Store::increment`] counts.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use switchyard_guest::kv::Store;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Comment { author: String, text: String }
//!
//! # fn main() -> switchyard_guest::Result<()> {
//! let store = Store::open("site")?;
//! let views = store.increment("views:/posts/1", 1)?;
//! store.set("comment:1", &Comment { author: "ana".into(), text: "Hi".into() })?;
//! let comment: Option<Comment> = store.get("comment:1")?;
//! // Append to a list without losing a concurrent writer's append.
//! let tags: Vec<String> = store.update("tags", |tags: Option<Vec<String>>| {
//!     let mut tags = tags.unwrap_or_default();
//!     tags.push("rust".into());
//!     tags
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! `open`, `get`, `set`, `delete`, `increment` and `keys` use
//! `wasi:keyvalue@0.2.0-draft`, which `wasmtime serve -S keyvalue` also
//! serves; [`Store::compare_and_swap`] and [`Store::update`] use draft2's
//! `cas`, which Switchyard serves. A component imports only what it calls.

use crate::bindings::wasi::keyvalue0_2_0_draft::{atomics, batch, store};
use crate::bindings::wasi::keyvalue0_2_0_draft2::{atomics as atomics2, store as store2};
use anyhow::{Context as _, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How many times [`Store::update`] tries before giving up (each try
/// lost to a concurrent writer).
const MAX_UPDATE_TRIES: usize = 64;

/// An open store.
pub struct Store {
    name: String,
    bucket: store::Bucket,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn error(error: store::Error) -> anyhow::Error {
    match error {
        store::Error::NoSuchStore => anyhow!("no such store"),
        store::Error::AccessDenied => anyhow!("access denied"),
        store::Error::Other(reason) => anyhow!(reason),
    }
}

fn error2(error: store2::Error) -> anyhow::Error {
    match error {
        store2::Error::NoSuchStore => anyhow!("no such store"),
        store2::Error::AccessDenied => anyhow!("access denied"),
        store2::Error::Other(reason) => anyhow!(reason),
    }
}

impl Store {
    /// Open the store the server grants as `name`; an error says which
    /// config key would grant it.
    pub fn open(name: &str) -> anyhow::Result<Self> {
        let bucket = store::open(name)
            .map_err(error)
            .with_context(|| format!("failed to open the store `{name}`"))?;
        Ok(Self {
            name: name.to_string(),
            bucket,
        })
    }

    /// The value at `key`, read as JSON into `T`; `None` when absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> anyhow::Result<Option<T>> {
        match self.get_bytes(key)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("the value of `{key}` is not the JSON expected")),
            None => Ok(None),
        }
    }

    /// Store `value` at `key`, as JSON.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> anyhow::Result<()> {
        self.set_bytes(key, &serde_json::to_vec(value)?)
    }

    /// The bytes at `key`; `None` when absent.
    pub fn get_bytes(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.bucket
            .get(key)
            .map_err(error)
            .with_context(|| self.what("read", key))
    }

    /// Store `value` at `key`.
    pub fn set_bytes(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        (self.bucket.set(key, value).map_err(error)).with_context(|| self.what("write", key))
    }

    /// Delete `key` (nothing happens when it is absent).
    pub fn delete(&self, key: &str) -> anyhow::Result<()> {
        (self.bucket.delete(key).map_err(error)).with_context(|| self.what("delete", key))
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> anyhow::Result<bool> {
        (self.bucket.exists(key).map_err(error)).with_context(|| self.what("read", key))
    }

    /// The values of `keys`, as JSON, in order (`None` where absent), in
    /// one call to the server.
    pub fn get_many<T: DeserializeOwned>(&self, keys: &[String]) -> anyhow::Result<Vec<Option<T>>> {
        let found = batch::get_many(&self.bucket, keys)
            .map_err(error)
            .with_context(|| {
                format!(
                    "failed to read {} keys of the store `{}`",
                    keys.len(),
                    self.name
                )
            })?;
        found
            .into_iter()
            .map(|pair| match pair {
                Some((key, bytes)) => serde_json::from_slice(&bytes)
                    .map(Some)
                    .with_context(|| format!("the value of `{key}` is not the JSON expected")),
                None => Ok(None),
            })
            .collect()
    }

    /// Every key of the store, in pages from the server.
    pub fn keys(&self) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .bucket
                .list_keys(cursor)
                .map_err(error)
                .with_context(|| format!("failed to list the keys of the store `{}`", self.name))?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Add `by` to the counter at `key` (0 when absent), atomically even
    /// across replicas, and return its new value.
    pub fn increment(&self, key: &str, by: u64) -> anyhow::Result<u64> {
        (atomics::increment(&self.bucket, key, by).map_err(error))
            .with_context(|| self.what("increment", key))
    }

    /// Set `key` to `new` if it holds `expected` (`None`: if it is
    /// absent), atomically; `false` when it held something else.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> anyhow::Result<bool> {
        let bucket = self.bucket2()?;
        let cas = atomics2::Cas::new(&bucket, key)
            .map_err(error2)
            .with_context(|| self.what("read", key))?;
        if cas.current().map_err(error2)?.as_deref() != expected {
            return Ok(false);
        }
        match atomics2::swap(cas, new) {
            Ok(()) => Ok(true),
            Err(atomics2::CasError::CasFailed(_)) => Ok(false),
            Err(atomics2::CasError::StoreError(e)) => {
                Err(error2(e)).with_context(|| self.what("write", key))
            }
        }
    }

    /// Replace the value at `key` (JSON) with `f` of it, retrying when
    /// another writer changed it meanwhile, so no write is lost; the value
    /// written.
    pub fn update<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        mut f: impl FnMut(Option<T>) -> T,
    ) -> anyhow::Result<T> {
        let bucket = self.bucket2()?;
        for _ in 0..MAX_UPDATE_TRIES {
            let cas = atomics2::Cas::new(&bucket, key)
                .map_err(error2)
                .with_context(|| self.what("read", key))?;
            let current = cas.current().map_err(error2)?;
            let value =
                match &current {
                    Some(bytes) => Some(serde_json::from_slice(bytes).with_context(|| {
                        format!("the value of `{key}` is not the JSON expected")
                    })?),
                    None => None,
                };
            let new = f(value);
            match atomics2::swap(cas, &serde_json::to_vec(&new)?) {
                Ok(()) => return Ok(new),
                Err(atomics2::CasError::CasFailed(_)) => continue,
                Err(atomics2::CasError::StoreError(e)) => {
                    return Err(error2(e)).with_context(|| self.what("write", key));
                }
            }
        }
        bail!(
            "failed to update `{key}` in the store `{}`: {MAX_UPDATE_TRIES} other writers came first",
            self.name
        )
    }

    /// The same store through draft2, for compare-and-swap: opened per
    /// call, so that a component that never swaps does not import draft2.
    fn bucket2(&self) -> anyhow::Result<store2::Bucket> {
        store2::open(&self.name)
            .map_err(error2)
            .with_context(|| format!("failed to open the store `{}`", self.name))
    }

    fn what(&self, verb: &str, key: &str) -> String {
        format!("failed to {verb} `{key}` in the store `{}`", self.name)
    }
}
