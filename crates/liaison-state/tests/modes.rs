//! The three access modes end to end, over TCP and QUIC, with the memory, redb and Redis
//! stores: read-only gets (that never wait for a writer), writes over one full-duplex
//! exchange (commit, release, drop), and writes over two exchanges (the put on a second
//! exchange of the same session or of another session; the hold ending before the put).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{within, StoreKind, TestServer, TestStore};
use liaison_state::{StateConfig, StateError};
use liaison_transport::LoopbackKind;

async fn every_mode(transport: LoopbackKind, store: StoreKind) {
    let store = TestStore::new(store).await;
    // A long lease and lock wait: everything below must happen through releases.
    let config = StateConfig::default()
        .with_lease(Duration::from_secs(60))
        .with_lock_wait(Duration::from_secs(30));
    let server = TestServer::start(transport, store.store.clone(), config).await;
    let (_a, states) = server.connect().await;
    let (_b, other) = server.connect().await;

    // Read-only, unknown key.
    let error = states.get("user-1").await.unwrap_err();
    assert!(
        matches!(&error, StateError::NotFound { key } if key == "user-1"),
        "{error}"
    );

    // Writable over one exchange, on a key with no state yet.
    let guard = states.lock("user-1").await.expect("lock");
    assert_eq!(
        (guard.key(), guard.state(), guard.version()),
        ("user-1", None, None)
    );
    // Readers never wait for the writer: the key has still no state.
    assert!(other.get("user-1").await.unwrap_err().is_not_found());
    let v1 = guard.commit(&b"cart=apple"[..]).await.expect("commit");
    let state = other.get("user-1").await.expect("get");
    assert_eq!((&state.value[..], state.version), (&b"cart=apple"[..], v1));

    // A locked key still reads at once, with the last committed state.
    let guard = states.lock("user-1").await.expect("lock");
    assert_eq!(guard.state().map(|s| &s[..]), Some(&b"cart=apple"[..]));
    assert_eq!(guard.version(), Some(v1));
    let read = tokio::time::timeout(Duration::from_secs(5), other.get("user-1"))
        .await
        .expect("a reader does not wait")
        .expect("get");
    assert_eq!(read.version, v1);
    let v2 = guard.commit(&b"cart=apple,pear"[..]).await.expect("commit");
    assert!(v2 > v1);

    // Release writes nothing, and so does dropping the guard; the lock is free after both.
    states
        .lock("user-1")
        .await
        .expect("lock")
        .release()
        .await
        .expect("release");
    drop(states.lock("user-1").await.expect("lock"));
    let updated = other
        .update("user-1", |old| {
            let mut cart = old.expect("a state").value.to_vec();
            cart.extend_from_slice(b",fig");
            Bytes::from(cart)
        })
        .await
        .expect("update");
    assert!(updated.version > v2);
    assert_eq!(other.get("user-1").await.expect("get"), updated);

    // Writable over two exchanges, the put on a second exchange of the same session.
    let hold = states.lock_split("user-1").await.expect("lock_split");
    assert_eq!(hold.current(), Some(&updated));
    assert_eq!(hold.ticket().key, "user-1");
    let v3 = hold.commit(&b"cart="[..]).await.expect("split commit");
    assert!(v3 > updated.version);
    assert_eq!(
        &states.get("user-1").await.expect("get").value[..],
        b"cart="
    );

    // ... and over another session: the put completes the hold on the first one.
    let hold = states.lock_split("user-1").await.expect("lock_split");
    let ticket = hold.ticket().clone();
    let v4 = other
        .put(&ticket, Bytes::from_static(b"cart=kiwi"))
        .await
        .expect("put");
    assert_eq!(hold.completed().await.expect("completed"), v4);
    assert!(v4 > v3);
    // A ticket commits once.
    let error = other
        .put(&ticket, Bytes::from_static(b"again"))
        .await
        .unwrap_err();
    assert!(error.is_lock_lost(), "{error}");

    // The hold ends before the put: the lock is released and the put refused.
    let hold = states.lock_split("user-1").await.expect("lock_split");
    let ticket = hold.ticket().clone();
    drop(hold);
    // The server sees the end asynchronously; a writer gets the lock once it did (the
    // hold is deleted before the lock is released).
    let guard = other.lock("user-1").await.expect("the lock was released");
    guard.release().await.expect("release");
    let error = other
        .put(&ticket, Bytes::from_static(b"late"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StateError::LockLost { key } if key == "user-1"),
        "{error}"
    );
    let hold = states.lock_split("user-1").await.expect("lock_split");
    let ticket = hold.ticket().clone();
    hold.release().await.expect("release");
    assert!(other
        .put(&ticket, Bytes::from_static(b"late"))
        .await
        .unwrap_err()
        .is_lock_lost());

    // Nothing of the refused puts was written.
    let state = other.get("user-1").await.expect("get");
    assert_eq!((&state.value[..], state.version), (&b"cart=kiwi"[..], v4));
    assert_eq!(server.sessions(), 2);
}

macro_rules! matrix {
    ($($name:ident: $transport:ident, $store:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            within(every_mode(LoopbackKind::$transport, StoreKind::$store)).await;
        }
    )*};
}

matrix! {
    every_mode_tcp_memory: Tcp, Memory;
    every_mode_tcp_redb: Tcp, Redb;
    every_mode_tcp_redis: Tcp, Redis;
    every_mode_quic_memory: Quic, Memory;
    every_mode_quic_redb: Quic, Redb;
    every_mode_quic_redis: Quic, Redis;
}
