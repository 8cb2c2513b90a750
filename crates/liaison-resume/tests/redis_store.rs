//! The Redis store beyond the shared suite: two clients share one state, prefixes keep
//! stores apart, the expiry Redis holds, reconnection, and the private server's life.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use liaison_resume::{LocalRedis, RedisStore, ResumeError, Store};

const MINUTE: Duration = Duration::from_secs(60);

async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_see_one_state() {
    let server = LocalRedis::start().await.unwrap();
    // Two connections, as two server processes of a fleet would have.
    let one = RedisStore::connect(&server.url()).await.unwrap();
    let two = RedisStore::connect(&server.url()).await.unwrap();

    let v1 = one
        .put("k", Bytes::from_static(b"1"), None, None)
        .await
        .unwrap();
    assert_eq!(two.get("k").await.unwrap().map(|v| v.version), Some(v1));
    let v2 = two
        .put("k", Bytes::from_static(b"2"), Some(v1), None)
        .await
        .unwrap();
    assert!(matches!(
        one.put("k", Bytes::from_static(b"x"), Some(v1), None).await,
        Err(ResumeError::Conflict { current: Some(c), .. }) if c == v2
    ));
    assert!(one.try_lock("l", "node-1", MINUTE).await.unwrap());
    assert!(!two.try_lock("l", "node-2", MINUTE).await.unwrap());
    assert!(!two.unlock("l", "node-2").await.unwrap());
    assert!(one.unlock("l", "node-1").await.unwrap());
    assert!(two.try_lock("l", "node-2", MINUTE).await.unwrap());

    common::concurrent_increments(&[Arc::new(one) as Arc<dyn Store>, Arc::new(two)]).await;
}

#[tokio::test]
async fn prefixes_keep_stores_apart() {
    let server = LocalRedis::start().await.unwrap();
    let base = RedisStore::connect(&server.url()).await.unwrap();
    assert_eq!(base.prefix(), "liaison:");
    let x = base.clone().with_prefix("x:");
    let y = base.clone().with_prefix("y:");
    assert_eq!(x.value_key("k"), "x:v:k");
    assert_eq!(x.lock_key("k"), "x:l:k");

    x.set("k", Bytes::from_static(b"x"), None).await.unwrap();
    assert_eq!(y.get("k").await.unwrap(), None);
    assert_eq!(base.get("k").await.unwrap(), None);
    assert!(x.try_lock("l", "a", MINUTE).await.unwrap());
    assert!(y.try_lock("l", "b", MINUTE).await.unwrap());
    y.put("k", Bytes::from_static(b"y"), None, None)
        .await
        .unwrap();
    assert_eq!(
        x.get("k").await.unwrap().unwrap().value,
        Bytes::from_static(b"x")
    );

    let mut conn = common::redis_connection(&server.url()).await;
    let (value, _version): (Vec<u8>, u64) = redis::cmd("HMGET")
        .arg("x:v:k")
        .arg("value")
        .arg("version")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, b"x");
}

#[tokio::test]
async fn times_to_live_and_leases_are_redis_expiry() {
    let server = LocalRedis::start().await.unwrap();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut conn = common::redis_connection(&server.url()).await;

    store.set("k", Bytes::new(), Some(MINUTE)).await.unwrap();
    let left = pttl(&mut conn, &store.value_key("k")).await;
    assert!((59_000..=60_000).contains(&left), "{left}");
    // A sub-millisecond time to live is rounded up, not to zero.
    store
        .set("short", Bytes::new(), Some(Duration::from_micros(1)))
        .await
        .unwrap();
    assert!(pttl(&mut conn, &store.value_key("short")).await <= 1);
    // A write without one makes the value permanent.
    store.set("k", Bytes::new(), None).await.unwrap();
    assert_eq!(pttl(&mut conn, &store.value_key("k")).await, -1);

    assert!(store
        .try_lock("l", "a", Duration::from_secs(30))
        .await
        .unwrap());
    let left = pttl(&mut conn, &store.lock_key("l")).await;
    assert!((29_000..=30_000).contains(&left), "{left}");
    // Renewal by the owner restarts the lease.
    assert!(store.try_lock("l", "a", MINUTE).await.unwrap());
    let left = pttl(&mut conn, &store.lock_key("l")).await;
    assert!((59_000..=60_000).contains(&left), "{left}");
    // A refused attempt leaves it alone.
    assert!(!store
        .try_lock("l", "b", Duration::from_secs(1))
        .await
        .unwrap());
    assert!(pttl(&mut conn, &store.lock_key("l")).await > 50_000);
    // A lease too long for Redis is capped, not refused.
    assert!(store.try_lock("huge", "a", Duration::MAX).await.unwrap());
    assert!(pttl(&mut conn, &store.lock_key("huge")).await > 0);
}

#[tokio::test]
async fn the_store_reconnects_after_its_connection_is_killed() {
    let server = LocalRedis::start().await.unwrap();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let v = store
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .unwrap();

    let mut admin = common::redis_connection(&server.url()).await;
    let killed: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 1);

    // The call that meets the broken connection may fail (with a typed error); the store
    // then reconnects by itself.
    let mut failures = 0;
    let found = loop {
        match store.get("k").await {
            Ok(found) => break found,
            Err(ResumeError::Backend {
                backend: "redis", ..
            }) if failures < 3 => failures += 1,
            Err(e) => panic!("no reconnection: {e}"),
        }
    };
    assert_eq!(found.map(|f| f.version), Some(v));
}

#[tokio::test]
async fn a_stopped_server_is_gone_and_its_store_reports_errors() {
    let server = LocalRedis::start().await.unwrap();
    let url = server.url();
    assert_eq!(url, format!("redis://127.0.0.1:{}/", server.port()));
    let store = RedisStore::connect(&url).await.unwrap();
    store.set("k", Bytes::new(), None).await.unwrap();
    server.stop().unwrap();

    let result = tokio::time::timeout(Duration::from_secs(15), store.get("k"))
        .await
        .expect("a lost server must end in an error, not a hang");
    assert!(
        matches!(
            result,
            Err(ResumeError::Backend {
                backend: "redis",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(matches!(
        RedisStore::connect(&url).await,
        Err(ResumeError::Backend {
            backend: "redis",
            ..
        })
    ));
}

#[tokio::test]
async fn dropping_the_server_kills_it() {
    let server = LocalRedis::start().await.unwrap();
    let port = server.port();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(server);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test]
async fn a_bad_url_is_a_backend_error() {
    assert!(matches!(
        RedisStore::connect("not a url").await,
        Err(ResumeError::Backend {
            backend: "redis",
            ..
        })
    ));
}
