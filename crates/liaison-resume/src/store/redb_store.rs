//! The embedded [`Store`]: one redb file that survives a restart of the process.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redb::{Database, ReadableTable, TableDefinition};
use async_trait::async_trait;
use bytes::Bytes;

use super::{millis_ceil, Store, Versioned};
use crate::ResumeError;

/// Values: key → (version, expiry in wall-clock milliseconds since the Unix epoch or `None`
/// for no expiry, bytes).
const VALUES: TableDefinition<'_, &str, (u64, Option<u64>, &[u8])> =
    TableDefinition::new("liaison_values");
/// Locks: key → (owner, expiry in wall-clock milliseconds since the Unix epoch).
const LOCKS: TableDefinition<'_, &str, (&str, u64)> = TableDefinition::new("liaison_locks");
/// Counters of the store itself.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("liaison_meta");
/// The last version handed out, for any key (so versions are never reused).
const LAST_VERSION: &str = "last_version";

/// Where the store reads the time from.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What an operation running on the blocking pool returns: redb's own failures outside,
/// the store's answers (including conflicts) inside.
type Outcome<T> = Result<Result<T, ResumeError>, Failure>;

/// A failure of redb, boxed (redb's error is large) and converted from any of redb's
/// error types by `?`.
struct Failure(Box<::redb::Error>);

impl<E: Into<::redb::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self(Box::new(e.into()))
    }
}

/// A [`Store`] in a redb file: the embedded backend. It needs no server and keeps
/// everything across a restart of the process; only one process may open a file at a time.
///
/// Expiry times (of values and of locks) are stored as wall-clock milliseconds since the
/// Unix epoch, read from [`SystemTime`] unless [`RedbStore::with_clock`] replaces it. A
/// value or lock is dead from its expiry on: reads skip it, writes replace it, and
/// [`RedbStore::purge_expired`] removes the ones nobody touched.
///
/// Every operation runs in one redb transaction on tokio's blocking pool
/// ([`tokio::task::spawn_blocking`]): redb calls block on disk I/O and on the file's single
/// writer, and the blocking pool keeps them off the async workers on every runtime flavour
/// (unlike `block_in_place`, which panics on a current-thread runtime). A conditional write
/// reads and writes in the same write transaction, so it is atomic. Clones share the file.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), liaison_resume::ResumeError> {
/// use bytes::Bytes;
/// use liaison_resume::{RedbStore, Store};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("sessions.redb");
/// let store = RedbStore::create(&path)?;
/// let v1 = store.put("k", Bytes::from_static(b"one"), None, None).await?;
/// drop(store);
///
/// // A restarted process sees everything.
/// let store = RedbStore::open(&path)?;
/// assert_eq!(store.get("k").await?.map(|v| v.version), Some(v1));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    clock: Clock,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the store in the existing file at `path`; an absent file is an error. Blocks
    /// on file I/O (and on a repair after a crash): call it at startup.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ResumeError> {
        let path = path.as_ref();
        let db = Database::open(path).map_err(|e| backend(format!("{}: {e}", path.display())))?;
        tracing::debug!(path = %path.display(), "opened redb store");
        Self::init(db)
    }

    /// Opens the store in the file at `path`, creating the file if it is absent. Blocks on
    /// file I/O: call it at startup.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, ResumeError> {
        let path = path.as_ref();
        let db = Database::create(path).map_err(|e| backend(format!("{}: {e}", path.display())))?;
        tracing::debug!(path = %path.display(), "created or opened redb store");
        Self::init(db)
    }

    /// Replaces the wall clock that expiry reads (for tests and simulations). The clock
    /// must not run backwards by much: expiry times already stored stay as written.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Removes every expired value and lock from the file; returns how many it removed.
    /// Reads already treat them as absent: this only gives the space back.
    pub async fn purge_expired(&self) -> Result<usize, ResumeError> {
        self.run(|db, clock| {
            let txn = db.begin_write()?;
            let now = now_ms(clock);
            let mut removed = 0;
            txn.open_table(VALUES)?.retain(|_, (_, expires, _)| {
                let keep = live(expires, now);
                removed += usize::from(!keep);
                keep
            })?;
            txn.open_table(LOCKS)?.retain(|_, (_, expires)| {
                let keep = live(Some(expires), now);
                removed += usize::from(!keep);
                keep
            })?;
            txn.commit()?;
            Ok(Ok(removed))
        })
        .await
    }

    fn init(db: Database) -> Result<Self, ResumeError> {
        // Create the tables up front so that read transactions always find them.
        let create = || -> Result<(), Failure> {
            let txn = db.begin_write()?;
            txn.open_table(VALUES)?;
            txn.open_table(LOCKS)?;
            txn.open_table(META)?;
            txn.commit()?;
            Ok(())
        };
        create().map_err(|Failure(e)| backend(e.to_string()))?;
        Ok(Self {
            db: Arc::new(db),
            clock: Arc::new(SystemTime::now),
        })
    }

    /// Runs `op` on the blocking pool with the database and the clock.
    async fn run<T, F>(&self, op: F) -> Result<T, ResumeError>
    where
        T: Send + 'static,
        F: FnOnce(&Database, &Clock) -> Outcome<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let clock = Arc::clone(&self.clock);
        tokio::task::spawn_blocking(move || op(&db, &clock))
            .await
            .map_err(|e| backend(format!("store task failed: {e}")))?
            .map_err(|Failure(e)| backend(e.to_string()))?
    }

    /// The conditional (`Some(expected)`) or unconditional (`None`) write.
    async fn write(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Option<u64>>,
        ttl: Option<Duration>,
    ) -> Result<u64, ResumeError> {
        let key = key.to_owned();
        self.run(move |db, clock| {
            let txn = db.begin_write()?;
            let now = now_ms(clock);
            let written = {
                let mut values = txn.open_table(VALUES)?;
                let current = values.get(key.as_str())?.and_then(|entry| {
                    let (version, expires, _) = entry.value();
                    live(expires, now).then_some(version)
                });
                match expected {
                    Some(expected) if expected != current => None,
                    _ => {
                        let mut meta = txn.open_table(META)?;
                        let last = meta.get(LAST_VERSION)?.map_or(0, |v| v.value());
                        let Some(version) = last.checked_add(1) else {
                            return Ok(Err(backend("versions exhausted".to_owned())));
                        };
                        meta.insert(LAST_VERSION, version)?;
                        let expires = ttl.map(|ttl| now.saturating_add(millis_ceil(ttl)));
                        values.insert(key.as_str(), (version, expires, value.as_ref()))?;
                        Some(version)
                    }
                }
                .ok_or(current)
            };
            match written {
                Ok(version) => {
                    txn.commit()?;
                    Ok(Ok(version))
                }
                Err(current) => {
                    txn.abort()?;
                    tracing::trace!(key, ?expected, ?current, "conditional write refused");
                    Ok(Err(ResumeError::Conflict {
                        key,
                        expected: expected.flatten(),
                        current,
                    }))
                }
            }
        })
        .await
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, ResumeError> {
        let key = key.to_owned();
        self.run(move |db, clock| {
            let txn = db.begin_read()?;
            let now = now_ms(clock);
            let values = txn.open_table(VALUES)?;
            let found = values.get(key.as_str())?.and_then(|entry| {
                let (version, expires, value) = entry.value();
                live(expires, now).then(|| Versioned {
                    value: Bytes::copy_from_slice(value),
                    version,
                })
            });
            Ok(Ok(found))
        })
        .await
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
        let key = key.to_owned();
        self.run(move |db, clock| {
            let txn = db.begin_write()?;
            let now = now_ms(clock);
            let removed = txn
                .open_table(VALUES)?
                .remove(key.as_str())?
                .map(|entry| live(entry.value().1, now));
            match removed {
                Some(present) => {
                    txn.commit()?;
                    Ok(Ok(present))
                }
                None => {
                    txn.abort()?;
                    Ok(Ok(false))
                }
            }
        })
        .await
    }

    async fn try_lock(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, ResumeError> {
        let key = key.to_owned();
        let owner = owner.to_owned();
        self.run(move |db, clock| {
            let txn = db.begin_write()?;
            let now = now_ms(clock);
            let taken = {
                let mut locks = txn.open_table(LOCKS)?;
                let free = locks.get(key.as_str())?.is_none_or(|lock| {
                    let (holder, expires) = lock.value();
                    holder == owner || !live(Some(expires), now)
                });
                if free {
                    let expires = now.saturating_add(millis_ceil(lease));
                    locks.insert(key.as_str(), (owner.as_str(), expires))?;
                }
                free
            };
            if taken {
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok(Ok(taken))
        })
        .await
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<bool, ResumeError> {
        let key = key.to_owned();
        let owner = owner.to_owned();
        self.run(move |db, clock| {
            let txn = db.begin_write()?;
            let now = now_ms(clock);
            let (held, remove) = {
                let mut locks = txn.open_table(LOCKS)?;
                let (held, expired) = locks.get(key.as_str())?.map_or((false, false), |lock| {
                    let (holder, expires) = lock.value();
                    let live = live(Some(expires), now);
                    (live && holder == owner, !live)
                });
                if held || expired {
                    locks.remove(key.as_str())?;
                }
                (held, held || expired)
            };
            if remove {
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok(Ok(held))
        })
        .await
    }
}

/// The clock's time in milliseconds since the Unix epoch (0 before it).
fn now_ms(clock: &Clock) -> u64 {
    clock()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether something expiring at `expires` is alive at `now`.
fn live(expires: Option<u64>, now: u64) -> bool {
    expires.is_none_or(|t| t > now)
}

fn backend(message: String) -> ResumeError {
    ResumeError::Backend {
        backend: "redb",
        message,
    }
}
