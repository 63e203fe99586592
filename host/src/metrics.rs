//! An app's metrics, in the Prometheus (OpenMetrics) text format: the
//! OpenTelemetry HTTP server metrics as Prometheus names them, and
//! Switchyard's own (instances, admission, the response and compile
//! caches, connections).
//!
//! Every label set is bounded: methods outside the standard ones are
//! `_OTHER` (as the OpenTelemetry conventions say), routes are patterns
//! from the config or the app's own page list (never a request's path),
//! statuses are three-digit numbers, and the other labels are fixed words.
//! The metrics belong to an app ([`App::metrics`](crate::App::metrics)),
//! not to the process: two apps in one process count apart.

use http::Method;
use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Duration;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The OpenTelemetry buckets for `http.server.request.duration`, seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Compiling a component takes from tens of milliseconds to a minute.
const COMPILE_BUCKETS: [f64; 8] = [0.01, 0.05, 0.25, 1.0, 2.5, 10.0, 30.0, 120.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    http_request_method: &'static str,
    http_response_status_code: u16,
    http_route: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    http_request_method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// What a response-cache lookup found (in the order of its counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheResult {
    /// Served from the cache, fresh.
    Hit,
    /// Not in the cache (or not reusable): answered behind it.
    Miss,
    /// Served stale while one background request refreshes it, or on an
    /// error within `stale-if-error`.
    Stale,
    /// Not looked up: a method, or a request, the cache does not serve.
    Bypass,
}

impl CacheResult {
    /// Its name, as a label and a span attribute.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Stale => "stale",
            CacheResult::Bypass => "bypass",
        }
    }
}

/// What happened to a guest instance (in the order of its counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstanceEvent {
    /// A new instance was made for a request.
    Created,
    /// An idle instance served another request (`[performance] instance_reuse`).
    Reused,
    /// The guest trapped or failed.
    Trapped,
    /// The guest ran past `limits.request_timeout`.
    TimedOut,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `[server] max_connections` were open.
    MaxConnections,
    /// `[server] max_connections_per_ip` were open from its address.
    MaxConnectionsPerIp,
}

/// An app's metrics; cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    request_duration: HistogramFamily<RequestLabels>,
    active_requests: Family<MethodLabel, Gauge>,
    /// By [`InstanceEvent`], in its order: no lookup per request.
    instances: [Counter; 4],
    admission_rejections: Counter,
    /// By [`CacheResult`], in its order.
    cache_lookups: [Counter; 4],
    cache_bytes: Gauge,
    compile_cache: Family<ResultLabel, Counter>,
    compile_duration: Histogram,
    connections_open: Gauge,
    connections_refused: Family<ReasonLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let request_duration = HistogramFamily::<RequestLabels>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP server requests, until the response body is sent",
            Unit::Seconds,
            request_duration.clone(),
        );
        let active_requests = Family::<MethodLabel, Gauge>::default();
        registry.register(
            "http_server_active_requests",
            "Number of active HTTP server requests",
            active_requests.clone(),
        );
        let instances = Family::<ResultLabel, Counter>::default();
        registry.register(
            "switchyard_instances",
            "Guest instances by what happened to them: created, reused, trapped, timed_out",
            instances.clone(),
        );
        let admission_rejections = Counter::default();
        registry.register(
            "switchyard_admission_rejections",
            "Requests refused with 503 because limits.max_concurrent_requests were in flight",
            admission_rejections.clone(),
        );
        let cache_lookups = Family::<ResultLabel, Counter>::default();
        registry.register(
            "switchyard_cache_lookups",
            "Response cache lookups by result: hit, miss, stale, bypass",
            cache_lookups.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register_with_unit(
            "switchyard_cache_size",
            "Bytes the response cache holds, keys and tables included",
            Unit::Bytes,
            cache_bytes.clone(),
        );
        let compile_cache = Family::<ResultLabel, Counter>::default();
        registry.register(
            "switchyard_compile_cache_lookups",
            "Compile cache lookups by result: hit, miss",
            compile_cache.clone(),
        );
        let compile_duration = Histogram::new(COMPILE_BUCKETS);
        registry.register_with_unit(
            "switchyard_compile_duration",
            "Time spent compiling components the compile cache did not have",
            Unit::Seconds,
            compile_duration.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "switchyard_connections_open",
            "Client connections open",
            connections_open.clone(),
        );
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "switchyard_connections_refused",
            "Client connections refused, by reason: max_connections, max_connections_per_ip",
            connections_refused.clone(),
        );
        // Every known label value from the start, at zero: a query sees a
        // counter that has not moved yet, and its first rise.
        let counters = |family: &Family<ResultLabel, Counter>, results: [&'static str; 4]| {
            results.map(|result| family.get_or_create(&ResultLabel { result }).clone())
        };
        let instances = counters(&instances, ["created", "reused", "trapped", "timed_out"]);
        let results = [
            CacheResult::Hit,
            CacheResult::Miss,
            CacheResult::Stale,
            CacheResult::Bypass,
        ];
        let cache_lookups = counters(&cache_lookups, results.map(CacheResult::as_str));
        for result in ["hit", "miss"] {
            let _ = compile_cache.get_or_create(&ResultLabel { result });
        }
        for reason in ["max_connections", "max_connections_per_ip"] {
            let _ = connections_refused.get_or_create(&ReasonLabel { reason });
        }
        Self {
            registry,
            request_duration,
            active_requests,
            instances,
            admission_rejections,
            cache_lookups,
            cache_bytes,
            compile_cache,
            compile_duration,
            connections_open,
            connections_refused,
        }
    }

    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]),
    /// which Prometheus scrapes.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = text::encode(&mut text, &self.registry);
        text
    }

    /// A request has begun; the guard counts it active until dropped.
    pub(crate) fn request_started(&self, method: &Method) -> ActiveRequest {
        let labels = MethodLabel {
            http_request_method: method_label(method),
        };
        let gauge = self.active_requests.get_or_create(&labels).clone();
        gauge.inc();
        ActiveRequest(gauge)
    }

    /// A request has ended with `status`, after `elapsed`, on `route` (a
    /// pattern, or empty when none is known).
    pub(crate) fn request_ended(
        &self,
        method: &Method,
        status: u16,
        route: Arc<str>,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            http_request_method: method_label(method),
            http_response_status_code: status,
            http_route: route,
        };
        self.request_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn instance(&self, event: InstanceEvent) {
        self.instances[event as usize].inc();
    }

    pub(crate) fn admission_rejected(&self) {
        self.admission_rejections.inc();
    }

    pub(crate) fn cache_lookup(&self, result: CacheResult) {
        self.cache_lookups[result as usize].inc();
    }

    pub(crate) fn set_cache_bytes(&self, bytes: u64) {
        self.cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A compile cache lookup: `hit`, or a miss that took `compiled` to
    /// compile.
    pub(crate) fn compiled(&self, compiled: Option<Duration>) {
        let result = match compiled {
            None => "hit",
            Some(elapsed) => {
                self.compile_duration.observe(elapsed.as_secs_f64());
                "miss"
            }
        };
        self.compile_cache
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// A connection was opened; the guard counts it open until dropped.
    pub(crate) fn connection_opened(&self) -> OpenConnection {
        self.connections_open.inc();
        OpenConnection(self.connections_open.clone())
    }

    pub(crate) fn connection_refused(&self, refusal: Refusal) {
        let reason = match refusal {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConnectionsPerIp => "max_connections_per_ip",
        };
        self.connections_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}

/// Counts a request active while it lives.
pub(crate) struct ActiveRequest(Gauge);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a connection open while it lives.
#[derive(Debug)]
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The method as a label: one of the standard methods, else `_OTHER`.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}
