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

mod data;
mod env;
mod human;
mod sections;

pub use data::{KeyValueConfig, Secret, Variable};
pub use env::{ServerOverride, server_overrides};

pub use crate::routing::{RedirectConfig, RouteConfig};
pub(crate) use sections::machine_memory;
pub use sections::{
    AdminConfig, CacheConfig, DevConfig, Grants, Limits, Performance, ServerConfig, TlsConfig,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    #[serde(default, deserialize_with = "human::one_or_many")]
    pub router: Vec<PathBuf>,
    /// `false`: no page is served by its file name; only `[[routes]]` reach pages.
    #[serde(default = "enabled")]
    pub use_file_system_public_routes: bool,
    /// Static files served by the host (Next.js's `public/`).
    pub public_dir: Option<PathBuf>,
    /// Serve files and folders of `public_dir` whose names start with `.`
    /// (`.env`, `.git/`); `/.well-known/` is served regardless.
    #[serde(default)]
    pub public_dotfiles: bool,
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
    /// The shared response cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Dev mode's rebuild on change.
    #[serde(default)]
    pub dev: DevConfig,
    /// The admin listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Where the app's data lives (the embedded key-value stores), relative
    /// to the file; default `.switchyard`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Key-value stores the app may open (`wasi:keyvalue`), by name.
    #[serde(default)]
    pub keyvalue: BTreeMap<String, KeyValueConfig>,
    /// Variables the app may read (`wasi:config`), by name.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
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
            public_dotfiles: false,
            server: ServerConfig::default(),
            routes: Vec::new(),
            redirects: Vec::new(),
            limits: Limits::default(),
            grants: Grants::default(),
            performance: Performance::default(),
            cache: CacheConfig::default(),
            dev: DevConfig::default(),
            admin: AdminConfig::default(),
            data_dir: default_data_dir(),
            keyvalue: BTreeMap::new(),
            variables: BTreeMap::new(),
            base_dir: PathBuf::from("."),
        }
    }
}

fn enabled() -> bool {
    true
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".switchyard")
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
    /// A `SWITCHYARD_SERVER_*` variable is unknown or its value is wrong.
    #[error("invalid environment variable {variable}: {key}{reason}")]
    Environment {
        /// The variable.
        variable: String,
        /// `key `server.x`: `.
        key: String,
        /// What is wrong.
        reason: String,
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
        Self::load_with(path, &[])
    }

    /// Read and check the file at `path`, with `overrides` over its
    /// `[server]` keys ([`Config::parse_with`]).
    pub fn load_with(path: &Path, overrides: &[ServerOverride]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_with(&text, path, overrides)
    }

    /// Parse and check `text`, the contents of the file at `path`, with
    /// `overrides` (from the environment) over its `[server]` keys. An
    /// error in an override names its variable.
    pub fn parse_with(
        text: &str,
        path: &Path,
        overrides: &[ServerOverride],
    ) -> Result<Self, ConfigError> {
        // The file first, alone: its errors keep their line and column.
        let parsed = Self::parse(text, path)?;
        if overrides.is_empty() {
            return Ok(parsed);
        }
        let mut table: toml::Table =
            toml::from_str(text).map_err(|error| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: String::new(),
                reason: error.message().trim_end().to_string(),
                location: error
                    .span()
                    .map(|span| location(text, span.start))
                    .unwrap_or_default(),
            })?;
        // An error about a key a variable set is the variable's.
        let from_env = |path: &Path, key: String, reason: String| {
            let variable = overrides.iter().find(|o| {
                key == format!("key `server.{}`: ", o.key)
                    || (key == "key `server`: "
                        && reason.starts_with(&format!("unknown field `{}`", o.key)))
            });
            match variable {
                Some(o) => ConfigError::Environment {
                    variable: o.variable.clone(),
                    key,
                    reason,
                },
                None => ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key,
                    reason,
                    location: String::new(),
                },
            }
        };
        env::apply(&mut table, overrides)
            .map_err(|reason| from_env(path, String::new(), reason))?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = key_of(&e.path().to_string());
                from_env(path, key, e.inner().message().trim_end().to_string())
            })?;
        config.base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        config.check(path)?;
        Ok(config)
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
        if self.performance.instance_concurrency == 0 {
            return Err(ConfigError::invalid(
                path,
                "performance.instance_concurrency",
                "must be at least 1 (1: one request at a time per instance)",
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
        self.check_data(path)
    }

    /// `[keyvalue.NAME]` and `[variables]`: names that are safe as file
    /// names and labels, and URLs the Redis client can use.
    fn check_data(&self, path: &Path) -> Result<(), ConfigError> {
        const NAME: &str =
            "must be 1 to 64 of letters, digits, `_`, `-` and `.`, not starting with `.`";
        for (name, store) in &self.keyvalue {
            if !data::is_data_name(name) {
                return Err(ConfigError::invalid(
                    path,
                    &format!("keyvalue.{name}"),
                    NAME,
                ));
            }
            if let Some(url) = &store.url {
                check_url(url, path, &format!("keyvalue.{name}.url"))?;
            }
            if store.pool_size == 0 {
                return Err(ConfigError::invalid(
                    path,
                    &format!("keyvalue.{name}.pool_size"),
                    "must be at least 1",
                ));
            }
        }
        for (name, variable) in &self.variables {
            if !data::is_data_name(name) {
                return Err(ConfigError::invalid(
                    path,
                    &format!("variables.{name}"),
                    NAME,
                ));
            }
            if let Variable::Env { env } = variable
                && (env.is_empty() || env.contains(['=', '\0']))
            {
                return Err(ConfigError::invalid(
                    path,
                    &format!("variables.{name}.env"),
                    "must name an environment variable",
                ));
            }
        }
        Ok(())
    }

    /// The Redis URL at `key`, from the file or the environment: one the
    /// client can use (an error never shows it).
    pub fn redis_url(&self, url: &Variable, path: &Path, key: &str) -> Result<String, ConfigError> {
        let value = url
            .resolve()
            .map_err(|reason| ConfigError::invalid(path, key, reason))?;
        crate::shared_redis::check_url(&value)
            .map_err(|reason| ConfigError::invalid(path, key, reason))?;
        Ok(value)
    }

    /// A path from the file, resolved against the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// A Redis URL written in the file is checked with the file; one from the
/// environment when it is read ([`Config::redis_url`]).
fn check_url(url: &Variable, path: &Path, key: &str) -> Result<(), ConfigError> {
    match url {
        Variable::Value(value) => crate::shared_redis::check_url(value.expose())
            .map_err(|reason| ConfigError::invalid(path, key, reason)),
        Variable::Env { .. } => Ok(()),
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
    use std::time::Duration;

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
