//! The storage trait shared by session resume and the session-state service
//! (DESIGN.md, "Stores"), and its backends: in memory, redb, Redis.

#[cfg(feature = "redis")]
mod local_redis;
mod memory;
#[cfg(feature = "redb")]
mod redb_store;
#[cfg(feature = "redis")]
mod redis_store;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

#[cfg(feature = "redis")]
pub use local_redis::LocalRedis;
pub use memory::MemoryStore;
#[cfg(feature = "redb")]
pub use redb_store::RedbStore;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;

use crate::ResumeError;

/// A value and the version it was written with. Versions grow with every write of a key
/// and are never reused for it, even after the key was deleted or expired: a writer that
/// read version `n` cannot overwrite a value written after `n` by mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Bytes,
    /// The version of this value (at least 1).
    pub version: u64,
}

/// A versioned key-value store with time-to-live and lease locks.
///
/// Values and locks live in separate namespaces: locking `k` does not touch the value of
/// `k`. Every method is atomic with respect to the others, across every process that
/// shares the backend.
///
/// Times to live and leases run on the backend's clock: the tokio clock for
/// [`MemoryStore`] (paused time controls it), the wall clock of the process for
/// `RedbStore` (replaceable with `RedbStore::with_clock`), the clock of the Redis server for
/// `RedisStore`. A time to live of zero writes a value that is expired at once.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The value under `key` and its version, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, ResumeError>;

    /// Writes `value` under `key` if its current version is `expected` (`None`: the key
    /// must be absent or expired), with an optional time to live. Returns the new version;
    /// a mismatch is [`ResumeError::Conflict`] and changes nothing.
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<u64>,
        ttl: Option<Duration>,
    ) -> Result<u64, ResumeError>;

    /// Writes `value` under `key` whatever its version, with an optional time to live.
    /// Returns the new version.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>)
        -> Result<u64, ResumeError>;

    /// Removes `key`; `true` if it was present.
    async fn delete(&self, key: &str) -> Result<bool, ResumeError>;

    /// Takes the lock on `key` for `owner` for `lease`, if it is free, expired, or already
    /// held by `owner` (then the lease is renewed). `true` if `owner` holds it now.
    async fn try_lock(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, ResumeError>;

    /// Releases the lock on `key` if `owner` holds it; `true` if it was released.
    async fn unlock(&self, key: &str, owner: &str) -> Result<bool, ResumeError>;
}

/// `d` in whole milliseconds, rounded up so that a short non-zero duration never becomes
/// zero; saturates at `u64::MAX`.
#[cfg(any(feature = "redb", feature = "redis"))]
fn millis_ceil(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}
