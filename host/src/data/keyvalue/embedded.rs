//! The embedded store: one redb file per store. redb is a pure-Rust, ACID,
//! copy-on-write B-tree store with a stable file format: each write is
//! one transaction, committed with `fsync` before the guest is answered,
//! so a write that was acknowledged survives a crash or a SIGKILL, and a
//! torn write is never seen (the file opens at its last commit). Pure
//! Rust keeps the build free of a C toolchain (SQLite would need one).
//! Its calls block, so they run on tokio's blocking threads.

use super::{Backend, BackendError, MAX_BATCH_BYTES, PAGE, Swapped};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use std::sync::Arc;
use wasmtime::Result;
use wasmtime::error::Context;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("keyvalue");

/// A store in a redb file.
pub(crate) struct Embedded(Arc<Database>);

impl Embedded {
    /// Open (or create) the file, and its directory, readable and writable
    /// only by this user.
    pub(crate) fn open(file: &Path) -> Result<Self> {
        if let Some(dir) = file.parent() {
            create_private_dir(dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?;
        }
        let database = Database::create(file).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => wasmtime::format_err!(
                "`{}` is open in another process: an embedded store serves one server \
                 (replicas share a Redis store: `url = \"redis://...\"`)",
                file.display()
            ),
            error => wasmtime::format_err!("`{}`: {error}", file.display()),
        })?;
        let write = database.begin_write()?;
        write.open_table(TABLE)?;
        write.commit()?;
        Ok(Self(Arc::new(database)))
    }

    /// Run `f` on a blocking thread with the database.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<R, BackendError> + Send + 'static,
    ) -> Result<R, BackendError> {
        let database = self.0.clone();
        tokio::task::spawn_blocking(move || f(&database)).await?
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Within one write transaction: whether setting `key` adds a key past
/// `max_keys`.
fn would_overflow(
    table: &redb::Table<&str, &[u8]>,
    new_keys: u64,
    max_keys: u64,
) -> Result<bool, BackendError> {
    Ok(new_keys > 0 && table.len()?.saturating_add(new_keys) > max_keys)
}

#[async_trait]
impl Backend for Embedded {
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        self.run(move |db| {
            let read = db.begin_read()?;
            let table = read.open_table(TABLE)?;
            let mut values = Vec::with_capacity(keys.len());
            let mut total = 0u64;
            for key in &keys {
                let value = table.get(key.as_str())?.map(|v| v.value().to_vec());
                total += value.as_ref().map_or(0, |v| v.len() as u64);
                if total > MAX_BATCH_BYTES {
                    return Err(BackendError::TooMuch);
                }
                values.push(value);
            }
            Ok(values)
        })
        .await
    }

    async fn set_many(
        &self,
        pairs: Vec<(String, Vec<u8>)>,
        max_keys: u64,
    ) -> Result<(), BackendError> {
        self.run(move |db| {
            let write = db.begin_write()?;
            {
                let mut table = write.open_table(TABLE)?;
                let mut new_keys = std::collections::HashSet::new();
                for (key, _) in &pairs {
                    if table.get(key.as_str())?.is_none() {
                        new_keys.insert(key.as_str());
                    }
                }
                if would_overflow(&table, new_keys.len() as u64, max_keys)? {
                    return Err(BackendError::Full);
                }
                for (key, value) in &pairs {
                    table.insert(key.as_str(), value.as_slice())?;
                }
            }
            write.commit()?;
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<(), BackendError> {
        self.run(move |db| {
            let write = db.begin_write()?;
            {
                let mut table = write.open_table(TABLE)?;
                for key in &keys {
                    table.remove(key.as_str())?;
                }
            }
            write.commit()?;
            Ok(())
        })
        .await
    }

    async fn exists(&self, key: String) -> Result<bool, BackendError> {
        self.run(move |db| {
            let read = db.begin_read()?;
            Ok(read.open_table(TABLE)?.get(key.as_str())?.is_some())
        })
        .await
    }

    async fn list_keys(
        &self,
        cursor: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), BackendError> {
        self.run(move |db| {
            let read = db.begin_read()?;
            let table = read.open_table(TABLE)?;
            let range = match &cursor {
                // The cursor is the last key returned: go on after it.
                Some(after) => table.range((
                    std::ops::Bound::Excluded(after.as_str()),
                    std::ops::Bound::Unbounded,
                ))?,
                None => table.range(..)?,
            };
            let mut keys = Vec::new();
            for entry in range {
                if keys.len() == PAGE {
                    let last = keys.last().cloned();
                    return Ok((keys, last));
                }
                keys.push(entry?.0.value().to_string());
            }
            Ok((keys, None))
        })
        .await
    }

    async fn increment(
        &self,
        key: String,
        delta: i64,
        unsigned: bool,
        max_keys: u64,
    ) -> Result<i64, BackendError> {
        self.run(move |db| {
            let write = db.begin_write()?;
            let value = {
                let mut table = write.open_table(TABLE)?;
                let current = table.get(key.as_str())?.map(|v| v.value().to_vec());
                let value = match &current {
                    Some(bytes) => parse_integer(&key, bytes)?,
                    None if would_overflow(&table, 1, max_keys)? => return Err(BackendError::Full),
                    None => 0,
                };
                let value = value.checked_add(delta).ok_or_else(|| {
                    BackendError::NotANumber(format!("incrementing `{key}` overflows"))
                })?;
                if unsigned && value < 0 {
                    return Err(below_zero(&key, value));
                }
                table.insert(key.as_str(), value.to_string().as_bytes())?;
                value
            };
            write.commit()?;
            Ok(value)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        max_keys: u64,
    ) -> Result<Swapped, BackendError> {
        self.run(move |db| {
            let write = db.begin_write()?;
            {
                let mut table = write.open_table(TABLE)?;
                let current = table.get(key.as_str())?.map(|v| v.value().to_vec());
                if current != expected {
                    return Ok(Swapped::No(current));
                }
                if current.is_none() && would_overflow(&table, 1, max_keys)? {
                    return Err(BackendError::Full);
                }
                table.insert(key.as_str(), value.as_slice())?;
            }
            write.commit()?;
            Ok(Swapped::Yes)
        })
        .await
    }
}

/// A counter the draft's increment (u64) would take below zero.
pub(super) fn below_zero(key: &str, value: i64) -> BackendError {
    BackendError::NotANumber(format!("the counter `{key}` would be {value}, below zero"))
}

/// The value of a counter: a decimal integer, as Redis keeps them.
pub(super) fn parse_integer(key: &str, bytes: &[u8]) -> Result<i64, BackendError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            BackendError::NotANumber(format!("the value of `{key}` is not a decimal integer"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unsigned_increment_never_takes_a_counter_below_zero() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("kv.redb")).unwrap();
        assert_eq!(
            store.increment("n".into(), -5, false, 10).await.ok(),
            Some(-5)
        );
        let refused = store.increment("n".into(), 1, true, 10).await;
        assert!(matches!(refused, Err(BackendError::NotANumber(_))));
        let values = store.get_many(vec!["n".into()]).await.ok().unwrap();
        assert_eq!(values, vec![Some(b"-5".to_vec())], "nothing written");
        assert_eq!(store.increment("n".into(), 7, true, 10).await.ok(), Some(2));
    }
}
