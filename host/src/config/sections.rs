//! The sections of `switchyard.toml` below the top-level keys: `[server]`,
//! `[[routes]]`, `[[redirects]]`, `[limits]`, `[performance]`, `[grants]`,
//! each with its defaults.

use super::human::{human_duration, human_duration_option, human_size, human_size_option};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `[server]`: the address to listen on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The host name (or IP address) to listen on.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// The port; 0 picks a free one.
    #[serde(default = "default_port")]
    pub port: u16,
    /// How long a client may take to send its request headers (`"10s"`).
    #[serde(default = "default_header_read_timeout", with = "human_duration")]
    pub header_read_timeout: Duration,
    /// How long a connection (HTTP/1 or HTTP/2) with no request open stays
    /// open; default: `header_read_timeout`.
    #[serde(default, with = "human_duration_option")]
    pub idle_timeout: Option<Duration>,
    /// How long in-flight requests get to finish on SIGINT/SIGTERM (`"30s"`).
    #[serde(default = "default_shutdown_timeout", with = "human_duration")]
    pub shutdown_timeout: Duration,
    /// Connections open at once; more are refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client address may have open at once; more are
    /// refused. Unset: only `max_connections` (behind a proxy, every
    /// client has the proxy's address).
    #[serde(default)]
    pub max_connections_per_ip: Option<usize>,
    /// How long an upload may go without sending data (`"30s"`).
    #[serde(default = "default_slow_client_timeout", with = "human_duration")]
    pub body_read_timeout: Duration,
    /// How long a response may wait for the client to read it (`"30s"`).
    #[serde(default = "default_slow_client_timeout", with = "human_duration")]
    pub write_timeout: Duration,
    /// Log a line per request: method, path, status, bytes, duration.
    #[serde(default)]
    pub access_log: bool,
    /// Compress responses (gzip, brotli, zstd) for clients that accept it.
    #[serde(default = "yes")]
    pub compression: bool,
    /// HTTPS, when set.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hostname: default_hostname(),
            port: default_port(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: None,
            shutdown_timeout: default_shutdown_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_ip: None,
            body_read_timeout: default_slow_client_timeout(),
            write_timeout: default_slow_client_timeout(),
            access_log: false,
            compression: true,
            tls: None,
        }
    }
}

fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_slow_client_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_connections() -> usize {
    1024
}

fn default_hostname() -> String {
    "localhost".to_string()
}

fn default_port() -> u16 {
    3000
}

/// `[limits]`: what one request may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time a guest may run for one request (`"30s"`); past it, 504.
    #[serde(default = "default_request_timeout", with = "human_duration")]
    pub request_timeout: Duration,
    /// Linear memory one instance may use (`"128MiB"`); past it the request fails.
    #[serde(default = "default_max_memory", with = "human_size")]
    pub max_memory: u64,
    /// The largest request body (`"10MiB"`); larger: 413, also when streamed
    /// without a length.
    #[serde(default = "default_max_request_body", with = "human_size")]
    pub max_request_body: u64,
    /// Requests handled at once; more: 503 with `Retry-After`.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: u32,
    /// The largest request head, request line and headers (`"64KiB"`, at
    /// least 8KiB); larger: 431.
    #[serde(default = "default_max_header_size", with = "human_size")]
    pub max_header_size: u64,
    /// What `max_concurrent_requests` instances may use at most between
    /// them (`"8GiB"`); default: the machine's memory. Past it, startup
    /// warns (or, when set here, fails).
    #[serde(default, with = "human_size_option")]
    pub memory_budget: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: default_request_timeout(),
            max_memory: default_max_memory(),
            max_request_body: default_max_request_body(),
            max_concurrent_requests: default_max_concurrent_requests(),
            max_header_size: default_max_header_size(),
            memory_budget: None,
        }
    }
}

fn default_max_request_body() -> u64 {
    10 << 20
}

/// As many requests as the machine's memory holds at the default
/// `max_memory` each (so the default limits never overcommit it), between
/// 16 and 1000.
fn default_max_concurrent_requests() -> u32 {
    let fits = machine_memory().map_or(1000, |memory| memory / default_max_memory());
    u32::try_from(fits.clamp(16, 1000)).unwrap_or(1000)
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub(crate) fn machine_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn default_max_header_size() -> u64 {
    64 << 10
}

/// `[performance]`: speed that costs a guarantee, so it is opt-in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Performance {
    /// How many requests, one after another, an instance may serve (1: a
    /// fresh instance for every request). Only for apps that keep no state
    /// between requests: whatever one request leaves in memory, the next
    /// one sees.
    #[serde(default = "one")]
    pub instance_reuse: u32,
    /// WASIp3 apps only: how many requests one instance may serve at once
    /// (default 1), like `wasmtime serve --max-instance-concurrent-reuse-count`.
    /// Needs `instance_reuse` above 1 to matter; the same caveat holds.
    #[serde(default = "one")]
    pub instance_concurrency: u32,
}

impl Default for Performance {
    fn default() -> Self {
        Self {
            instance_reuse: one(),
            instance_concurrency: one(),
        }
    }
}

fn one() -> u32 {
    1
}

/// `[cache]`: the shared response cache, for responses that ask for it
/// (`Cache-Control: public, s-maxage=N`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Whether responses are cached at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The most the cache holds (`"64MiB"`); least recently used out first.
    #[serde(default = "default_cache_size", with = "human_size")]
    pub max_size: u64,
    /// The largest response body kept (`"1MiB"`).
    #[serde(default = "default_cache_entry_size", with = "human_size")]
    pub max_entry_size: u64,
    /// A Redis or Valkey the replicas share as a second tier
    /// (`"redis://host:6379"`, or `{ env = "NAME" }`): entries,
    /// revalidations and single flight.
    #[serde(default)]
    pub shared: Option<super::Variable>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_size: default_cache_size(),
            max_entry_size: default_cache_entry_size(),
            shared: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_cache_size() -> u64 {
    64 << 20
}

fn default_cache_entry_size() -> u64 {
    1 << 20
}

/// `[grants]`: authority a guest gets, each granted explicitly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Environment variables the guest sees, with their values.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Host environment variables passed through to the guest, by name.
    #[serde(default)]
    pub inherit_env: Vec<String>,
    /// Directories the guest may read: guest path = host path (relative
    /// to the config file). Read-only.
    #[serde(default)]
    pub dirs: BTreeMap<String, PathBuf>,
    /// Hosts (`example.com`, `example.com:8080`, `*` for any public host,
    /// `self` for this server's own addresses) the guest may send HTTP
    /// requests to.
    #[serde(default)]
    pub outgoing_http: Vec<String>,
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_memory() -> u64 {
    128 << 20
}

/// `[admin]`: the admin listener (`/metrics`, `/healthz`, `/readyz`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where it listens, `HOST:PORT` (`"127.0.0.1:9000"`); unset: no admin
    /// listener. Keep it off the public address.
    pub listen: Option<String>,
}

/// `[server.tls]`: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with a
/// certificate chain and its private key, PEM files relative to the config
/// file, reloaded when they change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[dev]`: what `switchyard dev` does when the app's sources change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    /// The command that rebuilds the app (run with `sh -c` in the config's
    /// directory), like `"cargo build --release --target wasm32-wasip2"`.
    pub build: Option<String>,
    /// Globs of the sources whose change reruns `build`, relative to the
    /// config's directory (`"src/**"`, `"templates/**/*.html"`).
    #[serde(default)]
    pub watch: Vec<String>,
    /// Host names (besides `localhost`, loopback addresses and the address
    /// the server listens on) that dev mode answers for, in `Host` and
    /// `Origin`, like Next.js's `allowedDevOrigins`: `["myapp.test"]`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}
