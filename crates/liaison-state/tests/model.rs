//! Random sequences of operations in every mode (commits, releases, dropped guards, puts
//! with used, released or forged tickets) against a map as the model, over the memory
//! transport: reads always match the model, versions only grow, and an operation that
//! must not write never does.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::{StoreKind, TestServer, TestStore};
use liaison_state::{LockTicket, StateClient, StateConfig, StateError};
use liaison_transport::LoopbackKind;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Get(usize),
    Commit(usize, Vec<u8>),
    Release(usize),
    DropGuard(usize),
    SplitCommit(usize, Vec<u8>),
    SplitPutElsewhere(usize, Vec<u8>),
    SplitRelease(usize, Vec<u8>),
    ForgedPut(usize, [u8; 16]),
}

const KEYS: [&str; 3] = ["alpha", "beta", "gamma"];

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let value = proptest::collection::vec(any::<u8>(), 0..24);
    prop_oneof![
        key.clone().prop_map(Op::Get),
        (key.clone(), value.clone()).prop_map(|(k, v)| Op::Commit(k, v)),
        key.clone().prop_map(Op::Release),
        key.clone().prop_map(Op::DropGuard),
        (key.clone(), value.clone()).prop_map(|(k, v)| Op::SplitCommit(k, v)),
        (key.clone(), value.clone()).prop_map(|(k, v)| Op::SplitPutElsewhere(k, v)),
        (key.clone(), value).prop_map(|(k, v)| Op::SplitRelease(k, v)),
        (key, any::<[u8; 16]>()).prop_map(|(k, t)| Op::ForgedPut(k, t)),
    ]
}

/// The model: each key's value and version.
type Model = HashMap<&'static str, (Vec<u8>, u64)>;

fn expect_lock_lost(result: Result<u64, StateError>) {
    let error = result.expect_err("a put without a live hold");
    assert!(error.is_lock_lost(), "{error}");
}

/// Runs `op` through `a` (and `b` for a second session) and updates `model`.
async fn apply(op: Op, a: &StateClient, b: &StateClient, model: &mut Model) {
    match op {
        Op::Get(k) => match (a.get(KEYS[k]).await, model.get(KEYS[k])) {
            (Ok(state), Some((value, version))) => {
                assert_eq!((&state.value[..], state.version), (&value[..], *version));
            }
            (Err(error), None) => assert!(error.is_not_found(), "{error}"),
            (got, want) => panic!("{}: got {got:?}, model {want:?}", KEYS[k]),
        },
        Op::Commit(k, value) => {
            let guard = a.lock(KEYS[k]).await.expect("lock");
            assert_eq!(guard.version(), model.get(KEYS[k]).map(|(_, v)| *v));
            let version = guard.commit(value.clone()).await.expect("commit");
            record(model, KEYS[k], value, version);
        }
        Op::Release(k) => {
            let guard = a.lock(KEYS[k]).await.expect("lock");
            guard.release().await.expect("release");
        }
        Op::DropGuard(k) => drop(a.lock(KEYS[k]).await.expect("lock")),
        Op::SplitCommit(k, value) => {
            let hold = a.lock_split(KEYS[k]).await.expect("lock_split");
            assert_eq!(hold.version(), model.get(KEYS[k]).map(|(_, v)| *v));
            let ticket = hold.ticket().clone();
            let version = hold.commit(value.clone()).await.expect("commit");
            record(model, KEYS[k], value, version);
            expect_lock_lost(b.put(&ticket, Bytes::from_static(b"again")).await);
        }
        Op::SplitPutElsewhere(k, value) => {
            let hold = a.lock_split(KEYS[k]).await.expect("lock_split");
            let version = b
                .put(hold.ticket(), Bytes::from(value.clone()))
                .await
                .expect("put");
            assert_eq!(hold.completed().await.expect("completed"), version);
            record(model, KEYS[k], value, version);
        }
        Op::SplitRelease(k, value) => {
            let hold = a.lock_split(KEYS[k]).await.expect("lock_split");
            let ticket = hold.ticket().clone();
            hold.release().await.expect("release");
            expect_lock_lost(b.put(&ticket, Bytes::from(value)).await);
        }
        Op::ForgedPut(k, token) => {
            let ticket = LockTicket {
                key: KEYS[k].into(),
                token,
            };
            expect_lock_lost(b.put(&ticket, Bytes::from_static(b"forged")).await);
        }
    }
}

fn record(model: &mut Model, key: &'static str, value: Vec<u8>, version: u64) {
    if let Some((_, previous)) = model.get(key) {
        assert!(
            version > *previous,
            "{key}: version {version} after {previous}"
        );
    }
    model.insert(key, (value, version));
}

async fn run(ops: Vec<Op>) {
    let store = TestStore::new(StoreKind::Memory).await;
    // A dropped guard's release reaches the server asynchronously; the next writer waits
    // for it, never for long.
    let config = StateConfig::default().with_lock_wait(Duration::from_secs(30));
    let server = TestServer::start(LoopbackKind::Memory, store.store.clone(), config).await;
    let (_a, a) = server.connect().await;
    let (_b, b) = server.connect().await;
    let mut model = Model::new();
    for op in ops {
        apply(op, &a, &b, &mut model).await;
    }
    for k in 0..KEYS.len() {
        apply(Op::Get(k), &a, &b, &mut model).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn operations_match_the_model(ops in proptest::collection::vec(op(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(60), run(ops)).await })
            .expect("the sequence hung");
    }
}
