//! `[variables]` for `wasi:config`: resolved once per build, values from
//! the config or the server's environment. The values are never logged:
//! an error names the variable and the environment variable, never what
//! they hold.

use super::DataView;
use super::bindings::wasi;
use crate::config::{Config, ConfigError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The variables a build grants, by name.
#[derive(Clone, Default)]
pub(crate) struct Variables(Arc<BTreeMap<String, String>>);

impl Variables {
    /// Resolve `[variables]`: an `{ env = "NAME" }` that is not set, or not
    /// Unicode, is an error naming both.
    pub(crate) fn resolve(config: &Config, path: &Path) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for (name, variable) in &config.variables {
            let value = variable.resolve().map_err(|reason| {
                ConfigError::invalid(path, &format!("variables.{name}"), reason)
            })?;
            values.insert(name.clone(), value);
        }
        Ok(Self(Arc::new(values)))
    }
}

impl Variables {
    /// The names of the variables.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// `wasi:config/store`, in both versions (the same interface): the
/// upstream `0.2.0-draft` and wasmtime's `0.2.0-rc.1`.
macro_rules! config_store {
    ($version:ident) => {
        impl wasi::$version::store::Host for DataView<'_> {
            async fn get(
                &mut self,
                key: String,
            ) -> wasmtime::Result<Result<Option<String>, wasi::$version::store::Error>> {
                Ok(Ok(self.granted.variables.0.get(&key).cloned()))
            }

            async fn get_all(
                &mut self,
            ) -> wasmtime::Result<Result<Vec<(String, String)>, wasi::$version::store::Error>> {
                let all = self.granted.variables.0.iter();
                Ok(Ok(all.map(|(k, v)| (k.clone(), v.clone())).collect()))
            }
        }
    };
}

config_store!(config0_2_0_rc_1);
config_store!(config0_2_0_draft);
