//! `[variables]` for `wasi:config`: resolved once per build, values from
//! the config or the server's environment. The values are never logged:
//! an error names the variable and the environment variable, never what
//! they hold.

use super::DataView;
use super::bindings::wasi::config::store::{self, Error};
use crate::config::{Config, ConfigError, Variable};
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
            let value = match variable {
                Variable::Value(value) => value.expose().to_string(),
                Variable::Env { env } => std::env::var(env).map_err(|error| {
                    let why = match error {
                        std::env::VarError::NotPresent => "is not set",
                        std::env::VarError::NotUnicode(_) => "is not valid Unicode",
                    };
                    ConfigError::invalid(
                        path,
                        &format!("variables.{name}"),
                        format!("the environment variable {env} {why}"),
                    )
                })?,
            };
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

impl store::Host for DataView<'_> {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, Error>> {
        Ok(Ok(self.granted.variables.0.get(&key).cloned()))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, Error>> {
        let all = self.granted.variables.0.iter();
        Ok(Ok(all.map(|(k, v)| (k.clone(), v.clone())).collect()))
    }
}
