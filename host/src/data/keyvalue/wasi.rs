//! `wasi:keyvalue` for guests: `store`, `atomics` and `batch` of both
//! drafts (0.2.0-draft, which wasmtime and wasmCloud serve, and draft2,
//! which adds compare-and-swap) over the granted [`Store`]s. A store that
//! the config does not grant cannot be opened, and the error says which
//! key would grant it. The empty name opens `default`.

use super::{Store, StoreError, Swapped};
use crate::data::DataView;
use crate::data::bindings::wasi::keyvalue0_2_0_draft as draft;
use crate::data::bindings::wasi::keyvalue0_2_0_draft2 as draft2;
use std::sync::Arc;
use wasmtime::component::Resource;

/// An open store, as the guest holds it.
#[allow(unreachable_pub, reason = "bindgen's `with` re-exports it as `pub`")]
pub struct Bucket {
    store: Arc<Store>,
    /// The draft's `list-keys` cursors are numbers: cursor `first + i` is
    /// the store's cursor `cursors[i]`; the oldest are forgotten past
    /// [`MAX_CURSORS`], and a forgotten one is an error, never another's.
    cursors: std::collections::VecDeque<String>,
    first: u64,
}

/// A value read for a compare-and-swap (draft2).
#[allow(unreachable_pub, reason = "bindgen's `with` re-exports it as `pub`")]
pub struct Cas {
    store: Arc<Store>,
    key: String,
    current: Option<Vec<u8>>,
}

/// Cursors a bucket remembers for the draft's `list-keys`; past it the
/// oldest are forgotten.
const MAX_CURSORS: usize = 1024;
/// Compare-and-swap handles one instance may hold open at once (each holds
/// a value in the host's memory).
const MAX_OPEN_CAS: usize = 64;

type Answer<T, E> = wasmtime::Result<Result<T, E>>;

impl DataView<'_> {
    fn open(&mut self, name: &str) -> Result<Resource<Bucket>, String> {
        // What components written for `wasmtime serve -S keyvalue` open.
        let name = if name.is_empty() { "default" } else { name };
        let Some(store) = self.granted.stores.get(name) else {
            // `other`, not the reasonless `no-such-store`: the guest (and
            // whoever reads what it prints) learns which key grants it.
            let name: String = name.escape_debug().take(80).collect();
            return Err(format!(
                "no store `{name}` is granted: add a `[keyvalue.{name}]` section to switchyard.toml"
            ));
        };
        let bucket = Bucket {
            store: store.clone(),
            cursors: std::collections::VecDeque::new(),
            first: 1,
        };
        self.table.push(bucket).map_err(|e| e.to_string())
    }

    fn store(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<Arc<Store>> {
        Ok(self.table.get(bucket)?.store.clone())
    }
}

macro_rules! store_and_batch {
    ($draft:ident) => {
        impl $draft::store::Host for DataView<'_> {
            async fn open(
                &mut self,
                identifier: String,
            ) -> Answer<Resource<Bucket>, $draft::store::Error> {
                Ok(DataView::open(self, &identifier).map_err($draft::store::Error::Other))
            }
        }

        impl $draft::store::HostBucket for DataView<'_> {
            async fn get(
                &mut self,
                bucket: Resource<Bucket>,
                key: String,
            ) -> Answer<Option<Vec<u8>>, $draft::store::Error> {
                let store = self.store(&bucket)?;
                Ok(store.get(key).await.map_err(other!($draft)))
            }

            async fn set(
                &mut self,
                bucket: Resource<Bucket>,
                key: String,
                value: Vec<u8>,
            ) -> Answer<(), $draft::store::Error> {
                let store = self.store(&bucket)?;
                Ok(store.set(key, value).await.map_err(other!($draft)))
            }

            async fn delete(
                &mut self,
                bucket: Resource<Bucket>,
                key: String,
            ) -> Answer<(), $draft::store::Error> {
                let store = self.store(&bucket)?;
                Ok(store.delete_many(vec![key]).await.map_err(other!($draft)))
            }

            async fn exists(
                &mut self,
                bucket: Resource<Bucket>,
                key: String,
            ) -> Answer<bool, $draft::store::Error> {
                let store = self.store(&bucket)?;
                Ok(store.exists(key).await.map_err(other!($draft)))
            }

            list_keys!($draft);

            async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
                self.table.delete(bucket)?;
                Ok(())
            }
        }

        impl $draft::batch::Host for DataView<'_> {
            async fn get_many(
                &mut self,
                bucket: Resource<Bucket>,
                keys: Vec<String>,
            ) -> Answer<Vec<Option<(String, Vec<u8>)>>, $draft::store::Error> {
                let store = self.store(&bucket)?;
                Ok(match store.get_many(keys.clone()).await {
                    Ok(values) => Ok(keys
                        .into_iter()
                        .zip(values)
                        .map(|(key, value)| value.map(|value| (key, value)))
                        .collect()),
                    Err(error) => Err(other!($draft)(error)),
                })
            }

            async fn set_many(
                &mut self,
                bucket: Resource<Bucket>,
                pairs: Vec<(String, Vec<u8>)>,
            ) -> Answer<(), $draft::store::Error> {
                let store = self.store(&bucket)?;
                Ok(store.set_many(pairs).await.map_err(other!($draft)))
            }

            async fn delete_many(
                &mut self,
                bucket: Resource<Bucket>,
                keys: Vec<String>,
            ) -> Answer<(), $draft::store::Error> {
                let store = self.store(&bucket)?;
                Ok(store.delete_many(keys).await.map_err(other!($draft)))
            }
        }
    };
}

/// A store's error as the draft's `other(reason)`.
macro_rules! other {
    ($draft:ident) => {
        |error: StoreError| $draft::store::Error::Other(error.to_string())
    };
}

/// `list-keys`: the draft's cursor is a number, draft2's a string.
macro_rules! list_keys {
    (draft) => {
        async fn list_keys(
            &mut self,
            bucket: Resource<Bucket>,
            cursor: Option<u64>,
        ) -> Answer<draft::store::KeyResponse, draft::store::Error> {
            let bucket_ref = self.table.get(&bucket)?;
            let store = bucket_ref.store.clone();
            let from = match cursor {
                None | Some(0) => None,
                Some(n) => match n
                    .checked_sub(bucket_ref.first)
                    .and_then(|i| bucket_ref.cursors.get(usize::try_from(i).ok()?))
                {
                    Some(cursor) => Some(cursor.clone()),
                    None => {
                        return Ok(Err(draft::store::Error::Other(
                            "not a cursor this bucket gave, or one it has forgotten".into(),
                        )));
                    }
                },
            };
            let (keys, next) = match store.list_keys(from).await {
                Ok(page) => page,
                Err(error) => return Ok(Err(other!(draft)(error))),
            };
            let bucket = self.table.get_mut(&bucket)?;
            let cursor = next.map(|next| {
                if bucket.cursors.len() == MAX_CURSORS {
                    bucket.cursors.pop_front();
                    bucket.first += 1;
                }
                bucket.cursors.push_back(next);
                bucket.first + bucket.cursors.len() as u64 - 1
            });
            Ok(Ok(draft::store::KeyResponse { keys, cursor }))
        }
    };
    (draft2) => {
        async fn list_keys(
            &mut self,
            bucket: Resource<Bucket>,
            cursor: Option<String>,
        ) -> Answer<draft2::store::KeyResponse, draft2::store::Error> {
            let store = self.store(&bucket)?;
            Ok(match store.list_keys(cursor).await {
                Ok((keys, cursor)) => Ok(draft2::store::KeyResponse { keys, cursor }),
                Err(error) => Err(other!(draft2)(error)),
            })
        }
    };
}

store_and_batch!(draft);
store_and_batch!(draft2);

impl draft::atomics::Host for DataView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Answer<u64, draft::store::Error> {
        let store = self.store(&bucket)?;
        let Ok(delta) = i64::try_from(delta) else {
            return Ok(Err(draft::store::Error::Other(format!(
                "a delta of {delta} is past what a counter holds"
            ))));
        };
        Ok(match store.increment(key, delta, true).await {
            Ok(value) => u64::try_from(value).map_err(|_| {
                draft::store::Error::Other(format!("the counter is {value}, below zero"))
            }),
            Err(error) => Err(other!(draft)(error)),
        })
    }
}

impl draft2::atomics::Host for DataView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Answer<i64, draft2::store::Error> {
        let store = self.store(&bucket)?;
        Ok(store
            .increment(key, delta, false)
            .await
            .map_err(other!(draft2)))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> Answer<(), draft2::atomics::CasError> {
        let Cas {
            store,
            key,
            current,
        } = self.table.delete(cas)?;
        *self.open_cas = self.open_cas.saturating_sub(1);
        match store.compare_and_swap(key.clone(), current, value).await {
            Ok(Swapped::Yes) => Ok(Ok(())),
            Ok(Swapped::No(current)) => {
                let cas = self.table.push(Cas {
                    store,
                    key,
                    current,
                })?;
                *self.open_cas += 1;
                Ok(Err(draft2::atomics::CasError::CasFailed(cas)))
            }
            Err(error) => Ok(Err(draft2::atomics::CasError::StoreError(other!(draft2)(
                error,
            )))),
        }
    }
}

impl draft2::atomics::HostCas for DataView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Answer<Resource<Cas>, draft2::store::Error> {
        if *self.open_cas >= MAX_OPEN_CAS {
            return Ok(Err(draft2::store::Error::Other(format!(
                "{MAX_OPEN_CAS} compare-and-swap handles are open: swap or drop one first"
            ))));
        }
        let store = self.store(&bucket)?;
        let current = match store.get(key.clone()).await {
            Ok(current) => current,
            Err(error) => return Ok(Err(other!(draft2)(error))),
        };
        let cas = self.table.push(Cas {
            store,
            key,
            current,
        })?;
        *self.open_cas += 1;
        Ok(Ok(cas))
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> Answer<Option<Vec<u8>>, draft2::store::Error> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        *self.open_cas = self.open_cas.saturating_sub(1);
        Ok(())
    }
}
