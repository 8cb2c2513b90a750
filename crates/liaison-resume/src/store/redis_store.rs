//! The shared [`Store`] of a server fleet: a Redis server, written through Lua scripts so
//! that every conditional step is atomic on the server.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, RedisError, Script};
use async_trait::async_trait;
use bytes::Bytes;

use super::{millis_ceil, Store, Versioned};
use crate::ResumeError;

/// The prefix of every key the store writes, unless [`RedisStore::with_prefix`] sets another.
const DEFAULT_PREFIX: &str = "liaison:";

/// How long connecting, and each command, may take before it fails.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a failed (re)connection is retried, a second or two apart, before the
/// waiting calls fail. Together with [`TIMEOUT`] this bounds how long a call waits for a
/// lost server (the `redis` crate's own defaults add up to minutes).
const RECONNECT_RETRIES: usize = 2;
/// The longest pause between two reconnection attempts, in milliseconds.
const RECONNECT_MAX_DELAY_MS: u64 = 1_000;

/// The longest time to live or lease the store sets (about a century): Redis refuses
/// expiry times past the range of its clock.
const MAX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// Conditional or unconditional write of a value hash.
///
/// KEYS[1]: the value hash, KEYS[2]: the version counter.
/// ARGV[1]: the bytes; ARGV[2]: `put` (conditional) or `set`; ARGV[3]: the expected version,
/// empty for "absent"; ARGV[4]: the time to live in milliseconds, empty for none.
/// Returns `{1, new version}` or, on a mismatch, `{0, current version or 0}`.
const WRITE: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if ARGV[2] == 'put' and (current or '') ~= ARGV[3] then
  return {0, tonumber(current or '0')}
end
local version = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', version)
if ARGV[4] == '' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return {1, version}
";

/// Takes or renews a lock (SET NX PX, or the same owner renewing).
///
/// KEYS[1]: the lock key. ARGV[1]: the owner; ARGV[2]: the lease in milliseconds.
/// Returns 1 if the owner holds the lock now (or held it for a zero lease), else 0.
const LOCK: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder ~= false and holder ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
";

/// Compare-and-delete of a lock.
///
/// KEYS[1]: the lock key. ARGV[1]: the owner. Returns 1 if it was released, else 0.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

#[derive(Debug)]
struct Scripts {
    write: Script,
    lock: Script,
    unlock: Script,
}

/// A [`Store`] on a Redis server: the backend for a fleet of servers behind a load
/// balancer, where a client may resume on any node.
///
/// Key layout, under a prefix (`liaison:` by default): a value is a hash
/// `{prefix}v:{key}` with the fields `value` and `version`, expiring through `PEXPIRE`; a
/// lock is a string `{prefix}l:{key}` holding its owner, expiring with its lease; the last
/// version handed out is the counter `{prefix}meta:version`, so versions are never reused.
/// Conditional writes, lock and unlock are Lua scripts, atomic on the server. Expiry runs
/// on the server's clock. A single server (or a primary) is expected: the scripts touch
/// two keys that a Redis Cluster may place on different nodes.
///
/// The connection is a [`ConnectionManager`]: it reconnects when the connection breaks,
/// and clones share it. Connecting and every command time out after a few seconds, and a
/// lost server is retried twice, so a call to a server that is gone ends in
/// [`ResumeError::Backend`] within seconds, never a hang.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), liaison_resume::ResumeError> {
/// use bytes::Bytes;
/// use liaison_resume::{RedisStore, Store};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/")
///     .await?
///     .with_prefix("myapp:sessions:");
/// let v1 = store.put("k", Bytes::from_static(b"one"), None, None).await?;
/// assert_eq!(store.get("k").await?.map(|v| v.version), Some(v1));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    scripts: Arc<Scripts>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://host:port/db`, see the `redis`
    /// crate for the forms it accepts), with the key prefix `liaison:`.
    pub async fn connect(url: &str) -> Result<Self, ResumeError> {
        let client = Client::open(url).map_err(backend)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_factor(2)
            .set_max_delay(RECONNECT_MAX_DELAY_MS);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(backend)?;
        tracing::debug!(url, "connected redis store");
        Ok(Self {
            conn,
            prefix: Arc::from(DEFAULT_PREFIX),
            scripts: Arc::new(Scripts {
                write: Script::new(WRITE),
                lock: Script::new(LOCK),
                unlock: Script::new(UNLOCK),
            }),
        })
    }

    /// The same store with every key under `prefix` instead (stores with different
    /// prefixes on one server do not see each other's keys).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of the hash that holds the value of `key` (to inspect it with other
    /// tools).
    pub fn value_key(&self, key: &str) -> String {
        format!("{}v:{key}", self.prefix)
    }

    /// The Redis key that holds the owner of the lock on `key`.
    pub fn lock_key(&self, key: &str) -> String {
        format!("{}l:{key}", self.prefix)
    }

    fn counter_key(&self) -> String {
        format!("{}meta:version", self.prefix)
    }

    async fn write(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Option<u64>>,
        ttl: Option<Duration>,
    ) -> Result<u64, ResumeError> {
        let (mode, expected_arg) = match expected {
            Some(expected) => ("put", expected.map(|v| v.to_string()).unwrap_or_default()),
            None => ("set", String::new()),
        };
        let ttl_arg = ttl
            .map(|ttl| millis_ceil(ttl).min(MAX_MS).to_string())
            .unwrap_or_default();
        let (written, version): (u8, u64) = self
            .scripts
            .write
            .key(self.value_key(key))
            .key(self.counter_key())
            .arg(value.as_ref())
            .arg(mode)
            .arg(expected_arg)
            .arg(ttl_arg)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        if written == 1 {
            Ok(version)
        } else {
            let current = (version != 0).then_some(version);
            tracing::trace!(key, ?expected, ?current, "conditional write refused");
            Err(ResumeError::Conflict {
                key: key.to_owned(),
                expected: expected.flatten(),
                current,
            })
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, ResumeError> {
        let (value, version): (Option<Vec<u8>>, Option<u64>) = ::redis::cmd("HMGET")
            .arg(self.value_key(key))
            .arg("value")
            .arg("version")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(value.zip(version).map(|(value, version)| Versioned {
            value: Bytes::from(value),
            version,
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<u64>,
        ttl: Option<Duration>,
    ) -> Result<u64, ResumeError> {
        self.write(key, value, Some(expected), ttl).await
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<u64, ResumeError> {
        self.write(key, value, None, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<bool, ResumeError> {
        let removed: u64 = self
            .conn
            .clone()
            .del(self.value_key(key))
            .await
            .map_err(backend)?;
        Ok(removed > 0)
    }

    async fn try_lock(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, ResumeError> {
        let taken: u8 = self
            .scripts
            .lock
            .key(self.lock_key(key))
            .arg(owner)
            .arg(millis_ceil(lease).min(MAX_MS))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(taken == 1)
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<bool, ResumeError> {
        let released: u8 = self
            .scripts
            .unlock
            .key(self.lock_key(key))
            .arg(owner)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(released == 1)
    }
}

fn backend(e: RedisError) -> ResumeError {
    ResumeError::Backend {
        backend: "redis",
        message: e.to_string(),
    }
}
