//! Connections to Redis or Valkey, for what replicas share: the key-value
//! stores of `[keyvalue.NAME] url` and the cache's second tier. A pool
//! (deadpool-redis) of multiplexed connections per server, and every
//! command bounded in time, so a Redis that hangs fails a request instead
//! of holding it.

use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use redis::IntoConnectionInfo;
use std::time::Duration;
use wasmtime::Result;
use wasmtime::error::Context;

/// How long one command may take, the wait for a pooled connection
/// included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `url` is one this client can use, without saying what is in it
/// (it may hold a password).
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("redis" | "valkey" | "unix" | "redis+unix" | "valkey+unix") => url
            .into_connection_info()
            .map(|_| ())
            .map_err(|_| "is not a Redis URL (`redis://[user:password@]host[:port][/db]`)".into()),
        Some("rediss" | "valkeys") => Err(
            "TLS to Redis is not built in: use `redis://` on a private network, or a `unix://` socket"
                .into(),
        ),
        _ => Err("must start with `redis://`, `valkey://` or `unix://`".into()),
    }
}

/// A pool of up to `size` connections to one server; nothing connects
/// until the first command.
pub(crate) fn pool(url: &str, size: usize) -> Result<Pool> {
    let mut config = deadpool_redis::Config::from_url(url);
    config.pool = Some(PoolConfig {
        max_size: size,
        timeouts: Timeouts {
            wait: Some(COMMAND_TIMEOUT),
            create: Some(COMMAND_TIMEOUT),
            recycle: Some(COMMAND_TIMEOUT),
        },
        ..PoolConfig::default()
    });
    config
        .create_pool(Some(Runtime::Tokio1))
        .context("the Redis URL cannot be used")
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("no connection to Redis: {0}")]
    NoConnection(String),
    #[error("Redis did not answer within {COMMAND_TIMEOUT:?}")]
    Timeout,
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
}

/// Run `command` on a pooled connection, within [`COMMAND_TIMEOUT`].
pub(crate) async fn with_connection<T>(
    pool: &Pool,
    command: impl AsyncFnOnce(&mut deadpool_redis::Connection) -> redis::RedisResult<T>,
) -> Result<T, Failure> {
    let run = async {
        let mut connection =
            (pool.get().await).map_err(|e| Failure::NoConnection(e.to_string()))?;
        Ok(command(&mut connection).await?)
    };
    (tokio::time::timeout(COMMAND_TIMEOUT, run).await).map_err(|_| Failure::Timeout)?
}
