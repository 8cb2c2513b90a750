//! Random sequences of store operations checked step by step against a model of the
//! `Store` contract (values, versions never reused, expiry, locks), for the memory store
//! on paused tokio time and the redb store on a manual clock.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use liaison_resume::{MemoryStore, ResumeError, Store, Versioned};
use proptest::prelude::*;

const KEYS: [&str; 3] = ["a", "b", "c"];
const OWNERS: [&str; 2] = ["x", "y"];

/// What a conditional write expects.
#[derive(Debug, Clone)]
enum Expect {
    /// The version the model holds now (`None` if absent): the write succeeds.
    Current,
    /// A fixed answer, right or wrong.
    Fixed(Option<u64>),
}

#[derive(Debug, Clone)]
enum Op {
    Get(usize),
    Put(usize, u8, Expect, Option<u64>),
    Set(usize, u8, Option<u64>),
    Delete(usize),
    Lock(usize, usize, u64),
    Unlock(usize, usize),
    /// Seconds pass.
    Pass(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let owner = 0..OWNERS.len();
    let ttl = prop::option::of(0..20u64);
    let expect = prop_oneof![
        3 => Just(Expect::Current),
        1 => prop::option::of(1..30u64).prop_map(Expect::Fixed),
    ];
    prop_oneof![
        key.clone().prop_map(Op::Get),
        (key.clone(), any::<u8>(), expect, ttl.clone())
            .prop_map(|(k, v, e, t)| Op::Put(k, v, e, t)),
        (key.clone(), any::<u8>(), ttl).prop_map(|(k, v, t)| Op::Set(k, v, t)),
        key.clone().prop_map(Op::Delete),
        (key.clone(), owner.clone(), 0..20u64).prop_map(|(k, o, l)| Op::Lock(k, o, l)),
        (key, owner).prop_map(|(k, o)| Op::Unlock(k, o)),
        (0..15u64).prop_map(Op::Pass),
    ]
}

/// The contract, in seconds since the start.
#[derive(Debug, Default)]
struct Model {
    now: u64,
    last_version: u64,
    /// key → (byte, version, expiry)
    values: HashMap<usize, (u8, u64, Option<u64>)>,
    /// key → (owner, expiry)
    locks: HashMap<usize, (usize, u64)>,
}

impl Model {
    fn current(&self, key: usize) -> Option<(u8, u64)> {
        self.values
            .get(&key)
            .filter(|(_, _, exp)| exp.is_none_or(|t| t > self.now))
            .map(|&(v, version, _)| (v, version))
    }

    fn write(&mut self, key: usize, value: u8, ttl: Option<u64>) -> u64 {
        self.last_version += 1;
        let expires = ttl.map(|t| self.now + t);
        self.values.insert(key, (value, self.last_version, expires));
        self.last_version
    }

    fn holder(&self, key: usize) -> Option<usize> {
        self.locks
            .get(&key)
            .filter(|(_, exp)| *exp > self.now)
            .map(|&(owner, _)| owner)
    }
}

/// How time passes for the store under test.
enum Clock {
    /// The paused tokio clock.
    Tokio,
    /// A manual wall clock: milliseconds moved.
    #[cfg(feature = "redb")]
    Manual(std::sync::Arc<std::sync::atomic::AtomicU64>),
}

/// Runs `ops` against `store` and the model.
async fn check(store: &dyn Store, clock: &Clock, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Get(k) => {
                let got = store.get(KEYS[k]).await.unwrap();
                let want = model.current(k).map(|(v, version)| Versioned {
                    value: Bytes::from(vec![v]),
                    version,
                });
                prop_assert_eq!(got, want);
            }
            Op::Put(k, v, expect, ttl) => {
                let current = model.current(k).map(|(_, version)| version);
                let expected = match expect {
                    Expect::Current => current,
                    Expect::Fixed(e) => e,
                };
                let got = store
                    .put(
                        KEYS[k],
                        Bytes::from(vec![v]),
                        expected,
                        ttl.map(Duration::from_secs),
                    )
                    .await;
                if expected == current {
                    prop_assert_eq!(got.unwrap(), model.write(k, v, ttl));
                } else {
                    match got {
                        Err(ResumeError::Conflict {
                            expected: e,
                            current: c,
                            ..
                        }) => prop_assert_eq!((e, c), (expected, current)),
                        other => prop_assert!(false, "expected a conflict, got {:?}", other),
                    }
                }
            }
            Op::Set(k, v, ttl) => {
                let got = store
                    .set(KEYS[k], Bytes::from(vec![v]), ttl.map(Duration::from_secs))
                    .await
                    .unwrap();
                prop_assert_eq!(got, model.write(k, v, ttl));
            }
            Op::Delete(k) => {
                let want = model.current(k).is_some();
                model.values.remove(&k);
                prop_assert_eq!(store.delete(KEYS[k]).await.unwrap(), want);
            }
            Op::Lock(k, o, lease) => {
                let want = model.holder(k).is_none_or(|h| h == o);
                if want {
                    model.locks.insert(k, (o, model.now + lease));
                }
                let got = store
                    .try_lock(KEYS[k], OWNERS[o], Duration::from_secs(lease))
                    .await
                    .unwrap();
                prop_assert_eq!(got, want);
            }
            Op::Unlock(k, o) => {
                let want = model.holder(k) == Some(o);
                if want {
                    model.locks.remove(&k);
                }
                prop_assert_eq!(store.unlock(KEYS[k], OWNERS[o]).await.unwrap(), want);
            }
            Op::Pass(secs) => {
                model.now += secs;
                match clock {
                    Clock::Tokio => tokio::time::advance(Duration::from_secs(secs)).await,
                    #[cfg(feature = "redb")]
                    Clock::Manual(moved) => {
                        moved.fetch_add(secs * 1000, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
        }
    }
    Ok(())
}

fn runtime(paused: bool) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(paused)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn memory_store_follows_the_model(ops in prop::collection::vec(op(), 1..60)) {
        runtime(true).block_on(check(&MemoryStore::new(), &Clock::Tokio, ops))?;
    }
}

#[cfg(feature = "redb")]
proptest! {
    // Every write is a durable redb commit: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn redb_store_follows_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let (clock, moved) = common::manual_clock();
        let store = liaison_resume::RedbStore::create(dir.path().join("model.redb"))
            .unwrap()
            .with_clock(clock);
        runtime(false).block_on(check(&store, &Clock::Manual(moved), ops))?;
    }
}
