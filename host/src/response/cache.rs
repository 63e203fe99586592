//! The shared response cache (RFC 9111, as a shared cache), in front of
//! every kind of app, on the render and handler paths: the server does what
//! Next.js's ssr-caching example leaves to a CDN.
//!
//! Driven by the response's own `Cache-Control`: stored when it says
//! `s-maxage=N`, or `public` with `max-age=N`; served fresh without running
//! a guest; served stale within `stale-while-revalidate` while ONE
//! background request refreshes it; served stale within `stale-if-error`
//! when that request fails. Never stored: `private`, `no-store`,
//! `no-cache`, `Set-Cookie`, `Vary: *`, requests with `Authorization`
//! (unless `public`), methods but GET (HEAD is served from GET's entry),
//! statuses not cacheable by default, bodies over `max_entry_size`. `Vary`
//! puts the named request headers in the key. Concurrent misses of one key
//! run one request; the others wait for it (within the request timeout).
//! `x-cache: HIT|MISS|STALE` and `Age` say what the cache did. Entries are
//! weighed in bytes (moka, least recently used out first) and keep their
//! compressed forms, so a hit costs no compression.

use super::compress;
use crate::body::{Body, full};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header, request};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Statuses a shared cache may store by default (RFC 9110 section 15.1).
const CACHEABLE: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// How long a URL whose answer was not stored is served without waiting
/// for one another (then a burst of misses coalesces again).
const UNCACHEABLE_FOR: Duration = Duration::from_secs(60);

/// The `[cache]` settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheSettings {
    pub(crate) max_size: u64,
    pub(crate) max_entry_size: u64,
    /// How long a request waits for another's render of the same key.
    pub(crate) wait: Duration,
    /// Whether hits may be sent compressed (`[server] compression`).
    pub(crate) compression: bool,
}

/// The cache of one prepared app.
pub(crate) struct ResponseCache {
    entries: moka::sync::Cache<String, Arc<Entry>>,
    /// The request headers each URL's responses vary on.
    vary: moka::sync::Cache<String, Arc<[HeaderName]>>,
    /// URLs whose last answer was not stored, for a while.
    uncacheable: moka::sync::Cache<String, ()>,
    flights: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
    settings: CacheSettings,
}

/// What a finished flight tells the requests that waited for it.
#[derive(Clone)]
enum Outcome {
    Stored(Arc<Entry>),
    NotStored,
}

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
    refreshing: AtomicBool,
    /// Whether it may be sent compressed (decided once, when stored).
    compressible: bool,
    /// Compressed forms made so far: (`content-encoding`, body).
    compressed: Mutex<Vec<(HeaderValue, Bytes)>>,
}

impl Entry {
    fn age(&self) -> u64 {
        self.age_at_store + self.stored.elapsed().as_secs()
    }
}

/// What `Cache-Control` says, as far as a shared cache cares.
#[derive(Debug, Default, PartialEq, Eq)]
struct Directives {
    public: bool,
    private: bool,
    no_store: bool,
    no_cache: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    stale_while_revalidate: u64,
    stale_if_error: u64,
    no_transform: bool,
}

impl Directives {
    fn of(headers: &HeaderMap) -> Self {
        let mut directives = Directives::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => (name, Some(argument.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                let seconds = argument.and_then(|a| a.parse::<u64>().ok());
                let name = name.trim();
                let is = |directive: &str| name.eq_ignore_ascii_case(directive);
                if is("public") {
                    directives.public = true;
                } else if is("private") {
                    directives.private = true;
                } else if is("no-store") {
                    directives.no_store = true;
                } else if is("no-cache") {
                    directives.no_cache = true;
                } else if is("max-age") {
                    directives.max_age = seconds;
                } else if is("s-maxage") {
                    directives.s_maxage = seconds;
                } else if is("stale-while-revalidate") {
                    directives.stale_while_revalidate = seconds.unwrap_or(0);
                } else if is("stale-if-error") {
                    directives.stale_if_error = seconds.unwrap_or(0);
                } else if is("no-transform") {
                    directives.no_transform = true;
                }
            }
        }
        directives
    }

    /// How long a shared cache may keep it fresh, if it may store it at all.
    fn shared_lifetime(&self) -> Option<u64> {
        if self.private || self.no_store || self.no_cache {
            return None;
        }
        self.s_maxage
            .or(if self.public { self.max_age } else { None })
    }
}

impl ResponseCache {
    pub(crate) fn new(settings: CacheSettings) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(settings.max_size)
            .weigher(|key: &String, entry: &Arc<Entry>| {
                let size = key.len() + entry.body.len() + entry.headers.len() * 64;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .build();
        Self {
            entries,
            vary: moka::sync::Cache::new(100_000),
            uncacheable: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(UNCACHEABLE_FOR)
                .build(),
            flights: Mutex::new(HashMap::new()),
            settings,
        }
    }

    /// Answer a request of `parts` from the cache, or with `run` (which
    /// answers a request of the parts it is given) and store what may be.
    /// `run` may be called again later, in the background, to refresh.
    ///
    /// A request that waits for another's render of its key counts as in
    /// flight meanwhile: it holds what `admit` gives (or is refused with
    /// its error), as the request it waits for does.
    pub(crate) async fn serve<R, F, E, A, G>(
        self: &Arc<Self>,
        parts: &request::Parts,
        run: R,
        admit: A,
    ) -> Result<Response<Body>, E>
    where
        R: Fn(request::Parts) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Response<Body>, E>> + Send + 'static,
        E: Send + 'static,
        A: Fn() -> Result<G, E>,
    {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return run(parts.clone()).await;
        }
        let url = url_key(parts);
        if self.uncacheable.contains_key(&url) {
            // Not stored last time: no waiting on one another ("hit for
            // pass"), though what it answers now may be stored.
            let response = run(as_get(parts)).await?;
            return Ok(match self.store(parts, &url, response).await {
                Stored::Entry(entry) => self.respond(&entry, parts, "MISS").await,
                Stored::No(response) => mark(response, "MISS"),
            });
        }
        let key = self.key(&url, &parts.headers);
        if let Some(entry) = self.entries.get(&key) {
            let age = entry.age();
            if age < entry.lifetime {
                return Ok(self.respond(&entry, parts, "HIT").await);
            }
            if age < entry.lifetime + entry.stale_while_revalidate {
                self.refresh_in_background(&entry, parts, &url, &key, run);
                return Ok(self.respond(&entry, parts, "STALE").await);
            }
            // Too stale: a new render, with this one to fall back on.
            return match self.fill(parts, &url, &key, run, admit).await {
                Ok(response) if !response.status().is_server_error() => Ok(response),
                failed if age < entry.lifetime + entry.stale_if_error => {
                    drop(failed);
                    Ok(self.respond(&entry, parts, "STALE").await)
                }
                failed => failed,
            };
        }
        self.fill(parts, &url, &key, run, admit).await
    }

    /// The key: the URL, then the values of the headers it varies on.
    fn key(&self, url: &str, headers: &HeaderMap) -> String {
        let Some(names) = self.vary.get(url) else {
            return url.to_string();
        };
        let mut key = url.to_string();
        for name in names.iter() {
            key.push('\n');
            key.push_str(name.as_str());
            key.push(':');
            for value in headers.get_all(name) {
                key.push_str(&String::from_utf8_lossy(value.as_bytes()));
                key.push(',');
            }
        }
        key
    }

    /// A miss: one request per key runs, the others wait for its outcome.
    async fn fill<R, F, E, A, G>(
        self: &Arc<Self>,
        parts: &request::Parts,
        url: &str,
        key: &str,
        run: R,
        admit: A,
    ) -> Result<Response<Body>, E>
    where
        R: Fn(request::Parts) -> F,
        F: Future<Output = Result<Response<Body>, E>>,
        A: Fn() -> Result<G, E>,
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
                let slot = admit()?;
                let waited = tokio::time::timeout(self.settings.wait, async {
                    flight.wait_for(Option::is_some).await.ok()?.clone()
                })
                .await;
                if let Ok(Some(Outcome::Stored(entry))) = waited {
                    return Ok(self.respond(&entry, parts, "MISS").await);
                }
                // Not storable (or it took too long): this request runs too.
                drop(slot);
                return run(as_get(parts))
                    .await
                    .map(|response| mark(response, "MISS"));
            }
        };
        // Whatever happens, the waiters are told and the flight ends.
        let flight = Flight {
            cache: self,
            key,
            sender,
        };
        let response = run(as_get(parts)).await?;
        match self.store(parts, url, response).await {
            Stored::Entry(entry) => {
                flight.finish(Outcome::Stored(entry.clone()));
                Ok(self.respond(&entry, parts, "MISS").await)
            }
            Stored::No(response) => {
                flight.finish(Outcome::NotStored);
                self.uncacheable.insert(url.to_string(), ());
                Ok(mark(response, "MISS"))
            }
        }
    }

    fn refresh_in_background<R, F, E>(
        self: &Arc<Self>,
        entry: &Entry,
        parts: &request::Parts,
        url: &str,
        key: &str,
        run: R,
    ) where
        R: Fn(request::Parts) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Response<Body>, E>> + Send + 'static,
        E: Send + 'static,
    {
        if entry.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (cache, parts, url, key) = (
            self.clone(),
            as_get(parts),
            url.to_string(),
            key.to_string(),
        );
        tokio::spawn(async move {
            // Only a good answer replaces the entry: a failure keeps the
            // stale one (stale-if-error) until it is too old.
            if let Ok(response) = run(parts.clone()).await
                && !response.status().is_server_error()
            {
                let _ = cache.store(&parts, &url, response).await;
            } else if let Some(entry) = cache.entries.get(&key) {
                entry.refreshing.store(false, Ordering::Release);
            }
        });
    }

    /// Store `response` if it may be; either way, what to answer with.
    async fn store(&self, parts: &request::Parts, url: &str, response: Response<Body>) -> Stored {
        let Some((lifetime, vary)) = self.storable(parts, &response) else {
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
                    let rest = Prefixed::new(collected, body).boxed_unsync();
                    return Stored::No(Response::from_parts(head, rest));
                }
            }
        }
        let directives = Directives::of(&head.headers);
        let age_at_store = head
            .headers
            .get(header::AGE)
            .and_then(|age| age.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let mut headers = head.headers;
        headers.remove(header::AGE);
        headers.remove("x-cache");
        let compressible = is_compressible(&headers, &collected, &directives);
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
            compressible,
            compressed: Mutex::new(Vec::new()),
        });
        self.vary.insert(url.to_string(), vary.clone());
        self.uncacheable.invalidate(url);
        self.entries
            .insert(self.key(url, &parts.headers), entry.clone());
        // Evict now (stores are misses, so rare): the bound holds at once.
        self.entries.run_pending_tasks();
        Stored::Entry(entry)
    }

    /// The freshness lifetime and the `Vary` names, if `response` to a
    /// request of `parts` may be stored.
    fn storable(
        &self,
        parts: &request::Parts,
        response: &Response<Body>,
    ) -> Option<(u64, Arc<[HeaderName]>)> {
        let headers = response.headers();
        if !CACHEABLE.contains(&response.status().as_u16())
            || headers.contains_key(header::SET_COOKIE)
        {
            return None;
        }
        let directives = Directives::of(headers);
        let lifetime = directives.shared_lifetime()?;
        if parts.headers.contains_key(header::AUTHORIZATION) && !directives.public {
            return None;
        }
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
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
        Some((lifetime, Arc::from(vary)))
    }

    /// `entry` as a response to `parts`, compressed if the client accepts
    /// it, with `x-cache` and `Age`.
    async fn respond(
        &self,
        entry: &Entry,
        parts: &request::Parts,
        what: &'static str,
    ) -> Response<Body> {
        let mut response = Response::new(full(entry.body.clone()));
        *response.status_mut() = entry.status;
        *response.headers_mut() = entry.headers.clone();
        let compressed = match self.settings.compression {
            true => compressed_form(entry, &parts.headers).await,
            false => None,
        };
        if let Some((encoding, body)) = compressed {
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_ENCODING, encoding);
            headers.remove(header::CONTENT_LENGTH);
            headers.remove(header::ACCEPT_RANGES);
            *response.body_mut() = full(body);
        }
        let headers = response.headers_mut();
        if entry.compressible {
            compress::vary_on_accept_encoding(headers);
        }
        headers.insert(header::AGE, HeaderValue::from(entry.age()));
        mark(response, what)
    }
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
    Entry(Arc<Entry>),
    No(Response<Body>),
}

/// The URL part of the key: host and path with query.
fn url_key(parts: &request::Parts) -> String {
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| Some(parts.headers.get(header::HOST)?.to_str().ok()?.to_string()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{host}{path}")
}

/// HEAD is answered from GET's entry: the request that fills it is a GET.
fn as_get(parts: &request::Parts) -> request::Parts {
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

/// A body of `bytes` that then fails, as the one it stands for did.
fn failed_after(bytes: Vec<u8>) -> Body {
    Prefixed::new(bytes, Failed(true)).boxed_unsync()
}

/// `prefix`, then the frames of `rest`: a body read in part, handed on.
struct Prefixed<B> {
    prefix: Option<Bytes>,
    rest: B,
}

impl<B> Prefixed<B> {
    fn new(prefix: Vec<u8>, rest: B) -> Self {
        Self {
            prefix: Some(Bytes::from(prefix)),
            rest,
        }
    }
}

impl<B> http_body::Body for Prefixed<B>
where
    B: http_body::Body<Data = Bytes, Error = crate::body::BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = crate::body::BodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(prefix))));
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// A body whose only frame is an error.
struct Failed(bool);

impl http_body::Body for Failed {
    type Data = Bytes;
    type Error = crate::body::BodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let first = std::mem::replace(&mut self.0, false);
        std::task::Poll::Ready(first.then(|| {
            Err(crate::body::BodyError::InternalError(Some(
                "the response body failed".to_string(),
            )))
        }))
    }
}

/// Whether a client that accepts it may get a stored response compressed.
fn is_compressible(headers: &HeaderMap, body: &[u8], directives: &Directives) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    body.len() >= 1024
        && compress::is_compressible_type(content_type)
        && !directives.no_transform
        && !headers.contains_key(header::CONTENT_ENCODING)
}

/// Whether `headers` accept content coding `coding` (not with `q=0`).
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|param| {
                let param = param.trim();
                param
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>() == Ok(0.0))
            });
            name.eq_ignore_ascii_case(coding) && !refused
        })
}

/// The encoding to send `entry` in to a client that sent `headers`, and the
/// body in it (made once, then kept).
async fn compressed_form(entry: &Entry, headers: &HeaderMap) -> Option<(HeaderValue, Bytes)> {
    if !entry.compressible {
        return None;
    }
    let encoding = ["br", "zstd", "gzip"]
        .into_iter()
        .find(|coding| accepts(headers, coding))?;
    let encoding = HeaderValue::from_static(encoding);
    let made = {
        let forms = entry.compressed.lock().unwrap_or_else(|e| e.into_inner());
        forms
            .iter()
            .find(|(e, _)| *e == encoding)
            .map(|(_, body)| body.clone())
    };
    if let Some(body) = made {
        return Some((encoding, body));
    }
    let body = compress::compress_now(&encoding, &entry.body).await?;
    let mut forms = entry.compressed.lock().unwrap_or_else(|e| e.into_inner());
    forms.push((encoding.clone(), body.clone()));
    Some((encoding, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directives(value: &str) -> Directives {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        Directives::of(&headers)
    }

    #[test]
    fn accepted_codings_are_read_with_their_weights() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("GZIP;q=0.5, br; q=0, zstd"),
        );
        assert!(accepts(&headers, "gzip"));
        assert!(!accepts(&headers, "br"), "q=0 refuses it");
        assert!(accepts(&headers, "zstd"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }

    #[test]
    fn lifetimes_follow_the_shared_cache_rules() {
        assert_eq!(
            directives("public, s-maxage=10, stale-while-revalidate=59").shared_lifetime(),
            Some(10)
        );
        assert_eq!(directives("public, max-age=5").shared_lifetime(), Some(5));
        assert_eq!(
            directives("s-maxage=7, max-age=1").shared_lifetime(),
            Some(7)
        );
        assert_eq!(
            directives("max-age=5").shared_lifetime(),
            None,
            "not public"
        );
        assert_eq!(directives("private, s-maxage=10").shared_lifetime(), None);
        assert_eq!(
            directives("public, no-store, max-age=10").shared_lifetime(),
            None
        );
        assert_eq!(
            directives("public, s-maxage=10, stale-if-error=300").stale_if_error,
            300
        );
    }
}
