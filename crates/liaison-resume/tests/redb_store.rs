//! The redb store beyond the shared suite: a reopened file keeps everything, the real wall
//! clock, purging expired entries, and the errors of opening.
#![cfg(feature = "redb")]

mod common;

use std::time::Duration;

use bytes::Bytes;
use liaison_resume::{RedbStore, ResumeError, Store};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_reopened_file_keeps_values_versions_expiry_and_locks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let (clock, offset) = common::manual_clock();
    let clock = std::sync::Arc::new(clock);

    let store = RedbStore::create(&path).unwrap().with_clock({
        let clock = std::sync::Arc::clone(&clock);
        move || clock()
    });
    let va = store
        .put("a", Bytes::from_static(b"A"), None, None)
        .await
        .unwrap();
    let vb = store
        .set("b", Bytes::from_static(b"B"), Some(MINUTE))
        .await
        .unwrap();
    assert!(store.try_lock("l", "owner", MINUTE).await.unwrap());
    drop(store);

    // As a restarted process would: open the existing file.
    let store = RedbStore::open(&path).unwrap().with_clock(move || clock());
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!((a.value.as_ref(), a.version), (&b"A"[..], va));
    assert_eq!(store.get("b").await.unwrap().unwrap().version, vb);
    assert!(!store.try_lock("l", "other", MINUTE).await.unwrap());
    // The version counter survived too: no version is handed out twice.
    let vc = store.set("c", Bytes::new(), None).await.unwrap();
    assert!(vc > vb && vb > va);
    // So did the expiry times.
    offset.fetch_add(61_000, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(store.get("b").await.unwrap(), None);
    assert!(store.try_lock("l", "other", MINUTE).await.unwrap());
}

#[tokio::test]
async fn expiry_runs_on_the_wall_clock_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::create(dir.path().join("store.redb")).unwrap();
    let v = store
        .set("live", Bytes::from_static(b"x"), Some(MINUTE))
        .await
        .unwrap();
    assert_eq!(store.get("live").await.unwrap().map(|v| v.version), Some(v));
    store
        .set("dead", Bytes::from_static(b"x"), Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(store.get("dead").await.unwrap(), None);
    assert!(store.try_lock("l", "a", MINUTE).await.unwrap());
    assert!(!store.try_lock("l", "b", MINUTE).await.unwrap());
}

#[tokio::test]
async fn purge_removes_only_what_expired() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, offset) = common::manual_clock();
    let store = RedbStore::create(dir.path().join("store.redb"))
        .unwrap()
        .with_clock(clock);
    let ten = Duration::from_secs(10);
    store.set("short1", Bytes::new(), Some(ten)).await.unwrap();
    store.set("short2", Bytes::new(), Some(ten)).await.unwrap();
    store.set("long", Bytes::new(), Some(MINUTE)).await.unwrap();
    let vp = store.set("permanent", Bytes::new(), None).await.unwrap();
    assert!(store.try_lock("short-lock", "a", ten).await.unwrap());
    assert!(store.try_lock("long-lock", "a", MINUTE).await.unwrap());
    assert_eq!(store.purge_expired().await.unwrap(), 0);

    offset.fetch_add(11_000, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(store.purge_expired().await.unwrap(), 3);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(
        store.get("permanent").await.unwrap().map(|v| v.version),
        Some(vp)
    );
    assert!(store.get("long").await.unwrap().is_some());
    assert!(!store.try_lock("long-lock", "b", MINUTE).await.unwrap());
    assert!(store.try_lock("short-lock", "b", MINUTE).await.unwrap());
}

#[tokio::test]
async fn opening_a_missing_file_or_an_open_one_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.redb");
    match RedbStore::open(&path) {
        Err(ResumeError::Backend {
            backend: "redb",
            message,
        }) => {
            assert!(message.contains("absent.redb"), "{message}");
        }
        other => panic!("expected a redb error, got {other:?}"),
    }
    assert!(!path.exists());

    let _open = RedbStore::create(&path).unwrap();
    assert!(matches!(
        RedbStore::open(&path),
        Err(ResumeError::Backend {
            backend: "redb",
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::create(dir.path().join("store.redb")).unwrap();
    let stores: [std::sync::Arc<dyn Store>; 2] = [
        std::sync::Arc::new(store.clone()),
        std::sync::Arc::new(store),
    ];
    common::concurrent_increments(&stores).await;
}
