//! The second tier: a Redis or Valkey that replicas share
//! (`[cache] shared = "redis://..."`), behind each replica's in-process
//! cache. A response one replica stored is a hit on the others; a
//! revalidation drops the entries in Redis and is published, so every
//! replica drops its own copies; and the render of a miss is single flight
//! across replicas, under a lock with a deadline (a replica that dies
//! holding it delays the others by the deadline at most).
//!
//! Keys are namespaced by the app's digest: replicas of one build share,
//! and two versions during a rolling update do not serve each other's
//! pages. An entry is stored whole (identity body) in a small binary
//! format read back with every length checked and every header name and
//! value validated, since what comes from Redis is not trusted more than
//! a guest. Redis being down costs the cache its second tier, never a
//! request: each failure is a miss, logged at most once a minute.

use crate::shared_redis::{pool, with_connection};
use bytes::Bytes;
use deadpool_redis::Pool;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use redis::Script;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_stream::StreamExt;
use wasmtime::Result;

/// The format's first bytes (its version).
const MAGIC: &[u8; 4] = b"SYC1";
/// How often a waiting replica looks for the entry another one renders.
const POLL: Duration = Duration::from_millis(25);

/// What the second tier keeps of an entry.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SharedEntry {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    /// When it was stored, as a Unix time in seconds, and its age then.
    pub(super) stored_at: u64,
    pub(super) age_at_store: u64,
    pub(super) lifetime: u64,
    pub(super) stale_while_revalidate: u64,
    pub(super) stale_if_error: u64,
    pub(super) vary: Vec<HeaderName>,
    pub(super) path: String,
    pub(super) tags: Vec<String>,
}

/// What was revalidated, as published to the replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Revalidated {
    Path(String),
    Tag(String),
    /// The subscription was lost and is back: anything may have been missed.
    Everything,
}

/// A lock on rendering one key, held by this replica.
pub(super) struct Lock {
    key: String,
    token: String,
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

/// `KEYS[1]` the set of keys of a path or tag: delete them and it.
static DROP_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local keys = redis.call('SMEMBERS', KEYS[1])
for i = 1, #keys, 500 do
  redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys)))
end
redis.call('DEL', KEYS[1])
return #keys",
    )
});

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
    /// served, indexed by its path and tags.
    pub(super) async fn put(&self, url: &str, key: &str, entry: &SharedEntry) {
        if self.is_down() {
            return;
        }
        let ttl = (entry.lifetime + entry.stale_while_revalidate.max(entry.stale_if_error))
            .saturating_sub(entry.age_at_store)
            .max(1);
        let entry_key = self.entry_key(key);
        let vary: Vec<&str> = entry.vary.iter().map(HeaderName::as_str).collect();
        let mut sets = vec![self.set_key("path", &entry.path)];
        sets.extend(entry.tags.iter().map(|tag| self.set_key("tag", tag)));
        let bytes = encode(entry);
        let stored = with_connection(&self.pool, async |c| {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(&entry_key)
                .arg(bytes.as_slice())
                .arg("EX")
                .arg(ttl)
                .ignore()
                .cmd("SET")
                .arg(self.vary_key(url))
                .arg(vary.join(","))
                .arg("EX")
                .arg(ttl)
                .ignore();
            for set in &sets {
                pipe.cmd("SADD").arg(set).arg(&entry_key).ignore();
                // Kept as long as its longest-lived entry.
                pipe.cmd("EXPIRE").arg(set).arg(ttl).arg("NX").ignore();
                pipe.cmd("EXPIRE").arg(set).arg(ttl).arg("GT").ignore();
            }
            pipe.query_async::<()>(c).await
        })
        .await;
        if let Err(error) = stored {
            self.failed("store", error);
        }
    }

    /// Take the lock on rendering `key` for `deadline`, if no replica has it.
    pub(super) async fn lock(&self, key: &str, deadline: Duration) -> Option<Lock> {
        let lock = Lock {
            key: self.set_key("lock", key),
            token: format!("{:016x}", rand_token()),
        };
        if self.is_down() {
            // This replica renders on its own meanwhile.
            return Some(lock);
        }
        let taken: Option<String> = match with_connection(&self.pool, async |c| {
            redis::cmd("SET")
                .arg(&lock.key)
                .arg(&lock.token)
                .arg("NX")
                .arg("PX")
                .arg(deadline.as_millis().max(1) as u64)
                .query_async(c)
                .await
        })
        .await
        {
            Ok(taken) => taken,
            // Redis down: this replica renders on its own.
            Err(error) => {
                self.failed("lock", error);
                return Some(lock);
            }
        };
        taken.map(|_| lock)
    }

    /// Let go of `lock`, if it is still ours.
    pub(super) async fn unlock(&self, lock: Lock) {
        if self.is_down() {
            return;
        }
        let _ = with_connection(&self.pool, async |c| {
            UNLOCK
                .key(&lock.key)
                .arg(&lock.token)
                .invoke_async::<i64>(c)
                .await
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
        with_connection(&self.pool, async |c| {
            DROP_SET.key(&set).invoke_async::<i64>(c).await?;
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
    /// each, until `on` says to stop (its cache is gone). A lost
    /// subscription is retried every second, then reported as
    /// [`Revalidated::Everything`].
    pub(super) async fn listen(self: Arc<Self>, on: impl Fn(Revalidated) -> bool) {
        let mut lost = false;
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(self.channel()).await.is_ok() {
                        if lost && !on(Revalidated::Everything) {
                            return;
                        }
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Ok(payload) = message.get_payload::<String>() else {
                                continue;
                            };
                            let revalidated = match payload.split_at_checked(1) {
                                Some(("p", path)) => Revalidated::Path(path.to_string()),
                                Some(("t", tag)) => Revalidated::Tag(tag.to_string()),
                                _ => continue,
                            };
                            if !on(revalidated) {
                                return;
                            }
                        }
                    }
                }
                Err(error) => self.failed("subscribe", error),
            }
            lost = true;
            if !on_alive(&on) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Whether the listener's cache is still there, without revalidating.
fn on_alive(on: &impl Fn(Revalidated) -> bool) -> bool {
    // An empty tag matches no entry: this only asks whether it is alive.
    on(Revalidated::Tag(String::new()))
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

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode(entry: &SharedEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(entry.body.len() + 512);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&entry.status.as_u16().to_le_bytes());
    for n in [
        entry.stored_at,
        entry.age_at_store,
        entry.lifetime,
        entry.stale_while_revalidate,
        entry.stale_if_error,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&(entry.headers.len() as u32).to_le_bytes());
    for (name, value) in &entry.headers {
        put_bytes(&mut out, name.as_str().as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    out.extend_from_slice(&(entry.vary.len() as u32).to_le_bytes());
    for name in &entry.vary {
        put_bytes(&mut out, name.as_str().as_bytes());
    }
    put_bytes(&mut out, entry.path.as_bytes());
    out.extend_from_slice(&(entry.tags.len() as u32).to_le_bytes());
    for tag in &entry.tags {
        put_bytes(&mut out, tag.as_bytes());
    }
    put_bytes(&mut out, &entry.body);
    out
}

/// A reader of the format that fails (with `None`) on anything short,
/// long or invalid.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    /// A count of items, each at least `min` bytes long, that fits in
    /// what is left (so a forged count cannot make a large allocation).
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.checked_mul(min)? <= self.0.len()).then_some(n)
    }
}

fn decode(bytes: &[u8]) -> Option<SharedEntry> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return None;
    }
    let status = StatusCode::from_u16(r.u16()?).ok()?;
    let [
        stored_at,
        age_at_store,
        lifetime,
        stale_while_revalidate,
        stale_if_error,
    ] = [r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?];
    let mut headers = HeaderMap::new();
    for _ in 0..r.count(8)? {
        let name = HeaderName::from_bytes(r.bytes()?).ok()?;
        let value = HeaderValue::from_bytes(r.bytes()?).ok()?;
        headers.append(name, value);
    }
    let mut vary = Vec::new();
    for _ in 0..r.count(4)? {
        vary.push(HeaderName::from_bytes(r.bytes()?).ok()?);
    }
    let path = r.text()?;
    let mut tags = Vec::new();
    for _ in 0..r.count(4)? {
        tags.push(r.text()?);
    }
    let body = Bytes::copy_from_slice(r.bytes()?);
    r.0.is_empty().then_some(SharedEntry {
        status,
        headers,
        body,
        stored_at,
        age_at_store,
        lifetime,
        stale_while_revalidate,
        stale_if_error,
        vary,
        path,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> SharedEntry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/html"));
        headers.append("link", HeaderValue::from_static("</a>"));
        headers.append("link", HeaderValue::from_static("</b>"));
        SharedEntry {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"<p>hi</p>"),
            stored_at: 1_700_000_000,
            age_at_store: 3,
            lifetime: 60,
            stale_while_revalidate: 30,
            stale_if_error: 0,
            vary: vec![http::header::ACCEPT_LANGUAGE],
            path: "/posts/1".into(),
            tags: vec!["posts".into(), "post-1".into()],
        }
    }

    #[test]
    fn entries_round_trip() {
        assert_eq!(decode(&encode(&entry())), Some(entry()));
    }

    #[test]
    fn anything_else_is_refused_without_panicking() {
        let good = encode(&entry());
        for end in 0..good.len() {
            assert_eq!(decode(&good[..end]), None, "cut at {end}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        // A header value with a newline is not let through.
        let mut bad = entry();
        bad.headers
            .insert("x-fine", HeaderValue::from_static("aaaaaaaa"));
        let mut bytes = encode(&bad);
        let at = bytes.windows(8).position(|w| w == b"aaaaaaaa").unwrap();
        bytes[at..at + 8].copy_from_slice(b"a\r\nb: c1");
        assert_eq!(decode(&bytes), None);
        // A count larger than what follows allocates nothing.
        let mut huge = good[..4 + 2 + 40].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), None);
    }
}
