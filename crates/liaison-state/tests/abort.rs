//! Writers killed mid-update, over TCP and QUIC with every store: when the session of a
//! lock's holder is aborted, nothing it meant to write is written, the lock is released at
//! once (long before its lease would expire), the next writer proceeds, and the ticket of
//! an aborted two-exchange hold is refused.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{within, StoreKind, TestServer, TestStore};
use liaison_state::StateConfig;
use liaison_transport::LoopbackKind;
use tokio::time::Instant;

async fn killed_writers(transport: LoopbackKind, store: StoreKind) {
    let store = TestStore::new(store).await;
    // A lease far longer than the test: only abort propagation can free the locks in time.
    let config = StateConfig::default()
        .with_lease(Duration::from_secs(300))
        .with_lock_wait(Duration::from_secs(60));
    let server = TestServer::start(transport, store.store.clone(), config).await;
    let (_setup, setup) = server.connect().await;
    let v1 = setup
        .update("cart", |_| Bytes::from_static(b"before"))
        .await
        .expect("update")
        .version;

    // One exchange: the writer holds the lock, then its session is aborted before it
    // commits.
    let (victim, states) = server.connect().await;
    let guard = states.lock("cart").await.expect("lock");
    assert_eq!(guard.version(), Some(v1));
    let (_next, next) = server.connect().await;
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let guard = next
            .lock("cart")
            .await
            .expect("the next writer gets the lock");
        (guard, started.elapsed(), next)
    });
    victim.abort();
    let commit = guard.commit(&b"partial"[..]).await;
    assert!(commit.is_err(), "a commit over an aborted session fails");
    let (guard, waited, next) = waiting.await.expect("the next writer");
    assert!(
        waited < Duration::from_secs(30),
        "released by the abort, not the lease"
    );
    // Nothing of the killed writer was written.
    assert_eq!(guard.version(), Some(v1));
    assert_eq!(guard.state().map(|s| &s[..]), Some(&b"before"[..]));
    let v2 = guard.commit(&b"after"[..]).await.expect("commit");
    assert!(v2 > v1);

    // Two exchanges: the holder's session is aborted before the put.
    let (victim, states) = server.connect().await;
    let hold = states.lock_split("cart").await.expect("lock_split");
    let ticket = hold.ticket().clone();
    victim.abort();
    let guard = next
        .lock("cart")
        .await
        .expect("the next writer gets the lock");
    assert_eq!(guard.version(), Some(v2));
    let error = next
        .put(&ticket, Bytes::from_static(b"partial"))
        .await
        .unwrap_err();
    assert!(error.is_lock_lost(), "{error}");
    guard.release().await.expect("release");
    drop(hold);

    // A writer killed while the lock is contended: the waiter behind it proceeds.
    let (victim, states) = server.connect().await;
    let guard = states.lock("cart").await.expect("lock");
    let (_third, third) = server.connect().await;
    let waiter = tokio::spawn(async move {
        third
            .update("cart", |old| {
                let mut value = old.expect("a state").value.to_vec();
                value.extend_from_slice(b"+1");
                Bytes::from(value)
            })
            .await
    });
    tokio::task::yield_now().await;
    victim.abort();
    drop(guard);
    let updated = waiter.await.expect("waiter").expect("update");
    assert_eq!(&updated.value[..], b"after+1");

    let state = setup.get("cart").await.expect("get");
    assert_eq!(state, updated);
}

macro_rules! matrix {
    ($($name:ident: $transport:ident, $store:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            within(killed_writers(LoopbackKind::$transport, StoreKind::$store)).await;
        }
    )*};
}

matrix! {
    killed_writer_tcp_memory: Tcp, Memory;
    killed_writer_tcp_redb: Tcp, Redb;
    killed_writer_tcp_redis: Tcp, Redis;
    killed_writer_quic_memory: Quic, Memory;
    killed_writer_quic_redb: Quic, Redb;
    killed_writer_quic_redis: Quic, Redis;
}
