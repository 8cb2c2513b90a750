//! The in-memory [`Store`]: a map behind a mutex, with expiry on the tokio clock (so tests
//! with paused time control it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use super::{Store, Versioned};
use crate::ResumeError;

#[derive(Debug)]
struct Entry {
    value: Bytes,
    version: u64,
    expires: Option<Instant>,
}

#[derive(Debug)]
struct Lock {
    owner: String,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    values: HashMap<String, Entry>,
    locks: HashMap<String, Lock>,
    /// The last version handed out, for any key: versions are never reused, even for a
    /// key deleted or expired and written again.
    last_version: u64,
}

impl Inner {
    /// The live entry under `key`, dropping it if it expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        if self
            .values
            .get(key)
            .is_some_and(|e| e.expires.is_some_and(|t| t <= now))
        {
            self.values.remove(key);
        }
        self.values.get(key)
    }

    fn write(&mut self, key: &str, value: Bytes, ttl: Option<Duration>, now: Instant) -> u64 {
        self.last_version += 1;
        let version = self.last_version;
        // A time to live past the end of the clock never expires.
        let expires = ttl.and_then(|ttl| now.checked_add(ttl));
        self.values.insert(
            key.to_owned(),
            Entry {
                value,
                version,
                expires,
            },
        );
        version
    }
}

/// `now + d`, or a point a century ahead when that is past the end of the clock.
fn far_add(now: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(d.min(CENTURY))
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// A [`Store`] that lives in this process: the default for tests and single-process use.
/// Clones are separate stores; share one through an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written entry: every
        // operation is one map call. Go on with the data as it is.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, ResumeError> {
        let now = Instant::now();
        Ok(self.inner().live(key, now).map(|e| Versioned {
            value: e.value.clone(),
            version: e.version,
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<u64>,
        ttl: Option<Duration>,
    ) -> Result<u64, ResumeError> {
        let now = Instant::now();
        let mut inner = self.inner();
        let current = inner.live(key, now).map(|e| e.version);
        if current != expected {
            return Err(ResumeError::Conflict {
                key: key.to_owned(),
                expected,
                current,
            });
        }
        Ok(inner.write(key, value, ttl, now))
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<u64, ResumeError> {
        let now = Instant::now();
        Ok(self.inner().write(key, value, ttl, now))
    }

    async fn delete(&self, key: &str) -> Result<bool, ResumeError> {
        let now = Instant::now();
        let mut inner = self.inner();
        let present = inner.live(key, now).is_some();
        inner.values.remove(key);
        Ok(present)
    }

    async fn try_lock(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, ResumeError> {
        let now = Instant::now();
        let mut inner = self.inner();
        let free = inner
            .locks
            .get(key)
            .is_none_or(|lock| lock.owner == owner || lock.expires <= now);
        if free {
            inner.locks.insert(
                key.to_owned(),
                Lock {
                    owner: owner.to_owned(),
                    expires: far_add(now, lease),
                },
            );
        }
        Ok(free)
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<bool, ResumeError> {
        let now = Instant::now();
        let mut inner = self.inner();
        let held = inner
            .locks
            .get(key)
            .is_some_and(|lock| lock.owner == owner && lock.expires > now);
        if held || inner.locks.get(key).is_some_and(|lock| lock.expires <= now) {
            inner.locks.remove(key);
        }
        Ok(held)
    }
}
