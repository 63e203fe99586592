//! The second tier: a Redis or Valkey that replicas share
//! (`[cache] shared = "redis://..."`), behind each replica's in-process
//! cache. A response one replica stored is a hit on the others; a
//! revalidation drops the entries in Redis and is published, so every
//! replica drops its own copies; and the render of a miss is single flight
//! across replicas, under a lock with a deadline (a replica that dies
//! holding it delays the others by the deadline at most).
//!
//! Keys are namespaced by a digest of the build: replicas of one build
//! share, and two versions during a rolling update do not serve each
//! other's pages. An entry is stored whole (identity body) in the format
//! of `format.rs`, which reads it back as untrusted. Redis being down costs
//! the cache its second tier, never a request: each failure is a miss,
//! logged at most once a minute, and the tier is left alone for a moment.

mod format;

pub(super) use format::{NEVER_STORED, SharedEntry};
use format::{decode, encode};

use crate::shared_redis::{pool, with_connection};
use deadpool_redis::Pool;
use http::HeaderName;
use redis::Script;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_stream::StreamExt;
use wasmtime::Result;

/// How often a waiting replica looks for the entry another one renders.
const POLL: Duration = Duration::from_millis(25);

/// What was revalidated, as published to the replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Revalidated {
    Path(String),
    Tag(String),
    /// The subscription was lost and is back: anything may have been missed.
    Everything,
}

/// A lock on rendering one key, held by this replica until it is
/// released, or dropped (a request cancelled mid-render lets go too).
pub(super) struct Lock {
    tier: Arc<SharedTier>,
    key: String,
    token: String,
    /// False when Redis was down: this replica renders on its own.
    held: bool,
}

impl Lock {
    /// Let go of the lock, if it is still ours.
    pub(super) async fn release(mut self) {
        if std::mem::take(&mut self.held) {
            self.tier.unlock(&self.key, &self.token).await;
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.held
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (tier, key, token) = (self.tier.clone(), self.key.clone(), self.token.clone());
            runtime.spawn(async move { tier.unlock(&key, &token).await });
        }
    }
}

/// The shared tier of one build's cache.
pub(super) struct SharedTier {
    pool: Pool,
    client: redis::Client,
    /// `switchyard:cache:NAMESPACE:`.
    prefix: String,
    last_error_log: AtomicU64,
    /// Until when (Unix seconds) the tier is left alone after a failure,
    /// so that a Redis that hangs costs one command's timeout, not one per
    /// request.
    down_until: AtomicU64,
}

/// How long the tier is left alone after a failure.
const BACK_OFF: u64 = 5;

/// `KEYS[1]` the lock, `ARGV[1]` the token: delete it if it is ours.
static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0",
    )
});

/// `KEYS[1]` the set of entry keys of a path or tag, `KEYS[2]` the
/// count of revalidations: counts one more (so that a render that began
/// before stores nothing), then deletes the entries and the set. The set
/// is bounded ([`MAX_SET`]), so this is too.
static DROP_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('INCR', KEYS[2])
local keys = redis.call('SMEMBERS', KEYS[1])
for i = 1, #keys, 500 do
  redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys)))
end
redis.call('DEL', KEYS[1])
return #keys",
    )
});

/// `KEYS` the count of revalidations, the entry, its `Vary` names, then
/// the N sets it is indexed in (its path's, its tags'); `ARGV` the count
/// when its render began, the entry, the `Vary` names, its lifetime (s),
/// N, the most keys a set may hold. `0` and nothing stored when a
/// revalidation came since; `-1` when a set is full (the entry stays with
/// the replica that made it); else `1`.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[5])
for i = 1, n do
  if redis.call('SCARD', KEYS[3 + i]) >= tonumber(ARGV[6]) then return -1 end
end
local ttl = tonumber(ARGV[4])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl)
redis.call('SET', KEYS[3], ARGV[3], 'EX', ttl)
for i = 1, n do
  redis.call('SADD', KEYS[3 + i], KEYS[2])
  if redis.call('TTL', KEYS[3 + i]) < ttl then redis.call('EXPIRE', KEYS[3 + i], ttl) end
end
return 1",
    )
});

/// The most entries one path or tag indexes in Redis: past it, new
/// entries of it stay with the replica that made them, so that neither
/// the sets nor a revalidation's work grow without bound.
const MAX_SET: usize = 10_000;
/// The longest an entry lives in the tier.
const MAX_TTL: u64 = 365 * 24 * 3600;
/// How often each replica publishes a heartbeat on the channel; one that
/// hears nothing for [`SILENCE`] takes its subscription for lost.
const HEARTBEAT: Duration = Duration::from_secs(30);
const SILENCE: Duration = Duration::from_secs(95);

impl SharedTier {
    /// The tier at `url`, for the app whose digest is `namespace`; nothing
    /// connects until it is used.
    pub(super) fn open(url: &str, namespace: &str) -> Result<Self> {
        use redis::IntoConnectionInfo;
        let info = url
            .into_connection_info()
            .map_err(|_| wasmtime::format_err!("the shared cache's URL cannot be used"))?;
        Ok(Self {
            pool: pool(url, 16)?,
            client: redis::Client::open(info)?,
            prefix: format!("switchyard:cache:{namespace}:"),
            last_error_log: AtomicU64::new(0),
            down_until: AtomicU64::new(0),
        })
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}entry:{key}", self.prefix)
    }

    fn vary_key(&self, url: &str) -> String {
        format!("{}vary:{url}", self.prefix)
    }

    fn set_key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.prefix)
    }

    fn generation_key(&self) -> String {
        format!("{}revalidations", self.prefix)
    }

    /// The count of revalidations now (when Redis answers).
    pub(super) async fn generation(&self) -> Option<u64> {
        if self.is_down() {
            return None;
        }
        let key = self.generation_key();
        let count: Result<Option<u64>, _> = with_connection(&self.pool, async |c| {
            redis::cmd("GET").arg(&key).query_async(c).await
        })
        .await;
        match count {
            Ok(count) => Some(count.unwrap_or(0)),
            Err(error) => {
                self.failed("lookup", error);
                None
            }
        }
    }

    fn channel(&self) -> String {
        format!("{}revalidated", self.prefix)
    }

    /// Whether the tier failed a moment ago (and is left alone).
    fn is_down(&self) -> bool {
        unix_now() < self.down_until.load(Ordering::Relaxed)
    }

    /// Note a failure (the tier is left alone for [`BACK_OFF`]), and log
    /// it, once a minute at most.
    fn failed(&self, what: &str, error: impl std::fmt::Display) {
        let now = unix_now();
        self.down_until.store(now + BACK_OFF, Ordering::Relaxed);
        let last = self.last_error_log.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_error_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("shared cache: {what}: {error} (serving from this replica alone)");
        }
    }

    /// The `Vary` names stored for `url`, if any entry of it is stored.
    pub(super) async fn vary(&self, url: &str) -> Option<Vec<HeaderName>> {
        if self.is_down() {
            return None;
        }
        let key = self.vary_key(url);
        let names: Option<String> = match with_connection(&self.pool, async |c| {
            redis::cmd("GET").arg(&key).query_async(c).await
        })
        .await
        {
            Ok(names) => names,
            Err(error) => {
                self.failed("lookup", error);
                return None;
            }
        };
        let names = names?;
        Some(
            names
                .split(',')
                .filter(|n| !n.is_empty())
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
        )
    }

    /// The entry stored under `key`, if any and well formed.
    pub(super) async fn get(&self, key: &str) -> Option<SharedEntry> {
        if self.is_down() {
            return None;
        }
        let key = self.entry_key(key);
        let bytes: Option<Vec<u8>> = match with_connection(&self.pool, async |c| {
            redis::cmd("GET").arg(&key).query_async(c).await
        })
        .await
        {
            Ok(bytes) => bytes,
            Err(error) => {
                self.failed("lookup", error);
                return None;
            }
        };
        decode(&bytes?)
    }

    /// Store `entry` of `url` under `key`, for as long as it may be
    /// served, indexed by its path and tags; unless a revalidation came
    /// since the count was `generation` (when its render began). Whether
    /// it was stored.
    pub(super) async fn put(
        &self,
        url: &str,
        key: &str,
        entry: &SharedEntry,
        generation: u64,
    ) -> bool {
        if self.is_down() {
            return false;
        }
        let ttl = entry
            .lifetime
            .saturating_add(entry.stale_while_revalidate.max(entry.stale_if_error))
            .saturating_sub(entry.age_at_store)
            .clamp(1, MAX_TTL);
        let vary: Vec<&str> = entry.vary.iter().map(HeaderName::as_str).collect();
        let mut sets = vec![self.set_key("path", &entry.path)];
        sets.extend(entry.tags.iter().map(|tag| self.set_key("tag", tag)));
        let bytes = encode(entry);
        let stored = with_connection(&self.pool, async |c| {
            let mut call = PUT.key(self.generation_key());
            call.key(self.entry_key(key))
                .key(self.vary_key(url))
                .key(&sets);
            call.arg(generation)
                .arg(bytes.as_slice())
                .arg(vary.join(","))
                .arg(ttl)
                .arg(sets.len())
                .arg(MAX_SET);
            call.invoke_async::<i64>(c).await
        })
        .await;
        match stored {
            Ok(stored) => stored == 1,
            Err(error) => {
                self.failed("store", error);
                false
            }
        }
    }

    /// Take the lock on rendering `key` for `deadline`, if no replica has
    /// it (when Redis is down, a lock of this replica's own); and the count
    /// of revalidations, read in the same round trip.
    pub(super) async fn lock(
        self: &Arc<Self>,
        key: &str,
        deadline: Duration,
    ) -> (Option<Lock>, Option<u64>) {
        let mut lock = Lock {
            tier: self.clone(),
            key: self.set_key("lock", key),
            token: format!("{:016x}", rand_token()),
            held: false,
        };
        if self.is_down() {
            return (Some(lock), None);
        }
        let generation_key = self.generation_key();
        let answer: Result<(Option<String>, Option<u64>), _> =
            with_connection(&self.pool, async |c| {
                redis::pipe()
                    .cmd("SET")
                    .arg(&lock.key)
                    .arg(&lock.token)
                    .arg("NX")
                    .arg("PX")
                    .arg(
                        u64::try_from(deadline.as_millis())
                            .unwrap_or(u64::MAX)
                            .max(1),
                    )
                    .cmd("GET")
                    .arg(&generation_key)
                    .query_async(c)
                    .await
            })
            .await;
        match answer {
            Ok((taken, generation)) => {
                lock.held = taken.is_some();
                (lock.held.then_some(lock), Some(generation.unwrap_or(0)))
            }
            Err(error) => {
                self.failed("lock", error);
                (Some(lock), None)
            }
        }
    }

    async fn unlock(&self, key: &str, token: &str) {
        let _ = with_connection(&self.pool, async |c| {
            UNLOCK.key(key).arg(token).invoke_async::<i64>(c).await
        })
        .await;
    }

    /// Wait (up to `wait`) for the entry of `key` that another replica,
    /// holding its lock, renders: the entry, or `None` when the lock went
    /// away without one (it failed, or was not storable) or time ran out.
    pub(super) async fn wait_for(&self, key: &str, wait: Duration) -> Option<SharedEntry> {
        let lock = self.set_key("lock", key);
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            if let Some(entry) = self.get(key).await {
                return Some(entry);
            }
            let held: bool = with_connection(&self.pool, async |c| {
                redis::cmd("EXISTS").arg(&lock).query_async(c).await
            })
            .await
            .unwrap_or(false);
            if !held {
                return self.get(key).await;
            }
        }
        None
    }

    /// Drop what the tier holds for `what`, and tell every replica.
    pub(super) async fn revalidate(&self, what: &Revalidated) -> Result<(), String> {
        let (set, message) = match what {
            Revalidated::Path(path) => (self.set_key("path", path), format!("p{path}")),
            Revalidated::Tag(tag) => (self.set_key("tag", tag), format!("t{tag}")),
            Revalidated::Everything => return Ok(()),
        };
        let channel = self.channel();
        let generation = self.generation_key();
        with_connection(&self.pool, async |c| {
            DROP_SET
                .key(&set)
                .key(&generation)
                .invoke_async::<i64>(c)
                .await?;
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&message)
                .query_async::<i64>(c)
                .await
        })
        .await
        .map(|_| ())
        .map_err(|error| format!("the shared cache could not be told: {error:?}"))
    }

    /// Listen for the revalidations of every replica, calling `on` with
    /// each, until `on` says to stop (its cache is gone). Every replica
    /// publishes a heartbeat every [`HEARTBEAT`]; a subscription that hears
    /// nothing for [`SILENCE`] (a connection dead without a word), or
    /// fails, is made again, every second, then reported as
    /// [`Revalidated::Everything`] (what it missed is unknown). It runs
    /// until its task is aborted (the cache's `Drop` does).
    pub(super) async fn listen(self: Arc<Self>, on: impl Fn(Revalidated)) {
        let mut lost = false;
        loop {
            let subscribed = match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(self.channel()).await {
                    Ok(()) => Ok(pubsub),
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
            match subscribed {
                Ok(mut pubsub) => {
                    if lost {
                        on(Revalidated::Everything);
                    }
                    let mut messages = pubsub.on_message();
                    let mut heartbeat = tokio::time::interval(HEARTBEAT);
                    let mut heard = tokio::time::Instant::now();
                    loop {
                        tokio::select! {
                            message = messages.next() => {
                                let Some(message) = message else { break };
                                heard = tokio::time::Instant::now();
                                let Ok(payload) = message.get_payload::<String>() else {
                                    continue;
                                };
                                let revalidated = match payload.split_at_checked(1) {
                                    Some(("p", path)) => Revalidated::Path(path.to_string()),
                                    Some(("t", tag)) => Revalidated::Tag(tag.to_string()),
                                    _ => continue,
                                };
                                on(revalidated);
                            }
                            _ = heartbeat.tick() => {
                                if heard.elapsed() > SILENCE {
                                    self.failed("subscribe", "no message for a while");
                                    break;
                                }
                                let channel = self.channel();
                                let _ = with_connection(&self.pool, async |c| {
                                    redis::cmd("PUBLISH").arg(&channel).arg("h").query_async::<i64>(c).await
                                })
                                .await;
                            }
                        }
                    }
                }
                Err(error) => self.failed("subscribe", error),
            }
            lost = true;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rand_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
