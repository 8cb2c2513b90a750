//! The store conformance harness: one backend under test with a way to let time pass, and
//! the checks every backend must pass.

#![allow(dead_code)] // Each test binary uses part of the harness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use liaison_resume::{MemoryStore, ResumeError, Store};

/// A backend under test and what keeps it alive.
pub(crate) struct Backend {
    pub(crate) store: Arc<dyn Store>,
    time: Time,
    /// A temporary directory or a server that must outlive the store.
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

/// How a test lets time pass for a backend.
enum Time {
    /// The tokio clock, paused: `advance` moves it.
    Tokio,
    /// A manual wall clock: milliseconds added to a fixed start.
    Manual(Arc<AtomicU64>),
    /// Redis' own clock, which a test cannot move: each named key's remaining time to live
    /// (PTTL) is shortened by the time passed instead.
    #[cfg(feature = "redis")]
    Redis {
        conn: redis::aio::MultiplexedConnection,
        store: liaison_resume::RedisStore,
    },
}

/// A key whose expiry matters when time passes (only Redis needs to be told).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key<'a> {
    Value(&'a str),
    Lock(&'a str),
}

/// A memory store; tests using it run with paused tokio time.
pub(crate) fn memory() -> Backend {
    Backend {
        store: Arc::new(MemoryStore::new()),
        time: Time::Tokio,
        _keep: Box::new(()),
    }
}

/// A redb store in a fresh temporary file, on a manual clock.
#[cfg(feature = "redb")]
pub(crate) fn redb() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let (clock, offset) = manual_clock();
    let store = liaison_resume::RedbStore::create(dir.path().join("store.redb"))
        .unwrap()
        .with_clock(clock);
    Backend {
        store: Arc::new(store),
        time: Time::Manual(offset),
        _keep: Box::new(dir),
    }
}

/// A manual wall clock (starting at a fixed instant) and the milliseconds it has moved.
pub(crate) fn manual_clock() -> (
    impl Fn() -> SystemTime + Send + Sync + 'static,
    Arc<AtomicU64>,
) {
    let offset = Arc::new(AtomicU64::new(0));
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let moved = Arc::clone(&offset);
    let clock = move || start + Duration::from_millis(moved.load(Ordering::SeqCst));
    (clock, offset)
}

/// A Redis store on a private server started for this test.
#[cfg(feature = "redis")]
pub(crate) async fn redis() -> Backend {
    let server = liaison_resume::LocalRedis::start().await.unwrap();
    let store = liaison_resume::RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_prefix("conformance:");
    let conn = redis_connection(&server.url()).await;
    Backend {
        store: Arc::new(store.clone()),
        time: Time::Redis { conn, store },
        _keep: Box::new(server),
    }
}

/// A plain connection, to look at what the store wrote.
#[cfg(feature = "redis")]
pub(crate) async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

impl Backend {
    /// Lets `d` pass for the store (for Redis: for the keys named).
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) async fn pass(&self, d: Duration, keys: &[Key<'_>]) {
        match &self.time {
            Time::Tokio => tokio::time::advance(d).await,
            Time::Manual(offset) => {
                offset.fetch_add(u64::try_from(d.as_millis()).unwrap(), Ordering::SeqCst);
            }
            #[cfg(feature = "redis")]
            Time::Redis { conn, store } => {
                let mut conn = conn.clone();
                for key in keys {
                    let name = match key {
                        Key::Value(k) => store.value_key(k),
                        Key::Lock(k) => store.lock_key(k),
                    };
                    let pttl: i64 = redis::cmd("PTTL")
                        .arg(&name)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    if pttl < 0 {
                        continue; // absent or without expiry
                    }
                    let left = pttl - i64::try_from(d.as_millis()).unwrap();
                    // PEXPIRE with zero or less deletes the key, as expiry would.
                    let _: i64 = redis::cmd("PEXPIRE")
                        .arg(&name)
                        .arg(left)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                }
            }
        }
    }
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

async fn value(store: &dyn Store, key: &str) -> Option<(Bytes, u64)> {
    store.get(key).await.unwrap().map(|v| (v.value, v.version))
}

fn assert_conflict(
    result: Result<u64, ResumeError>,
    key: &str,
    expected: Option<u64>,
    current: Option<u64>,
) {
    match result {
        Err(ResumeError::Conflict {
            key: k,
            expected: e,
            current: c,
        }) => assert_eq!((k.as_str(), e, c), (key, expected, current)),
        other => panic!("expected a conflict on {key}, got {other:?}"),
    }
}

/// get / put / set / delete, versions, conflicts.
pub(crate) async fn values(t: &Backend) {
    let s = &*t.store;
    assert_eq!(value(s, "k").await, None);
    assert!(!s.delete("k").await.unwrap());

    let v1 = s.put("k", b("one"), None, None).await.unwrap();
    assert!(v1 >= 1);
    assert_eq!(value(s, "k").await, Some((b("one"), v1)));

    // Creating again conflicts, and changes nothing.
    assert_conflict(s.put("k", b("x"), None, None).await, "k", None, Some(v1));
    let v2 = s.put("k", b("two"), Some(v1), None).await.unwrap();
    assert!(v2 > v1);
    assert_conflict(
        s.put("k", b("x"), Some(v1), None).await,
        "k",
        Some(v1),
        Some(v2),
    );
    assert_eq!(value(s, "k").await, Some((b("two"), v2)));

    let v3 = s.set("k", b("three"), None).await.unwrap();
    assert!(v3 > v2);
    assert_eq!(value(s, "k").await, Some((b("three"), v3)));

    assert!(s.delete("k").await.unwrap());
    assert!(!s.delete("k").await.unwrap());
    assert_eq!(value(s, "k").await, None);
    assert_conflict(
        s.put("k", b("x"), Some(v3), None).await,
        "k",
        Some(v3),
        None,
    );

    // A key written again after a delete never gets back an old version.
    let v4 = s.put("k", b("four"), None, None).await.unwrap();
    assert!(v4 > v3);
    let v5 = s.set("fresh", b("five"), None).await.unwrap();
    assert!(v5 > v4);
    assert_eq!(value(s, "fresh").await, Some((b("five"), v5)));
}

/// Keys are independent; values and locks are separate namespaces; bytes round-trip.
pub(crate) async fn namespaces(t: &Backend) {
    let s = &*t.store;
    let lease = Duration::from_secs(60);
    s.set("a", b("A"), None).await.unwrap();
    let vb = s.set("b", b("B"), None).await.unwrap();
    assert!(s.delete("a").await.unwrap());
    assert_eq!(value(s, "b").await, Some((b("B"), vb)));

    assert!(s.try_lock("b", "owner", lease).await.unwrap());
    assert_eq!(value(s, "b").await, Some((b("B"), vb)));
    assert!(s.try_lock("lock-only", "owner", lease).await.unwrap());
    assert_eq!(value(s, "lock-only").await, None);
    assert!(s.delete("b").await.unwrap());
    assert!(!s.try_lock("b", "other", lease).await.unwrap());

    let all_bytes: Bytes = (0..=255u8).collect::<Vec<_>>().into();
    for key in ["", "with space", "a:b:c", "ключ", "v:prefix-like"] {
        let v = s.put(key, all_bytes.clone(), None, None).await.unwrap();
        assert_eq!(value(s, key).await, Some((all_bytes.clone(), v)), "{key:?}");
    }
    let v = s.set("empty", Bytes::new(), None).await.unwrap();
    assert_eq!(value(s, "empty").await, Some((Bytes::new(), v)));
}

/// Values expire after their time to live; writing without one clears it.
pub(crate) async fn time_to_live(t: &Backend) {
    let s = &*t.store;
    let minute = Duration::from_secs(60);
    let v = s.put("a", b("A"), None, Some(minute)).await.unwrap();
    t.pass(Duration::from_secs(30), &[Key::Value("a")]).await;
    assert_eq!(value(s, "a").await, Some((b("A"), v)));
    t.pass(Duration::from_secs(31), &[Key::Value("a")]).await;
    assert_eq!(value(s, "a").await, None);
    assert!(!s.delete("a").await.unwrap());
    assert_conflict(s.put("a", b("x"), Some(v), None).await, "a", Some(v), None);
    let v2 = s.put("a", b("again"), None, None).await.unwrap();
    assert!(v2 > v);

    // A write without a time to live makes the value permanent.
    s.set("b", b("B"), Some(minute)).await.unwrap();
    let vb = s.set("b", b("B2"), None).await.unwrap();
    t.pass(Duration::from_secs(120), &[Key::Value("b")]).await;
    assert_eq!(value(s, "b").await, Some((b("B2"), vb)));

    // A write with a time to live replaces the old one.
    let vc = s.put("c", b("C"), None, Some(minute)).await.unwrap();
    s.put("c", b("C2"), Some(vc), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    t.pass(Duration::from_secs(11), &[Key::Value("c")]).await;
    assert_eq!(value(s, "c").await, None);

    // A time to live of zero writes a value that is expired at once.
    s.set("d", b("D"), Some(Duration::ZERO)).await.unwrap();
    assert_eq!(value(s, "d").await, None);
    s.put("d", b("D"), None, None).await.unwrap();
}

/// Lock exclusivity, renewal by the owner, unlock only by the owner.
pub(crate) async fn locks(t: &Backend) {
    let s = &*t.store;
    let minute = Duration::from_secs(60);
    let k = [Key::Lock("l")];
    assert!(s.try_lock("l", "a", minute).await.unwrap());
    assert!(!s.try_lock("l", "b", minute).await.unwrap());
    assert!(!s.unlock("l", "b").await.unwrap());

    // At 40 s the owner renews for another minute: the lock now lasts until 100 s.
    t.pass(Duration::from_secs(40), &k).await;
    assert!(s.try_lock("l", "a", minute).await.unwrap());
    t.pass(Duration::from_secs(40), &k).await;
    assert!(!s.try_lock("l", "b", minute).await.unwrap());
    t.pass(Duration::from_secs(21), &k).await;
    assert!(s.try_lock("l", "b", minute).await.unwrap());

    assert!(!s.unlock("l", "a").await.unwrap());
    assert!(!s.try_lock("l", "a", minute).await.unwrap());
    assert!(s.unlock("l", "b").await.unwrap());
    assert!(!s.unlock("l", "b").await.unwrap());
    assert!(s.try_lock("l", "a", minute).await.unwrap());

    // Locks on other keys are independent.
    assert!(s.try_lock("m", "b", minute).await.unwrap());
    assert!(s.unlock("l", "a").await.unwrap());
    assert!(!s.try_lock("m", "a", minute).await.unwrap());
}

/// An expired lease frees the lock: its owner cannot unlock it, anyone can take it.
pub(crate) async fn lease_expiry(t: &Backend) {
    let s = &*t.store;
    let k = [Key::Lock("l")];
    assert!(s.try_lock("l", "a", Duration::from_secs(10)).await.unwrap());
    t.pass(Duration::from_secs(9), &k).await;
    assert!(!s.try_lock("l", "b", Duration::from_secs(10)).await.unwrap());
    t.pass(Duration::from_secs(2), &k).await;
    assert!(!s.unlock("l", "a").await.unwrap());
    assert!(s.try_lock("l", "b", Duration::from_secs(10)).await.unwrap());
    assert!(!s.try_lock("l", "a", Duration::from_secs(10)).await.unwrap());
    assert!(s.unlock("l", "b").await.unwrap());
}

/// Adds one to the counter under `key` with read-modify-write and `put(expected)`
/// retries; returns how many conflicts it met.
pub(crate) async fn increment(store: &dyn Store, key: &str) -> usize {
    for conflicts in 0..10_000 {
        let current = store.get(key).await.unwrap();
        let (n, expected) = match &current {
            Some(v) => (
                std::str::from_utf8(&v.value)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
                Some(v.version),
            ),
            None => (0, None),
        };
        let next = Bytes::from((n + 1).to_string());
        match store.put(key, next, expected, None).await {
            Ok(_) => return conflicts,
            Err(ResumeError::Conflict { .. }) => {}
            Err(e) => panic!("increment failed: {e}"),
        }
    }
    panic!("increment never succeeded");
}

/// 50 tasks incrementing one counter end with exactly 50, whatever the interleaving.
pub(crate) async fn concurrent_increments(stores: &[Arc<dyn Store>]) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            tokio::spawn(async move { increment(&*store, "counter").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for store in stores {
        let v = store.get("counter").await.unwrap().unwrap();
        assert_eq!(v.value, b("50"));
    }
}
