//! The shared response cache (RFC 9111, as a shared cache): the server does
//! what Next.js's ssr-caching example leaves to a CDN. It sits in front of
//! any tower service that answers requests (the pipeline's cache layer puts
//! it in front of routing), and knows nothing of what is behind.
//!
//! Driven by the response's own `Cache-Control`: stored when it says
//! `s-maxage=N`, or `public` with `max-age=N`; served fresh without calling
//! the service; served stale within `stale-while-revalidate` while ONE
//! background request refreshes it; served stale within `stale-if-error`
//! when that request fails. Never stored: `private`, `no-store`,
//! `no-cache`, `Set-Cookie`, `Vary: *`, requests with `Authorization`
//! (unless `public`), methods but GET (HEAD is served from GET's entry),
//! statuses not cacheable by default, responses that may never be served
//! from the cache (no lifetime and no stale allowance), bodies over
//! `max_entry_size`. `Vary` puts the named request headers in the key.
//! Concurrent misses of one key make one request; the others wait for it
//! (within the request timeout). `x-cache: HIT|MISS|STALE` and `Age` say
//! what the cache did.
//!
//! Every table is bounded in bytes, keys included, out of `max_size`: the
//! entries (key, headers, identity body and the encoded forms the
//! compression layer makes of it, [`Reusable`](crate::encoding::Reusable),
//! re-weighed as each is added) get [`ENTRIES_SHARE`] of it, the `Vary`
//! names and the URLs not stored one [`SIDE_SHARE`] each. Entries are
//! admitted by moka's TinyLFU: a URL asked for once does not push out one
//! asked for often, so a scan of one-off URLs cannot flush the hot pages.

mod directives;
mod shared;
mod tags;

pub(crate) use tags::{CACHE_TAG, MAX_TAG, is_tag};

use crate::body::{Body, announced_length, failed_after, full, prefixed};
use crate::encoding::{Encoded, Reusable};
use bytes::Bytes;
use directives::Directives;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use shared::{Revalidated, SharedEntry, SharedTier};
use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use std::time::{Duration, Instant};
use tokio::sync::watch;
use tower::{Service, ServiceExt};

/// Statuses a shared cache may store by default (RFC 9110 section 15.1).
const CACHEABLE: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// How long a URL whose answer was not stored is served without waiting
/// for one another (then a burst of misses coalesces again).
const UNCACHEABLE_FOR: Duration = Duration::from_secs(60);

/// The share of `max_size`, in sixteenths, of each side table (the `Vary`
/// names by URL, the URLs not stored); the entries get the rest.
const SIDE_SHARE: u64 = 1;
/// The entries' share of `max_size`, in sixteenths.
const ENTRIES_SHARE: u64 = 16 - 2 * SIDE_SHARE;
/// What a table's entry costs beyond the bytes it holds (its slot, its
/// `Arc`, moka's bookkeeping), roughly.
const OVERHEAD: usize = 128;

/// The `[cache]` settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheSettings {
    pub(crate) max_size: u64,
    pub(crate) max_entry_size: u64,
    /// How long a request waits for another's answer of the same key.
    pub(crate) wait: Duration,
}

/// The cache of one prepared build.
pub(crate) struct ResponseCache {
    entries: moka::sync::Cache<String, Arc<Entry>>,
    /// The request headers each URL's responses vary on.
    vary: moka::sync::Cache<String, Arc<[HeaderName]>>,
    /// URLs whose last answer was not stored, for a while.
    uncacheable: moka::sync::Cache<String, ()>,
    flights: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
    settings: CacheSettings,
    /// Counts revalidations: an answer asked for before one is not stored
    /// after it (it may show what was just revalidated).
    generation: AtomicU64,
    /// The second tier that replicas share, if `[cache] shared` is set.
    shared: Option<Arc<SharedTier>>,
    /// The task that hears the other replicas' revalidations.
    listener: OnceLock<tokio::task::AbortHandle>,
}

impl Drop for ResponseCache {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.get() {
            listener.abort();
        }
    }
}

/// When an answer was asked for: what it may be stored under depends on
/// what was revalidated since.
#[derive(Clone, Copy)]
struct Since {
    /// This replica's count of revalidations then.
    generation: u64,
    /// The shared tier's count of revalidations then, when it was read:
    /// without it, the answer is not stored in the tier.
    shared: Option<u64>,
}

/// What a finished flight tells the requests that waited for it.
#[derive(Clone)]
enum Outcome {
    /// Stored under this key: a waiter whose own key (with the entry's
    /// `Vary`) is another runs its own request.
    Stored(Arc<Entry>, Arc<str>),
    /// The request failed (a 5xx): every waiter gets the same failure at
    /// once, rather than trying again after waiting for it.
    Failed(Arc<Failure>),
    NotStored,
}

/// A failed answer, whole, for the requests that waited for it.
struct Failure {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// The largest failed answer shared with waiters (an error page).
const MAX_FAILURE: usize = 64 << 10;

/// A stored response.
struct Entry {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    stored: Instant,
    age_at_store: u64,
    lifetime: u64,
    stale_while_revalidate: u64,
    stale_if_error: u64,
    /// Set while one background request refreshes it.
    refreshing: AtomicBool,
    /// The request headers it varies on.
    vary: Arc<[HeaderName]>,
    /// The encoded forms the compression layer made of `body`.
    forms: Arc<Encoded>,
    /// The path it answers (no query), for `revalidate-path`.
    path: Box<str>,
    /// Its `Cache-Tag`s, for `revalidate-tag`.
    tags: Box<[Box<str>]>,
}

impl Entry {
    fn age(&self) -> u64 {
        (self.age_at_store).saturating_add(self.stored.elapsed().as_secs())
    }

    /// What the shared tier keeps of it.
    fn to_shared(&self) -> SharedEntry {
        SharedEntry {
            status: self.status,
            headers: (self.headers.iter())
                .filter(|(name, _)| {
                    *name != header::CONTENT_LENGTH
                        && !shared::NEVER_STORED.contains(&name.as_str())
                })
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            body: self.body.clone(),
            stored_at: shared::unix_now().saturating_sub(self.stored.elapsed().as_secs()),
            age_at_store: self.age_at_store,
            lifetime: self.lifetime,
            stale_while_revalidate: self.stale_while_revalidate,
            stale_if_error: self.stale_if_error,
            vary: self.vary.to_vec(),
            path: self.path.to_string(),
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
        }
    }
}

impl ResponseCache {
    pub(crate) fn new(settings: CacheSettings) -> Self {
        Self::with_tier(settings, None)
    }

    fn with_tier(settings: CacheSettings, shared: Option<Arc<SharedTier>>) -> Self {
        let sixteenth = settings.max_size / 16;
        let weight = |size: usize| u32::try_from(size + OVERHEAD).unwrap_or(u32::MAX);
        let entries = moka::sync::Cache::builder()
            .max_capacity(sixteenth * ENTRIES_SHARE)
            .weigher(move |key: &String, entry: &Arc<Entry>| {
                let headers: usize = entry
                    .headers
                    .iter()
                    .map(|(name, value)| name.as_str().len() + value.len() + 32)
                    .sum();
                weight(key.len() + headers + entry.body.len() + entry.forms.size())
            })
            .build();
        let vary = moka::sync::Cache::builder()
            .max_capacity(sixteenth * SIDE_SHARE)
            .weigher(move |url: &String, names: &Arc<[HeaderName]>| {
                weight(url.len() + names.iter().map(|n| n.as_str().len()).sum::<usize>())
            })
            .build();
        let uncacheable = moka::sync::Cache::builder()
            .max_capacity(sixteenth * SIDE_SHARE)
            .weigher(move |url: &String, _: &()| weight(url.len()))
            .time_to_live(UNCACHEABLE_FOR)
            .build();
        Self {
            entries,
            vary,
            uncacheable,
            flights: Mutex::new(HashMap::new()),
            settings,
            generation: AtomicU64::new(0),
            shared,
            listener: OnceLock::new(),
        }
    }

    /// A cache with a second tier at `url` (Redis or Valkey) that the
    /// replicas of the app whose digest is `namespace` share. Must be
    /// made on a tokio runtime: it listens there for revalidations.
    pub(crate) fn shared(
        settings: CacheSettings,
        url: &str,
        namespace: &str,
    ) -> wasmtime::Result<Arc<Self>> {
        let tier = Arc::new(SharedTier::open(url, namespace)?);
        let cache = Arc::new(Self::with_tier(settings, Some(tier.clone())));
        let weak = Arc::downgrade(&cache);
        let listener = tokio::spawn(tier.listen(move |revalidated| {
            if let Some(cache) = weak.upgrade() {
                cache.drop_local(&revalidated);
            }
        }));
        let _ = cache.listener.set(listener.abort_handle());
        Ok(cache)
    }

    /// Drop every entry of `path` (any query, host or `Vary` variant),
    /// here and, through the shared tier, on every replica.
    pub(crate) async fn revalidate_path(&self, path: &str) -> Result<(), String> {
        self.revalidate(Revalidated::Path(path.to_string())).await
    }

    /// Drop every entry tagged `tag`, here and on every replica.
    pub(crate) async fn revalidate_tag(&self, tag: &str) -> Result<(), String> {
        self.revalidate(Revalidated::Tag(tag.to_string())).await
    }

    async fn revalidate(&self, what: Revalidated) -> Result<(), String> {
        // Redis first: a replica's copy fetched from it before this drop is
        // then dropped by the local one (or refused by its generation).
        let shared = match &self.shared {
            Some(shared) => shared.revalidate(&what).await,
            None => Ok(()),
        };
        self.drop_local(&what);
        shared
    }

    /// Drop what this replica holds of `what`.
    fn drop_local(&self, what: &Revalidated) {
        match what {
            Revalidated::Path(path) => self.drop_where(|entry| *entry.path == **path),
            Revalidated::Tag(tag) => {
                self.drop_where(|entry| entry.tags.iter().any(|t| **t == **tag))
            }
            Revalidated::Everything => {
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.entries.invalidate_all();
            }
        }
    }

    /// Now, to compare with what is revalidated later.
    fn since(&self) -> Since {
        Since {
            generation: self.generation.load(Ordering::Acquire),
            shared: None,
        }
    }

    fn drop_where(&self, matches: impl Fn(&Entry) -> bool) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let keys: Vec<Arc<String>> = (self.entries.iter())
            .filter(|(_, entry)| matches(entry))
            .map(|(key, _)| key)
            .collect();
        for key in keys {
            self.entries.invalidate(&*key);
        }
    }

    /// The bytes every table holds, as weighed against `max_size` (it
    /// trails the latest changes a little).
    pub(crate) fn size(&self) -> u64 {
        self.entries.weighted_size() + self.vary.weighted_size() + self.uncacheable.weighted_size()
    }

    /// Answer `request` (a GET or HEAD) from the cache, or from `inner`,
    /// storing what may be. `inner` may be called again later, in the
    /// background, to refresh what it answered. `scope` goes before the
    /// URL in the key: what else than the URL decides the answer.
    pub(crate) async fn serve<S, B>(
        self: &Arc<Self>,
        request: Request<B>,
        scope: &str,
        inner: S,
    ) -> Response<Body>
    where
        S: Answers<B>,
        B: Default + Send + 'static,
    {
        // A GET's body is nothing to keep: what answers is its head.
        let (parts, _body) = request.into_parts();
        let inner = Inner(inner, std::marker::PhantomData);
        let url = url_key(scope, &parts);
        let mut key = self.key(&url, &parts.headers);
        let mut entry = self.entries.get(&*key);
        if entry.is_none() && self.uncacheable.contains_key(&url) {
            // Not stored last time: no waiting on one another ("hit for
            // pass"), though what it answers now may be stored.
            let since = self.since();
            let response = inner.call(as_get(&parts)).await;
            return match self.store(&parts, &url, response, since).await {
                Stored::Entry(entry, ..) => respond(&entry, "MISS"),
                Stored::No(response) => mark(response, "MISS"),
            };
        }
        if entry.is_none()
            && let Some(shared) = &self.shared
            && let Some((shared_key, shared_entry)) =
                self.from_shared(shared, &url, &parts.headers).await
        {
            key = Cow::Owned(shared_key);
            entry = Some(shared_entry);
        }
        if let Some(entry) = entry {
            let age = entry.age();
            if age < entry.lifetime {
                return respond(&entry, "HIT");
            }
            // A refresh carries no credentials: an entry that varies on
            // them is refreshed in the foreground, by its own requests.
            let private = entry
                .vary
                .iter()
                .any(|name| name == header::COOKIE || name == header::AUTHORIZATION);
            if age < entry.lifetime.saturating_add(entry.stale_while_revalidate) && !private {
                self.refresh_in_background(&entry, &parts, &url, inner);
                return respond(&entry, "STALE");
            }
            // Too stale: a new answer, with this one to fall back on.
            let response = self.fill(&parts, &url, &key, inner).await;
            if response.status().is_server_error()
                && age < entry.lifetime.saturating_add(entry.stale_if_error)
            {
                return respond(&entry, "STALE");
            }
            return response;
        }
        self.fill(&parts, &url, &key, inner).await
    }

    /// The key: the URL, then the values of the headers it varies on.
    fn key<'a>(&self, url: &'a str, headers: &HeaderMap) -> Cow<'a, str> {
        match self.vary.get(url) {
            Some(names) if !names.is_empty() => Cow::Owned(key_with(url, &names, headers)),
            _ => Cow::Borrowed(url),
        }
    }

    /// Answer a miss of `key`: one request runs, the others wait for it.
    async fn fill<S, B>(
        self: &Arc<Self>,
        parts: &Parts,
        url: &str,
        key: &str,
        inner: Inner<S, B>,
    ) -> Response<Body>
    where
        S: Answers<B>,
        B: Default + Send + 'static,
    {
        let waiting = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            match flights.get(key) {
                Some(flight) => Err(flight.clone()),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    flights.insert(key.to_string(), receiver);
                    Ok(sender)
                }
            }
        };
        let sender = match waiting {
            Ok(sender) => sender,
            Err(mut flight) => {
                // With a shared tier, the leader may first wait for another
                // replica's render, then render itself.
                let wait = match self.shared {
                    Some(_) => self.settings.wait.saturating_mul(2),
                    None => self.settings.wait,
                };
                let waited = tokio::time::timeout(wait, async {
                    flight.wait_for(Option::is_some).await.ok()?.clone()
                })
                .await;
                match waited {
                    Ok(Some(Outcome::Stored(entry, stored)))
                        if *key_with(url, &entry.vary, &parts.headers) == *stored =>
                    {
                        return respond(&entry, "MISS");
                    }
                    Ok(Some(Outcome::Failed(failure))) => return failed(&failure),
                    // Another variant, not storable, or it took too long:
                    // this request runs too.
                    _ => return mark(inner.call(as_get(parts)).await, "MISS"),
                }
            }
        };
        // Whatever happens, the waiters are told and the flight ends.
        let flight = Flight {
            cache: self,
            key,
            sender,
        };
        // One render across replicas too: another one's answer is awaited.
        let mut since = self.since();
        let lock = match &self.shared {
            Some(shared) => match shared.lock(key, self.settings.wait).await {
                (Some(lock), generation) => {
                    since.shared = generation;
                    Some(lock)
                }
                (None, _) => {
                    let since = self.since();
                    if let Some(found) = shared.wait_for(key, self.settings.wait).await {
                        let entry = self.materialize(url, key, found, since);
                        flight.finish(Outcome::Stored(entry.clone(), Arc::from(key)));
                        return respond(&entry, "MISS");
                    }
                    None
                }
            },
            None => None,
        };
        // The lock goes when this request does, finished or cancelled.
        let response = inner.call(as_get(parts)).await;
        let answer = self.answer_miss(parts, url, response, since, flight).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        answer
    }

    /// What a miss answers with, once `inner` answered `response`: shared
    /// with the flight's waiters, stored if it may be.
    async fn answer_miss(
        self: &Arc<Self>,
        parts: &Parts,
        url: &str,
        response: Response<Body>,
        since: Since,
        flight: Flight<'_>,
    ) -> Response<Body> {
        if response.status().is_server_error() {
            self.uncacheable.insert(url.to_string(), ());
            return match collect_failure(response).await {
                Ok(failure) => {
                    let failure = Arc::new(failure);
                    flight.finish(Outcome::Failed(failure.clone()));
                    failed(&failure)
                }
                Err(response) => mark(response, "MISS"),
            };
        }
        match self.store(parts, url, response, since).await {
            Stored::Entry(entry, key, _) => {
                flight.finish(Outcome::Stored(entry.clone(), Arc::from(key)));
                respond(&entry, "MISS")
            }
            Stored::No(response) => {
                flight.finish(Outcome::NotStored);
                self.uncacheable.insert(url.to_string(), ());
                mark(response, "MISS")
            }
        }
    }

    fn refresh_in_background<S, B>(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        parts: &Parts,
        url: &str,
        inner: Inner<S, B>,
    ) where
        S: Answers<B>,
        B: Default + Send + 'static,
    {
        if entry.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (cache, entry, mut parts) = (self.clone(), entry.clone(), as_get(parts));
        // What the refresh stores is for everyone: none of this client's
        // credentials go into it.
        parts.headers.remove(header::COOKIE);
        parts.headers.remove(header::AUTHORIZATION);
        let url = url.to_string();
        tokio::spawn(async move {
            let mut since = cache.since();
            if let Some(shared) = &cache.shared {
                since.shared = shared.generation().await;
            }
            let response = inner.call(parts.clone()).await;
            // Only a good answer that may be stored replaces the entry; else
            // the stale one serves on (stale-if-error until it is too old)
            // and the next stale hit tries again.
            let replaced = !response.status().is_server_error()
                && matches!(
                    cache.store(&parts, &url, response, since).await,
                    Stored::Entry(_, _, true)
                );
            if !replaced {
                entry.refreshing.store(false, Ordering::Release);
            }
        });
    }

    /// Store `response` if it may be, unless a revalidation came `since`
    /// it was asked for; either way, what to answer with.
    async fn store(
        self: &Arc<Self>,
        parts: &Parts,
        url: &str,
        response: Response<Body>,
        since: Since,
    ) -> Stored {
        let Some((directives, lifetime, vary)) = self.storable(parts, &response) else {
            return Stored::No(response);
        };
        let (head, body) = response.into_parts();
        let limit = usize::try_from(self.settings.max_entry_size).unwrap_or(usize::MAX);
        let mut body = body;
        let mut collected = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                // The body failed: answer with what came, failing too.
                return Stored::No(Response::from_parts(head, failed_after(collected)));
            };
            if let Some(data) = frame.data_ref() {
                collected.extend_from_slice(data);
                if collected.len() > limit {
                    // Too large to keep: answer with what came and the rest.
                    let rest = prefixed(collected, body);
                    return Stored::No(Response::from_parts(head, rest));
                }
            }
        }
        let age_at_store = head
            .headers
            .get(header::AGE)
            .and_then(|age| age.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let mut headers = head.headers;
        headers.remove(header::AGE);
        headers.remove("x-cache");
        let tags = tags::take(&mut headers);
        // The key under the names it varies on now, which the lookup may
        // not have known.
        let key = key_with(url, &vary, &parts.headers);
        let forms = self.reweighed(&key);
        let entry = Arc::new(Entry {
            status: head.status,
            headers,
            body: Bytes::from(collected),
            stored: Instant::now(),
            age_at_store,
            lifetime,
            stale_while_revalidate: directives.stale_while_revalidate,
            stale_if_error: directives.stale_if_error,
            refreshing: AtomicBool::new(false),
            vary: vary.clone(),
            forms: Arc::new(forms),
            path: parts.uri.path().into(),
            tags,
        });
        if !self.keep(url, &key, &entry, vary, since.generation) {
            // Revalidated while it was made: answer with it, keep nothing.
            return Stored::Entry(entry, key, false);
        }
        self.uncacheable.invalidate(url);
        // Evict now (stores are misses, so rare): the bound holds at once.
        self.entries.run_pending_tasks();
        if let (Some(shared), Some(generation)) = (&self.shared, since.shared) {
            shared.put(url, &key, &entry.to_shared(), generation).await;
        }
        Stored::Entry(entry, key, true)
    }

    /// Keep `entry` under `key`, unless a revalidation came after
    /// `generation`: checked after the insert too, so that a revalidation
    /// between the check and the insert still drops it.
    fn keep(
        &self,
        url: &str,
        key: &str,
        entry: &Arc<Entry>,
        vary: Arc<[HeaderName]>,
        generation: u64,
    ) -> bool {
        if self.generation.load(Ordering::Acquire) != generation {
            return false;
        }
        self.vary.insert(url.to_string(), vary);
        self.entries.insert(key.to_string(), entry.clone());
        if self.generation.load(Ordering::Acquire) != generation {
            self.entries.invalidate(key);
            return false;
        }
        true
    }

    /// The encoded forms of the entry at `key`: each form made of its body
    /// counts in the bound.
    fn reweighed(self: &Arc<Self>, key: &str) -> Encoded {
        let (cache, key) = (Arc::downgrade(self), key.to_string());
        Encoded::new(move || {
            if let Some(cache) = cache.upgrade()
                && let Some(entry) = cache.entries.get(&key)
            {
                cache.entries.insert(key.clone(), entry);
                cache.entries.run_pending_tasks();
            }
        })
    }

    /// The shared tier's entry for a request of `url` with `headers`, kept
    /// here too, and its key.
    async fn from_shared(
        self: &Arc<Self>,
        shared: &SharedTier,
        url: &str,
        headers: &HeaderMap,
    ) -> Option<(String, Arc<Entry>)> {
        let names: Arc<[HeaderName]> = match self.vary.get(url) {
            Some(names) => names,
            None => Arc::from(shared.vary(url).await?),
        };
        let key = key_with(url, &names, headers);
        let since = self.since();
        let found = shared.get(&key).await?;
        let entry = self.materialize(url, &key, found, since);
        Some((key, entry))
    }

    /// `found`, from the shared tier and asked for `since`, as an entry of
    /// this replica's, kept under `key` too unless it is larger than
    /// `max_entry_size` or a revalidation came since.
    fn materialize(
        self: &Arc<Self>,
        url: &str,
        key: &str,
        found: SharedEntry,
        since: Since,
    ) -> Arc<Entry> {
        let fits = found.body.len() as u64 <= self.settings.max_entry_size;
        let age =
            (shared::unix_now().saturating_sub(found.stored_at)).saturating_add(found.age_at_store);
        let vary: Arc<[HeaderName]> = Arc::from(found.vary);
        let entry = Arc::new(Entry {
            status: found.status,
            headers: found.headers,
            body: found.body,
            stored: Instant::now(),
            age_at_store: age,
            lifetime: found.lifetime,
            stale_while_revalidate: found.stale_while_revalidate,
            stale_if_error: found.stale_if_error,
            refreshing: AtomicBool::new(false),
            vary: vary.clone(),
            forms: Arc::new(self.reweighed(key)),
            path: found.path.into(),
            tags: found.tags.into_iter().map(Box::from).collect(),
        });
        if fits {
            self.keep(url, key, &entry, vary, since.generation);
        }
        entry
    }

    /// What `Cache-Control` says, the freshness lifetime and the `Vary`
    /// names, if `response` to a request of `parts` may be stored.
    fn storable(
        &self,
        parts: &Parts,
        response: &Response<Body>,
    ) -> Option<(Directives, u64, Arc<[HeaderName]>)> {
        let headers = response.headers();
        if !CACHEABLE.contains(&response.status().as_u16())
            || headers.contains_key(header::SET_COOKIE)
        {
            return None;
        }
        let directives = Directives::of(headers);
        let lifetime = directives.shared_lifetime()?;
        if lifetime == 0 && directives.stale_while_revalidate == 0 && directives.stale_if_error == 0
        {
            // It could never be served from the cache.
            return None;
        }
        if parts.headers.contains_key(header::AUTHORIZATION) && !directives.public {
            return None;
        }
        let announced = announced_length(headers);
        if announced.is_some_and(|length| length > self.settings.max_entry_size) {
            return None;
        }
        let mut vary = Vec::new();
        for value in headers.get_all(header::VARY) {
            for name in value.to_str().ok()?.split(',') {
                let name = name.trim();
                if name == "*" {
                    return None;
                }
                if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                    vary.push(name);
                }
            }
        }
        Some((directives, lifetime, Arc::from(vary)))
    }
}

/// What the cache can stand in front of: a service that answers every
/// request (a failure is a response) with a future it can hold across
/// threads.
pub(crate) trait Answers<B>:
    Service<Request<B>, Response = Response<Body>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S, B> Answers<B> for S where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

/// The service behind the cache, called with a request of given parts.
struct Inner<S, B>(S, std::marker::PhantomData<fn() -> B>);

impl<S: Answers<B>, B: Default + Send> Inner<S, B> {
    /// The answer to a request of `parts` (and no body); the future holds a
    /// clone of the service, not a borrow of it.
    fn call(&self, parts: Parts) -> impl Future<Output = Response<Body>> + Send + use<S, B> {
        let answer = self
            .0
            .clone()
            .oneshot(Request::from_parts(parts, B::default()));
        async move {
            match answer.await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// `url`'s key with the values of `names` in `headers`.
fn key_with(url: &str, names: &[HeaderName], headers: &HeaderMap) -> String {
    let mut key = url.to_string();
    for name in names {
        key.push('\n');
        key.push_str(name.as_str());
        for value in headers.get_all(name) {
            key.push(':');
            key.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
    }
    key
}

/// `entry` as a response, with `x-cache` and `Age`, carrying its body for
/// the compression layer to reuse.
fn respond(entry: &Arc<Entry>, what: &'static str) -> Response<Body> {
    let mut response = Response::new(full(entry.body.clone()));
    *response.status_mut() = entry.status;
    *response.headers_mut() = entry.headers.clone();
    response
        .headers_mut()
        .insert(header::AGE, HeaderValue::from(entry.age()));
    response.extensions_mut().insert(Reusable {
        identity: entry.body.clone(),
        forms: entry.forms.clone(),
    });
    mark(response, what)
}

/// `response`, a failure, read whole to share it; itself (what was read
/// and the rest) when it is too large or its body fails.
async fn collect_failure(response: Response<Body>) -> Result<Failure, Response<Body>> {
    let (head, mut body) = response.into_parts();
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Response::from_parts(head, failed_after(collected)));
        };
        if let Some(data) = frame.data_ref() {
            collected.extend_from_slice(data);
            if collected.len() > MAX_FAILURE {
                let rest = prefixed(collected, body);
                return Err(Response::from_parts(head, rest));
            }
        }
    }
    Ok(Failure {
        status: head.status,
        headers: head.headers,
        body: Bytes::from(collected),
    })
}

/// A copy of `failure` as a response.
fn failed(failure: &Failure) -> Response<Body> {
    let mut response = Response::new(full(failure.body.clone()));
    *response.status_mut() = failure.status;
    *response.headers_mut() = failure.headers.clone();
    mark(response, "MISS")
}

/// The end of a flight: its waiters are told the outcome (`NotStored` if
/// it is dropped without one), and the flight is removed.
struct Flight<'a> {
    cache: &'a ResponseCache,
    key: &'a str,
    sender: watch::Sender<Option<Outcome>>,
}

impl Flight<'_> {
    fn finish(self, outcome: Outcome) {
        let _ = self.sender.send(Some(outcome));
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.sender.send_if_modified(|outcome| {
            let unset = outcome.is_none();
            if unset {
                *outcome = Some(Outcome::NotStored);
            }
            unset
        });
        let mut flights = self.cache.flights.lock().unwrap_or_else(|e| e.into_inner());
        flights.remove(self.key);
    }
}

enum Stored {
    /// Storable, under this key; kept (`true`) unless revalidated meanwhile.
    Entry(Arc<Entry>, String, bool),
    No(Response<Body>),
}

/// The URL part of the key: `scope`, then host and path with query.
fn url_key(scope: &str, parts: &Parts) -> String {
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut url = String::with_capacity(scope.len() + host.len() + path.len());
    url.push_str(host);
    url.make_ascii_lowercase();
    url.insert_str(0, scope);
    url.push_str(path);
    url
}

/// HEAD is answered from GET's entry: the request that fills it is a GET.
fn as_get(parts: &Parts) -> Parts {
    let mut parts = parts.clone();
    parts.method = Method::GET;
    parts
}

fn mark(mut response: Response<Body>, what: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(what));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_tables_are_bounded_in_bytes_keys_included() {
        let cache = ResponseCache::new(CacheSettings {
            max_size: 1 << 20,
            max_entry_size: 1 << 16,
            wait: Duration::from_secs(1),
        });
        // 1,200 URLs of 48 KB each: 56 MB of keys offered to each table.
        for i in 0..1200 {
            let url = format!("host/{i}?{}", "q".repeat(48_000));
            cache.uncacheable.insert(url.clone(), ());
            cache.vary.insert(url, Arc::from(vec![header::COOKIE]));
        }
        cache.uncacheable.run_pending_tasks();
        cache.vary.run_pending_tasks();
        let share = (1 << 20) / 16 * SIDE_SHARE;
        assert!(cache.uncacheable.weighted_size() <= share);
        assert!(cache.vary.weighted_size() <= share);
    }
}
