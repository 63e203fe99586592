//! The data a config grants its app: `[keyvalue.NAME]` stores, `[variables]`
//! (read through `wasi:config`) and `data_dir`, where the embedded stores keep
//! their files. Values that may be secret (a variable, a Redis password) are
//! never shown by `Debug`, so neither `check` nor a log line can print them.

use super::human::human_size;
use serde::Deserialize;
use std::fmt;

/// `[keyvalue.NAME]`: a store the app may open by `NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValueConfig {
    /// `redis://[user:password@]host[:port][/db]` (Redis or Valkey), or
    /// `{ env = "NAME" }` to read it from the server's environment: a store
    /// replicas share. Unset: the embedded store, a file under `data_dir`.
    #[serde(default)]
    pub url: Option<Variable>,
    /// Connections to Redis kept open at most (`url` only).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// The longest key (`"256B"`); longer: the guest gets an error.
    #[serde(default = "default_max_key_size", with = "human_size")]
    pub max_key_size: u64,
    /// The largest value (`"1MiB"`); larger: the guest gets an error.
    #[serde(default = "default_max_value_size", with = "human_size")]
    pub max_value_size: u64,
    /// Keys the store may hold; a new key past it: the guest gets an error.
    #[serde(default = "default_max_keys")]
    pub max_keys: u64,
}

impl Default for KeyValueConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: default_pool_size(),
            max_key_size: default_max_key_size(),
            max_value_size: default_max_value_size(),
            max_keys: default_max_keys(),
        }
    }
}

fn default_pool_size() -> usize {
    16
}

fn default_max_key_size() -> u64 {
    256
}

fn default_max_value_size() -> u64 {
    1 << 20
}

fn default_max_keys() -> u64 {
    100_000
}

/// A `[variables]` entry (or a Redis URL): a value, or `{ env = "NAME" }`
/// read from the server's environment at startup.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Variable {
    /// The value itself.
    Value(Secret),
    /// The server's environment variable `env`.
    Env {
        /// The environment variable's name.
        env: String,
    },
}

impl Variable {
    /// The value: the one in the config, or the environment variable's.
    /// `Err` says why not, without the value.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Variable::Value(value) => Ok(value.expose().to_string()),
            Variable::Env { env } => std::env::var(env).map_err(|error| {
                let why = match error {
                    std::env::VarError::NotPresent => "is not set",
                    std::env::VarError::NotUnicode(_) => "is not valid Unicode",
                };
                format!("the environment variable {env} {why}")
            }),
        }
    }
}

impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variable::Value(_) => f.write_str("Value(..)"),
            Variable::Env { env } => write!(f, "Env({env})"),
        }
    }
}

/// A string that may hold a secret: `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"..\"")
    }
}

/// Whether `name` may name a store or a variable: 1 to 64 of ASCII letters,
/// digits, `_`, `-` and `.`, not starting with `.` (a store's name is also
/// its file's name).
pub(super) fn is_data_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
