//! 100 concurrent writers increment one counter, over TCP and QUIC with every store, half
//! of them over one exchange and half over two, spread over several sessions: the final
//! value is exactly 100, and every committed version is distinct.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{number, read_number, within, StoreKind, TestServer, TestStore};
use liaison_state::{StateClient, StateConfig, StateError};
use liaison_transport::LoopbackKind;

const WRITERS: u64 = 100;
const SESSIONS: u64 = 4;

/// One increment, over one exchange or two.
async fn increment(states: StateClient, split: bool) -> Result<u64, StateError> {
    if split {
        let hold = states.lock_split("counter").await?;
        let next = hold.state().map_or(0, |s| read_number(s)) + 1;
        hold.commit(number(next)).await
    } else {
        let updated = states
            .update("counter", |old| {
                number(old.map_or(0, |s| read_number(&s.value)) + 1)
            })
            .await?;
        Ok(updated.version)
    }
}

async fn hundred_writers(transport: LoopbackKind, store: StoreKind) {
    let store = TestStore::new(store).await;
    let config = StateConfig::default().with_lock_wait(Duration::from_secs(90));
    let server = TestServer::start(transport, store.store.clone(), config).await;
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        clients.push(server.connect().await);
    }
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let states = clients[usize::try_from(i % SESSIONS).expect("small")]
                .1
                .clone();
            tokio::spawn(increment(states, i % 2 == 1))
        })
        .collect();
    let mut versions = BTreeSet::new();
    for writer in writers {
        let version = writer.await.expect("writer").expect("increment");
        assert!(
            versions.insert(version),
            "version {version} committed twice"
        );
    }
    let state = clients[0].1.get("counter").await.expect("get");
    assert_eq!(read_number(&state.value), WRITERS);
    assert_eq!(versions.last(), Some(&state.version));
}

macro_rules! matrix {
    ($($name:ident: $transport:ident, $store:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            within(hundred_writers(LoopbackKind::$transport, StoreKind::$store)).await;
        }
    )*};
}

matrix! {
    hundred_writers_tcp_memory: Tcp, Memory;
    hundred_writers_tcp_redb: Tcp, Redb;
    hundred_writers_tcp_redis: Tcp, Redis;
    hundred_writers_quic_memory: Quic, Memory;
    hundred_writers_quic_redb: Quic, Redb;
    hundred_writers_quic_redis: Quic, Redis;
}
