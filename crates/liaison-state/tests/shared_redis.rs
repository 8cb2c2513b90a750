//! Two state servers sharing one Redis serve one key consistently: writers on both
//! increment one counter exactly, a lock taken through one server holds writers of the
//! other off (readers are not held), and the two-exchange mode's put may reach the other
//! server: it completes the hold on the first, or is refused once the hold ended.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{number, read_number, within, StoreKind, TestServer, TestStore};
use liaison_state::{StateClient, StateConfig, StateError};
use liaison_transport::LoopbackKind;

async fn two_servers(transport: LoopbackKind) -> (TestStore, TestServer, TestServer) {
    let store = TestStore::new(StoreKind::Redis).await;
    let second = store.second_redis_connection().await;
    let config = StateConfig::default()
        .with_lock_wait(Duration::from_secs(60))
        .with_poll_interval(Duration::from_millis(5));
    let one = TestServer::start(transport, store.store.clone(), config.clone()).await;
    let two = TestServer::start(transport, second, config).await;
    (store, one, two)
}

async fn increment(states: StateClient) -> Result<u64, StateError> {
    Ok(states
        .update("counter", |old| {
            number(old.map_or(0, |s| read_number(&s.value)) + 1)
        })
        .await?
        .version)
}

async fn writers_on_both_servers(transport: LoopbackKind) {
    let (_store, one, two) = two_servers(transport).await;
    let (_a, a) = one.connect().await;
    let (_b, b) = two.connect().await;
    let writers: Vec<_> = (0..100)
        .map(|i| tokio::spawn(increment(if i % 2 == 0 { a.clone() } else { b.clone() })))
        .collect();
    for writer in writers {
        writer.await.expect("writer").expect("increment");
    }
    let via_one = a.get("counter").await.expect("get");
    let via_two = b.get("counter").await.expect("get");
    assert_eq!(read_number(&via_one.value), 100);
    assert_eq!(via_one, via_two);
}

async fn locks_and_holds_span_servers(transport: LoopbackKind) {
    let (store, one, two) = two_servers(transport).await;
    let (_a, a) = one.connect().await;
    let (_b, b) = two.connect().await;
    let v1 = a
        .update("user", |_| Bytes::from_static(b"one"))
        .await
        .expect("update")
        .version;

    // A lock through server one: a writer through server two waits its (short) wait out,
    // a reader through server two reads at once.
    let guard = a.lock("user").await.expect("lock");
    let impatient = TestServer::start(
        transport,
        store.second_redis_connection().await,
        StateConfig::default().with_lock_wait(Duration::from_millis(200)),
    )
    .await;
    let (_c, c) = impatient.connect().await;
    let error = c.lock("user").await.unwrap_err();
    assert!(
        matches!(&error, StateError::Locked { key, waited } if key == "user" && *waited >= Duration::from_millis(200)),
        "{error}"
    );
    assert_eq!(b.get("user").await.expect("get").version, v1);
    // Released through server one, the writer through server two proceeds.
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.update("user", |_| Bytes::from_static(b"two")).await }
    });
    let v2 = guard.commit(&b"one+"[..]).await.expect("commit");
    let after = waiting.await.expect("writer").expect("update");
    assert!(after.version > v2 && v2 > v1);

    // The hold through server one, the put through server two: both complete.
    let hold = a.lock_split("user").await.expect("lock_split");
    assert_eq!(hold.current(), Some(&after));
    let version = hold
        .commit_via(&b, &b"three"[..])
        .await
        .expect("commit via two");
    let state = a.get("user").await.expect("get");
    assert_eq!((&state.value[..], state.version), (&b"three"[..], version));

    // The hold's session ends before the put through server two: refused.
    let (victim, states) = one.connect().await;
    let hold = states.lock_split("user").await.expect("lock_split");
    let ticket = hold.ticket().clone();
    victim.abort();
    let guard = b.lock("user").await.expect("released by the abort");
    guard.release().await.expect("release");
    let error = b
        .put(&ticket, Bytes::from_static(b"late"))
        .await
        .unwrap_err();
    assert!(error.is_lock_lost(), "{error}");
    assert_eq!(b.get("user").await.expect("get").version, version);
    drop(hold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_both_servers_tcp() {
    within(writers_on_both_servers(LoopbackKind::Tcp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_both_servers_quic() {
    within(writers_on_both_servers(LoopbackKind::Quic)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_holds_span_servers_tcp() {
    within(locks_and_holds_span_servers(LoopbackKind::Tcp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_holds_span_servers_quic() {
    within(locks_and_holds_span_servers(LoopbackKind::Quic)).await;
}
