//! Redis or Valkey as a store that replicas share: a pool of connections
//! (deadpool-redis), one hash per store (`switchyard:kv:NAME`), so a store
//! counts its keys in O(1) (`HLEN`) and lists them with `HSCAN`. Writes
//! that may add a key are Lua scripts, so the `max_keys` check and the
//! write are one atomic step on the server, as are increments and
//! compare-and-swap.

use super::{Backend, BackendError, Swapped};
use crate::shared_redis::{self, Failure};
use async_trait::async_trait;
use deadpool_redis::Pool;
use redis::Script;
use std::sync::LazyLock;
use wasmtime::Result;

/// Run `command` on a pooled connection, its failure as the store's.
async fn with_connection<T>(
    pool: &Pool,
    command: impl AsyncFnOnce(&mut deadpool_redis::Connection) -> redis::RedisResult<T>,
) -> Result<T, BackendError> {
    shared_redis::with_connection(pool, command)
        .await
        .map_err(|failure| match failure {
            Failure::Redis(error) => redis_error(error),
            failure => BackendError::Other(failure.to_string()),
        })
}

/// Our scripts' own errors by name; Redis's by its message.
fn redis_error(error: redis::RedisError) -> BackendError {
    let text = error.to_string();
    if text.contains("SWITCHYARD_FULL") {
        BackendError::Full
    } else if text.contains("SWITCHYARD_TOO_MUCH") {
        BackendError::TooMuch
    } else if text.contains("SWITCHYARD_BELOW_ZERO") {
        BackendError::NotANumber("the counter would go below zero".into())
    } else if text.contains("not an integer") || text.contains("overflow") {
        BackendError::NotANumber("the value is not a decimal integer, or the sum overflows".into())
    } else {
        BackendError::Other(text)
    }
}

/// `KEYS[1]` the hash, `ARGV[1]` the most bytes, then the keys: their
/// values, unless they add up to more (then nothing is sent).
static GET_MANY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local total = 0
for i = 2, #ARGV do
  total = total + redis.call('HSTRLEN', KEYS[1], ARGV[i])
  if total > tonumber(ARGV[1]) then return redis.error_reply('SWITCHYARD_TOO_MUCH') end
end
return redis.call('HMGET', KEYS[1], unpack(ARGV, 2))",
    )
});

/// `KEYS[1]` the hash, `ARGV` the cursor and the page size: `{next,
/// keys}`, the keys only (`HSCAN` sends the values too; `NOVALUES` needs
/// Redis 7.4). A key may come twice across pages, as with `HSCAN`.
static LIST_KEYS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local page = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local keys = {}
for i = 1, #page[2], 2 do keys[#keys + 1] = page[2][i] end
return {page[1], keys}",
    )
});

/// `KEYS[1]` the hash, `ARGV[1]` `max_keys`, then key, value pairs.
static SET_MANY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local new = 0
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then new = new + 1 end
end
if new > 0 and redis.call('HLEN', KEYS[1]) + new > tonumber(ARGV[1]) then
  return redis.error_reply('SWITCHYARD_FULL')
end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1",
    )
});

/// `KEYS[1]` the hash, `ARGV` `max_keys`, key, delta, `1` when the counter
/// may not go below zero.
static INCREMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0
   and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return redis.error_reply('SWITCHYARD_FULL')
end
if ARGV[4] == '1' then
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
  if current and current + tonumber(ARGV[3]) < 0 then
    return redis.error_reply('SWITCHYARD_BELOW_ZERO')
  end
end
return redis.call('HINCRBY', KEYS[1], ARGV[2], ARGV[3])",
    )
});

/// `KEYS[1]` the hash, `ARGV` `max_keys`, key, `1` if a value is expected
/// (else `0`), the expected value, the new value. `{1}` when swapped, else
/// `{0, current}` (current `false` when absent).
static COMPARE_AND_SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local current = redis.call('HGET', KEYS[1], ARGV[2])
local matches
if ARGV[3] == '1' then matches = (current == ARGV[4]) else matches = (current == false) end
if not matches then return {0, current} end
if current == false and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return redis.error_reply('SWITCHYARD_FULL')
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[5])
return {1}",
    )
});

/// A store in a Redis hash.
pub(crate) struct Redis {
    pool: Pool,
    hash: String,
}

impl Redis {
    /// A pool of up to `size` connections for the store `name`; nothing
    /// connects until the first command.
    pub(crate) fn open(url: &str, name: &str, size: usize) -> Result<Self> {
        Ok(Self {
            pool: shared_redis::pool(url, size)?,
            hash: format!("switchyard:kv:{name}"),
        })
    }
}

#[async_trait]
impl Backend for Redis {
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        with_connection(&self.pool, async |c| {
            GET_MANY
                .key(&self.hash)
                .arg(super::MAX_BATCH_BYTES)
                .arg(&keys)
                .invoke_async(c)
                .await
        })
        .await
    }

    async fn set_many(
        &self,
        pairs: Vec<(String, Vec<u8>)>,
        max_keys: u64,
    ) -> Result<(), BackendError> {
        with_connection(&self.pool, async |c| {
            let mut call = SET_MANY.key(&self.hash);
            call.arg(max_keys);
            for (key, value) in &pairs {
                call.arg(key).arg(value.as_slice());
            }
            call.invoke_async::<()>(c).await
        })
        .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<(), BackendError> {
        if keys.is_empty() {
            return Ok(());
        }
        with_connection(&self.pool, async |c| {
            redis::cmd("HDEL")
                .arg(&self.hash)
                .arg(&keys)
                .query_async(c)
                .await
        })
        .await
    }

    async fn exists(&self, key: String) -> Result<bool, BackendError> {
        with_connection(&self.pool, async |c| {
            redis::cmd("HEXISTS")
                .arg(&self.hash)
                .arg(&key)
                .query_async(c)
                .await
        })
        .await
    }

    async fn list_keys(
        &self,
        cursor: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), BackendError> {
        let start: u64 = match cursor {
            Some(cursor) => cursor
                .parse()
                .map_err(|_| BackendError::Other("not a cursor this store gave".into()))?,
            None => 0,
        };
        let (next, keys): (u64, Vec<String>) = with_connection(&self.pool, async |c| {
            LIST_KEYS
                .key(&self.hash)
                .arg(start)
                .arg(super::PAGE)
                .invoke_async(c)
                .await
        })
        .await?;
        Ok((keys, (next != 0).then(|| next.to_string())))
    }

    async fn increment(
        &self,
        key: String,
        delta: i64,
        unsigned: bool,
        max_keys: u64,
    ) -> Result<i64, BackendError> {
        with_connection(&self.pool, async |c| {
            INCREMENT
                .key(&self.hash)
                .arg(max_keys)
                .arg(&key)
                .arg(delta)
                .arg(if unsigned { "1" } else { "0" })
                .invoke_async(c)
                .await
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        max_keys: u64,
    ) -> Result<Swapped, BackendError> {
        let (swapped, current): (i64, Option<Vec<u8>>) = with_connection(&self.pool, async |c| {
            let mut call = COMPARE_AND_SWAP.key(&self.hash);
            call.arg(max_keys).arg(&key);
            match &expected {
                Some(expected) => call.arg("1").arg(expected.as_slice()),
                None => call.arg("0").arg(""),
            };
            let answer: Vec<redis::Value> = call.arg(value.as_slice()).invoke_async(c).await?;
            let swapped = answer
                .first()
                .map(redis::from_redis_value_ref)
                .transpose()?;
            let current = match answer.get(1) {
                Some(redis::Value::BulkString(bytes)) => Some(bytes.clone()),
                _ => None,
            };
            Ok((swapped.unwrap_or(0), current))
        })
        .await?;
        Ok(if swapped == 1 {
            Swapped::Yes
        } else {
            Swapped::No(current)
        })
    }
}
