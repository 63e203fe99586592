//! `switchyard.toml`: the app's configuration, Next.js's `next.config.js`.
//!
//! ```
//! let config = switchyard::Config::parse(r#"
//!     app = "build/app.wasm"
//!     [[routes]]
//!     path = "/blog/{slug}"
//!     page = "/posts/[id]"
//!     query = { id = "{slug}" }
//! "#, "switchyard.toml".as_ref()).unwrap();
//! assert_eq!(config.routes[0].page, "/posts/[id]");
//! ```
//!
//! Every key is checked while parsing (`deny_unknown_fields`, typed sizes and
//! durations), and every error names the file, the key and the reason.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name looked for in the app's directory.
pub const CONFIG_FILE: &str = "switchyard.toml";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The page app component, relative to the config file.
    pub app: Option<PathBuf>,
    /// Router components in front of the app: a path or a list of paths,
    /// outermost first.
    #[serde(default, deserialize_with = "one_or_many")]
    pub router: Vec<PathBuf>,
    /// `false`: no page is served by its file name; only `[[routes]]` reach pages.
    #[serde(default = "enabled")]
    pub use_file_system_public_routes: bool,
    /// Static files served by the host (Next.js's `public/`).
    pub public_dir: Option<PathBuf>,
    /// Where the server listens.
    #[serde(default)]
    pub server: ServerConfig,
    /// Host-side routes to pages, tried in precedence order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Redirects, answered by the host before any guest runs.
    #[serde(default)]
    pub redirects: Vec<RedirectConfig>,
    /// Per-request limits.
    #[serde(default)]
    pub limits: Limits,
    /// What a guest may use beyond computing: none of it by default.
    #[serde(default)]
    pub grants: Grants,
    /// Performance settings that change semantics (opt-in).
    #[serde(default)]
    pub performance: Performance,
    /// The directory relative paths are resolved against (the file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            app: None,
            router: Vec::new(),
            use_file_system_public_routes: true,
            public_dir: None,
            server: ServerConfig::default(),
            routes: Vec::new(),
            redirects: Vec::new(),
            limits: Limits::default(),
            grants: Grants::default(),
            performance: Performance::default(),
            base_dir: PathBuf::from("."),
        }
    }
}

/// `"a.wasm"` or `["a.wasm", "b.wasm"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    struct Paths;
    impl<'de> serde::de::Visitor<'de> for Paths {
        type Value = Vec<PathBuf>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a path or a list of paths")
        }
        fn visit_str<E: serde::de::Error>(self, path: &str) -> Result<Self::Value, E> {
            Ok(vec![PathBuf::from(path)])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut paths = Vec::new();
            while let Some(path) = seq.next_element::<PathBuf>()? {
                paths.push(path);
            }
            Ok(paths)
        }
    }
    d.deserialize_any(Paths)
}

fn enabled() -> bool {
    true
}

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
    /// How long in-flight requests get to finish on SIGINT/SIGTERM (`"30s"`).
    #[serde(default = "default_shutdown_timeout", with = "human_duration")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hostname: default_hostname(),
            port: default_port(),
            header_read_timeout: default_header_read_timeout(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_hostname() -> String {
    "localhost".to_string()
}

fn default_port() -> u16 {
    3000
}

/// `[[routes]]`: render `page` for requests whose path matches `path`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `/a` (exact), `/blog/{slug}` (a segment), `/docs/{*rest}` (the rest).
    pub path: String,
    /// The page to render, by its pattern in the app (`/a`, `/posts/[id]`).
    pub page: String,
    /// Extra query entries; `{param}` in a value is the path parameter.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
}

/// `[[redirects]]`: answer `source` with a redirect to `destination`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// A path pattern, as for routes.
    pub source: String,
    /// Where to send the client; `{param}` is the path parameter.
    pub destination: String,
    /// 308 when true, 307 when false.
    #[serde(default)]
    pub permanent: bool,
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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: default_request_timeout(),
            max_memory: default_max_memory(),
            max_request_body: default_max_request_body(),
            max_concurrent_requests: default_max_concurrent_requests(),
            max_header_size: default_max_header_size(),
        }
    }
}

fn default_max_request_body() -> u64 {
    10 << 20
}

fn default_max_concurrent_requests() -> u32 {
    1000
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
    #[serde(default = "default_instance_reuse")]
    pub instance_reuse: u32,
}

impl Default for Performance {
    fn default() -> Self {
        Self {
            instance_reuse: default_instance_reuse(),
        }
    }
}

fn default_instance_reuse() -> u32 {
    1
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
    /// Hosts (`example.com`, `example.com:8080`, or `*` for any) the guest
    /// may send HTTP requests to.
    #[serde(default)]
    pub outgoing_http: Vec<String>,
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_memory() -> u64 {
    128 << 20
}

mod human_duration {
    use serde::{Deserialize, Deserializer, de::Error};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        let duration = humantime::parse_duration(&text).map_err(|e| {
            D::Error::custom(format!(
                "invalid duration \"{text}\": {e} (write it like \"30s\" or \"500ms\")"
            ))
        })?;
        if duration.is_zero() {
            return Err(D::Error::custom("must be longer than zero"));
        }
        Ok(duration)
    }
}

mod human_size {
    use serde::{Deserialize, Deserializer, de::Error};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        let size: bytesize::ByteSize = text.parse().map_err(|e| {
            D::Error::custom(format!(
                "invalid size \"{text}\": {e} (write it like \"128MiB\")"
            ))
        })?;
        if size.as_u64() == 0 {
            return Err(D::Error::custom("must be larger than zero"));
        }
        Ok(size.as_u64())
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is wrong.
    #[error("invalid config `{path}`: {key}{reason}{location}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `key `a.b`: ` or empty when the error is in the TOML syntax.
        key: String,
        /// What is wrong.
        reason: String,
        /// ` (line L, column C)` when known.
        location: String,
    },
}

impl ConfigError {
    /// An error about `key` of the file at `path`.
    pub fn invalid(path: &Path, key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            key: format!("key `{key}`: "),
            reason: reason.into(),
            location: String::new(),
        }
    }
}

impl Config {
    /// Read and check the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and check `text`, the contents of the file at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |key: String, error: &toml::de::Error| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            reason: error.message().trim_end().to_string(),
            location: error
                .span()
                .map(|span| location(text, span.start))
                .unwrap_or_default(),
        };
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| invalid(String::new(), &e))?;
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = key_of(&e.path().to_string());
            invalid(key, e.inner())
        })?;
        config.base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        crate::routes::RouteTable::from_config(&config, path)?;
        config.check(path)?;
        Ok(config)
    }

    /// Invariants across keys, each reported against its key.
    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let limits = &self.limits;
        if limits.max_concurrent_requests == 0 {
            return Err(ConfigError::invalid(
                path,
                "limits.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        if self.performance.instance_reuse == 0 {
            return Err(ConfigError::invalid(
                path,
                "performance.instance_reuse",
                "must be at least 1 (1: a fresh instance per request)",
            ));
        }
        if limits.max_header_size < 8 << 10 {
            return Err(ConfigError::invalid(
                path,
                "limits.max_header_size",
                "must be at least 8KiB",
            ));
        }
        for guest in self.grants.dirs.keys() {
            if !guest.starts_with('/') {
                return Err(ConfigError::invalid(
                    path,
                    &format!("grants.dirs.{guest}"),
                    "the guest path must be absolute, like \"/data\"",
                ));
            }
        }
        Ok(())
    }

    /// A path from the file, resolved against the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// `key `a.b`: `, or nothing for the document itself (`.`).
fn key_of(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        format!("key `{path}`: ")
    }
}

/// ` (line L, column C)` of byte `offset` in `text`, both counted from 1.
fn location(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(" (line {line}, column {column})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        Config::parse(text, Path::new("dir/switchyard.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_are_production_ready() {
        let config = Config::parse("", Path::new("switchyard.toml")).unwrap();
        assert!(config.use_file_system_public_routes);
        assert_eq!(
            (config.server.hostname.as_str(), config.server.port),
            ("localhost", 3000)
        );
        assert_eq!(config.limits.request_timeout, Duration::from_secs(30));
        assert_eq!(config.limits.max_memory, 128 << 20);
    }

    #[test]
    fn sizes_and_durations_are_human() {
        let config = Config::parse(
            "[limits]\nrequest_timeout = \"1500ms\"\nmax_memory = \"64MiB\"\n",
            Path::new("switchyard.toml"),
        )
        .unwrap();
        assert_eq!(config.limits.request_timeout, Duration::from_millis(1500));
        assert_eq!(config.limits.max_memory, 64 << 20);
    }

    #[test]
    fn errors_name_file_key_and_line() {
        assert_eq!(
            error("[server]\nport = \"x\"\n"),
            "invalid config `dir/switchyard.toml`: key `server.port`: invalid type: string \"x\", expected u16 (line 2, column 8)"
        );
        assert!(error("[server]\nbogus = 1\n").starts_with(
            "invalid config `dir/switchyard.toml`: key `server.bogus`: unknown field `bogus`"
        ));
    }

    #[test]
    fn paths_resolve_against_the_file() {
        let config = Config::parse("app = \"a.wasm\"", Path::new("site/switchyard.toml")).unwrap();
        assert_eq!(
            config.resolve(config.app.as_deref().unwrap()),
            Path::new("site/a.wasm")
        );
    }
}
