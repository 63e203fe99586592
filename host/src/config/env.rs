//! `[server]` keys from the environment, as containers are configured:
//! `SWITCHYARD_SERVER_SHUTDOWN_TIMEOUT=20s` is `[server] shutdown_timeout
//! = "20s"`, over the file's value. A value is read as a TOML number or
//! boolean when it is one, else as a string; an unknown key or a bad value
//! is an error naming the variable.

/// The prefix of the variables that set `[server]` keys.
const PREFIX: &str = "SWITCHYARD_SERVER_";

/// A `[server]` key set from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOverride {
    /// The variable, `SWITCHYARD_SERVER_SHUTDOWN_TIMEOUT`.
    pub variable: String,
    /// The key, `shutdown_timeout`.
    pub key: String,
    /// The value as written.
    pub value: String,
}

/// The overrides among `vars` (the process's: `std::env::vars()`), in the
/// order of their keys.
pub fn server_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<ServerOverride> {
    let mut overrides: Vec<ServerOverride> = vars
        .into_iter()
        .filter_map(|(variable, value)| {
            let key = variable.strip_prefix(PREFIX)?.to_ascii_lowercase();
            Some(ServerOverride {
                variable,
                key,
                value,
            })
        })
        .collect();
    overrides.sort_by(|a, b| a.key.cmp(&b.key));
    overrides
}

/// Put `overrides` into the `[server]` table of `table`.
pub(super) fn apply(table: &mut toml::Table, overrides: &[ServerOverride]) -> Result<(), String> {
    let server = table
        .entry("server")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(server) = server.as_table_mut() else {
        return Err("`server` must be a table to take SWITCHYARD_SERVER_* variables".into());
    };
    for ServerOverride { key, value, .. } in overrides {
        server.insert(key.clone(), typed(value));
    }
    Ok(())
}

/// `value` as TOML: a number or boolean when it reads as one, else a string.
fn typed(value: &str) -> toml::Value {
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut table| table.remove("v"));
    match parsed {
        Some(
            number @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)),
        ) => number,
        _ => toml::Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_name_server_keys_and_values_keep_their_type() {
        let vars = [
            ("SWITCHYARD_SERVER_SHUTDOWN_TIMEOUT", "20s"),
            ("SWITCHYARD_SERVER_MAX_CONNECTIONS", "100"),
            ("SWITCHYARD_SERVER_ACCESS_LOG", "true"),
            ("PATH", "/bin"),
        ];
        let overrides = server_overrides(vars.map(|(k, v)| (k.to_string(), v.to_string())));
        let keys: Vec<&str> = overrides.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["access_log", "max_connections", "shutdown_timeout"]);
        let mut table = toml::Table::new();
        apply(&mut table, &overrides).unwrap();
        let server = table["server"].as_table().unwrap();
        assert_eq!(server["max_connections"], toml::Value::Integer(100));
        assert_eq!(server["access_log"], toml::Value::Boolean(true));
        assert_eq!(
            server["shutdown_timeout"],
            toml::Value::String("20s".into())
        );
    }
}
