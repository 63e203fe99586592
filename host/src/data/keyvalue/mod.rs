//! Key-value stores granted by `[keyvalue.NAME]`: an embedded store (one
//! redb file per store under `data_dir`) or Redis/Valkey, behind one
//! [`Backend`] trait, with the config's limits enforced here, once, for
//! both. The guest sees them through `wasi:keyvalue` (`wasi.rs`).

mod embedded;
mod redis;
mod wasi;

#[allow(unreachable_pub, reason = "bindgen's `with` re-exports them as `pub`")]
pub use wasi::{Bucket, Cas};

use crate::config::{Config, KeyValueConfig, Variable};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wasmtime::Result;
use wasmtime::error::Context;

/// Keys one `list-keys` call returns at most.
const PAGE: usize = 1000;
/// Keys one batch call (`get-many`, `set-many`, `delete-many`) may name.
const MAX_BATCH: usize = 1000;
/// The most bytes of values one `get-many` reads: what a guest asks for
/// is bounded by what the host would hold for it at once.
const MAX_BATCH_BYTES: u64 = 64 << 20;

/// Why an operation failed, as the guest is told.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A new key past `max_keys`.
    #[error("the store is full: it holds its most keys, {max} (keyvalue.{store}.max_keys)")]
    Full { store: String, max: u64 },
    /// A key or value past its limit.
    #[error("{what} is {size} bytes, more than the store's {max} (keyvalue.{store}.{key})")]
    TooLarge {
        what: &'static str,
        size: usize,
        max: u64,
        store: String,
        key: &'static str,
    },
    /// `increment` of a value that is not a decimal integer, or past i64.
    #[error("{0}")]
    NotANumber(String),
    /// A batch past [`MAX_BATCH`] keys or [`MAX_BATCH_BYTES`].
    #[error("{0}")]
    BatchTooLarge(String),
    /// The backend failed (I/O, Redis unreachable).
    #[error("{0}")]
    Backend(String),
}

/// A failure inside a backend, before the store names itself.
#[derive(Debug)]
pub(crate) enum BackendError {
    /// A new key would pass the store's `max_keys`.
    Full,
    /// See [`StoreError::NotANumber`].
    NotANumber(String),
    /// The values asked for add up past [`MAX_BATCH_BYTES`].
    TooMuch,
    /// See [`StoreError::Backend`].
    Other(String),
}

impl<E: std::fmt::Display> From<E> for BackendError {
    fn from(error: E) -> Self {
        BackendError::Other(error.to_string())
    }
}

/// What `compare_and_swap` found.
pub(crate) enum Swapped {
    /// The value was what the caller expected, and is now the new one.
    Yes,
    /// It was not: here is what it is.
    No(Option<Vec<u8>>),
}

/// One store's data: embedded or Redis. Every write that would add a key
/// checks `max_keys` atomically with the write.
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    /// The values of `keys`, in order; [`BackendError::TooMuch`] past
    /// [`MAX_BATCH_BYTES`] of them.
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, BackendError>;
    /// Set every pair, all or none.
    async fn set_many(
        &self,
        pairs: Vec<(String, Vec<u8>)>,
        max_keys: u64,
    ) -> Result<(), BackendError>;
    /// Delete every key, all or none; absent keys are not an error.
    async fn delete_many(&self, keys: Vec<String>) -> Result<(), BackendError>;
    /// Whether `key` has a value.
    async fn exists(&self, key: String) -> Result<bool, BackendError>;
    /// Up to `PAGE` keys from `cursor` (opaque, from the last call) on, and
    /// the cursor of the rest, if any.
    async fn list_keys(
        &self,
        cursor: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), BackendError>;
    /// Add `delta` to the decimal integer at `key` (0 when absent); with
    /// `unsigned`, not when the sum would be below zero
    /// ([`BackendError::NotANumber`], nothing written).
    async fn increment(
        &self,
        key: String,
        delta: i64,
        unsigned: bool,
        max_keys: u64,
    ) -> Result<i64, BackendError>;
    /// Set `key` to `value` if it holds `expected` (`None`: absent).
    async fn compare_and_swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        max_keys: u64,
    ) -> Result<Swapped, BackendError>;
}

/// A granted store: its name, limits and data.
pub(crate) struct Store {
    name: String,
    limits: KeyValueConfig,
    backend: Arc<dyn Backend>,
}

impl Store {
    fn error(&self, error: BackendError) -> StoreError {
        match error {
            BackendError::Full => StoreError::Full {
                store: self.name.clone(),
                max: self.limits.max_keys,
            },
            BackendError::NotANumber(reason) => StoreError::NotANumber(reason),
            BackendError::TooMuch => StoreError::BatchTooLarge(format!(
                "the values asked for add up to more than {} MiB: ask for fewer at once",
                MAX_BATCH_BYTES >> 20
            )),
            BackendError::Other(reason) => {
                StoreError::Backend(format!("keyvalue.{}: {reason}", self.name))
            }
        }
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        if key.len() as u64 > self.limits.max_key_size {
            return Err(StoreError::TooLarge {
                what: "the key",
                size: key.len(),
                max: self.limits.max_key_size,
                store: self.name.clone(),
                key: "max_key_size",
            });
        }
        Ok(())
    }

    fn check_batch(&self, keys: usize) -> Result<(), StoreError> {
        if keys > MAX_BATCH {
            return Err(StoreError::BatchTooLarge(format!(
                "a batch names {keys} keys, more than {MAX_BATCH}: split it"
            )));
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), StoreError> {
        if value.len() as u64 > self.limits.max_value_size {
            return Err(StoreError::TooLarge {
                what: "the value",
                size: value.len(),
                max: self.limits.max_value_size,
                store: self.name.clone(),
                key: "max_value_size",
            });
        }
        Ok(())
    }

    pub(crate) async fn get(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        let mut values = self.get_many(vec![key]).await?;
        Ok(values.pop().flatten())
    }

    pub(crate) async fn get_many(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.check_batch(keys.len())?;
        for key in &keys {
            self.check_key(key)?;
        }
        self.backend.get_many(keys).await.map_err(|e| self.error(e))
    }

    pub(crate) async fn set(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        self.set_many(vec![(key, value)]).await
    }

    pub(crate) async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        self.check_batch(pairs.len())?;
        for (key, value) in &pairs {
            self.check_key(key)?;
            self.check_value(value)?;
        }
        // A key named twice is set once, to its last value (so that it
        // counts once against `max_keys`).
        let mut seen = std::collections::HashSet::new();
        let mut pairs: Vec<_> = pairs
            .into_iter()
            .rev()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect();
        pairs.reverse();
        (self.backend.set_many(pairs, self.limits.max_keys).await).map_err(|e| self.error(e))
    }

    pub(crate) async fn delete_many(&self, keys: Vec<String>) -> Result<(), StoreError> {
        self.check_batch(keys.len())?;
        for key in &keys {
            self.check_key(key)?;
        }
        self.backend
            .delete_many(keys)
            .await
            .map_err(|e| self.error(e))
    }

    pub(crate) async fn exists(&self, key: String) -> Result<bool, StoreError> {
        self.check_key(&key)?;
        self.backend.exists(key).await.map_err(|e| self.error(e))
    }

    pub(crate) async fn list_keys(
        &self,
        cursor: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        self.backend
            .list_keys(cursor)
            .await
            .map_err(|e| self.error(e))
    }

    /// Add `delta` to the counter at `key`; an `unsigned` counter (the
    /// draft's, a u64) is never taken below zero.
    pub(crate) async fn increment(
        &self,
        key: String,
        delta: i64,
        unsigned: bool,
    ) -> Result<i64, StoreError> {
        self.check_key(&key)?;
        (self
            .backend
            .increment(key, delta, unsigned, self.limits.max_keys)
            .await)
            .map_err(|e| self.error(e))
    }

    pub(crate) async fn compare_and_swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<Swapped, StoreError> {
        self.check_key(&key)?;
        self.check_value(&value)?;
        (self.backend)
            .compare_and_swap(key, expected, value, self.limits.max_keys)
            .await
            .map_err(|e| self.error(e))
    }
}

/// The stores a build grants, by name.
#[derive(Clone, Default)]
pub(crate) struct Granted(Arc<HashMap<String, Arc<Store>>>);

impl Granted {
    /// The store granted as `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Store>> {
        self.0.get(name)
    }

    /// The names of the stores.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The open stores of one app, shared by its builds: a dev reload keeps
/// a store open (an embedded file is opened once per process, whatever
/// its limits, which are the [`Store`]'s). A store a reload no longer
/// grants stays open until the app ends, so that a build that fails to
/// prepare leaves the one in use whole.
#[derive(Default)]
pub(crate) struct OpenStores(Mutex<HashMap<StoreId, Arc<dyn Backend>>>);

/// What makes a backend the same one after a reload.
#[derive(Clone, PartialEq, Eq, Hash)]
enum StoreId {
    /// An embedded store's file.
    File(PathBuf),
    /// A Redis store: its name, URL (as configured) and pool size.
    Redis(String, Variable, usize),
}

impl std::fmt::Debug for OpenStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenStores")
    }
}

impl OpenStores {
    /// The stores `config` grants, opened (or kept open) here. An embedded
    /// store's file is made under `data_dir` at once, so a directory that
    /// cannot be written is a startup error; a Redis store connects on
    /// first use.
    pub(crate) fn grant(&self, config: &Config, config_path: &std::path::Path) -> Result<Granted> {
        let data_dir = config.resolve(&config.data_dir);
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut granted = HashMap::new();
        for (name, store) in &config.keyvalue {
            let id = match &store.url {
                Some(url) => StoreId::Redis(name.clone(), url.clone(), store.pool_size),
                None => StoreId::File(data_dir.join("keyvalue").join(format!("{name}.redb"))),
            };
            let backend = match (open.get(&id), &id) {
                (Some(backend), _) => backend.clone(),
                (None, StoreId::Redis(_, url, size)) => {
                    let key = format!("keyvalue.{name}.url");
                    let url = config.redis_url(url, config_path, &key)?;
                    let redis = redis::Redis::open(&url, name, *size)
                        .with_context(|| format!("key `{key}` of `{}`", config_path.display()))?;
                    Arc::new(redis) as Arc<dyn Backend>
                }
                (None, StoreId::File(file)) => {
                    Arc::new(embedded::Embedded::open(file).with_context(|| {
                        format!(
                            "failed to open the store `keyvalue.{name}` of `{}`",
                            config_path.display()
                        )
                    })?)
                }
            };
            open.insert(id, backend.clone());
            let store = Store {
                name: name.clone(),
                limits: store.clone(),
                backend,
            };
            granted.insert(name.clone(), Arc::new(store));
        }
        Ok(Granted(Arc::new(granted)))
    }
}
