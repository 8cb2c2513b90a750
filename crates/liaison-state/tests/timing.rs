//! Lock timing on paused time, over the memory transport with the memory store (whose
//! expiry follows the tokio clock): a second writer waits exactly the configured lock wait,
//! then gets `Locked`, or proceeds the moment the holder releases; readers never wait; a
//! live holder keeps its lock far past the lease (the server renews it), in both writable
//! modes; a lock left by a server that died expires with its lease; a write made behind
//! a lock's back is reported as a conflict, never overwritten.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{StoreKind, TestServer, TestStore};
use liaison_resume::Store;
use liaison_state::{StateConfig, StateError};
use liaison_transport::LoopbackKind;
use tokio::time::{sleep, Instant};

const LEASE: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(2);

async fn server() -> (Arc<dyn Store>, TestServer) {
    let store = TestStore::new(StoreKind::Memory).await.store;
    let config = StateConfig::default()
        .with_lease(LEASE)
        .with_lock_wait(WAIT)
        .with_poll_interval(Duration::from_millis(100));
    let server = TestServer::start(LoopbackKind::Memory, Arc::clone(&store), config).await;
    (store, server)
}

#[tokio::test(start_paused = true)]
async fn a_second_writer_waits_the_lock_wait_then_gets_locked() {
    let (_store, server) = server().await;
    let (_a, a) = server.connect().await;
    let (_b, b) = server.connect().await;
    let guard = a.lock("k").await.expect("lock");

    let start = Instant::now();
    let error = b.lock("k").await.unwrap_err();
    let waited = start.elapsed();
    assert!(
        matches!(&error, StateError::Locked { key, waited } if key == "k" && *waited == WAIT),
        "{error}"
    );
    assert!(
        waited >= WAIT && waited < WAIT + Duration::from_millis(50),
        "{waited:?}"
    );
    assert!(b.lock_split("k").await.unwrap_err().is_locked());

    // Readers never wait.
    let v = a
        .update("other", |_| Bytes::from_static(b"x"))
        .await
        .expect("update")
        .version;
    let start = Instant::now();
    let hold_other = a.lock("other").await.expect("lock");
    assert_eq!(b.get("other").await.expect("get").version, v);
    assert_eq!(start.elapsed(), Duration::ZERO);
    drop(hold_other);

    guard.commit(&b"done"[..]).await.expect("commit");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_writer_proceeds_when_the_holder_releases() {
    let (_store, server) = server().await;
    let (_a, a) = server.connect().await;
    let (_b, b) = server.connect().await;
    let guard = a.lock("k").await.expect("lock");
    let start = Instant::now();
    let waiter = tokio::spawn(async move {
        let guard = b.lock("k").await.expect("lock");
        (start.elapsed(), guard.commit(&b"second"[..]).await)
    });
    sleep(Duration::from_millis(1500)).await;
    guard.commit(&b"first"[..]).await.expect("commit");
    let (waited, committed) = waiter.await.expect("waiter");
    committed.expect("commit");
    assert_eq!(waited, Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn a_live_holder_keeps_its_lock_past_the_lease() {
    let (_store, server) = server().await;
    let (_a, a) = server.connect().await;
    let (_b, b) = server.connect().await;

    // One exchange: ten leases later the lock is still held and the commit succeeds.
    let guard = a.lock("one").await.expect("lock");
    sleep(LEASE * 10).await;
    assert!(b.lock("one").await.unwrap_err().is_locked());
    let version = guard.commit(&b"kept"[..]).await.expect("commit");
    assert_eq!(b.get("one").await.expect("get").version, version);

    // Two exchanges: the hold and its lock both outlive ten leases.
    let hold = a.lock_split("two").await.expect("lock_split");
    sleep(LEASE * 10).await;
    assert!(b.lock("two").await.unwrap_err().is_locked());
    let version = b
        .put(hold.ticket(), Bytes::from_static(b"kept"))
        .await
        .expect("put");
    assert_eq!(hold.completed().await.expect("completed"), version);
}

#[tokio::test(start_paused = true)]
async fn a_dead_servers_lock_expires_with_its_lease() {
    let (store, server) = server().await;
    let (_a, a) = server.connect().await;
    // A server that died holding the lock of "k" (protocol, "Store layout") left it with
    // a fresh lease and nobody to renew it.
    assert!(store
        .try_lock("liaison-state/v/k", "a-dead-server", LEASE)
        .await
        .expect("try_lock"));
    // A writer waiting less than the lease gives up; one waiting past it proceeds.
    assert!(a.lock("k").await.unwrap_err().is_locked());
    let start = Instant::now();
    let waiter = tokio::spawn(async move {
        let guard = a.lock("k").await;
        (start.elapsed(), guard.map(|g| g.version()))
    });
    let (waited, version) = waiter.await.expect("waiter");
    assert_eq!(version.expect("the lock expired"), None);
    // Taken at the first poll after the lease ran out (WAIT after it was taken).
    assert!(
        waited >= LEASE - WAIT && waited <= LEASE - WAIT + Duration::from_millis(100),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_write_behind_the_locks_back_is_a_conflict_not_a_lost_update() {
    let (store, server) = server().await;
    let (_a, a) = server.connect().await;
    let v1 = a
        .update("k", |_| Bytes::from_static(b"one"))
        .await
        .expect("update")
        .version;
    // Both writable modes: someone writes the store directly while the lock is held.
    let guard = a.lock("k").await.expect("lock");
    let v2 = store
        .set("liaison-state/v/k", Bytes::from_static(b"behind"), None)
        .await
        .expect("set");
    let error = guard.commit(&b"two"[..]).await.unwrap_err();
    assert!(
        matches!(&error, StateError::Conflict { key, expected, current }
            if key == "k" && *expected == Some(v1) && *current == Some(v2)),
        "{error}"
    );
    let hold = a.lock_split("k").await.expect("the lock was released");
    let v3 = store
        .set(
            "liaison-state/v/k",
            Bytes::from_static(b"behind again"),
            None,
        )
        .await
        .expect("set");
    let error = hold.commit(&b"three"[..]).await.unwrap_err();
    assert!(
        matches!(&error, StateError::Conflict { expected, current, .. }
            if *expected == Some(v2) && *current == Some(v3)),
        "{error}"
    );
    // The direct writes stand; neither commit overwrote them.
    let state = a.get("k").await.expect("get");
    assert_eq!(
        (&state.value[..], state.version),
        (&b"behind again"[..], v3)
    );
}
