//! Bad input gets a typed error, over TCP and QUIC: malformed requests and updates,
//! unknown keys, empty, control-character and over-long keys, states over the service's
//! limit or over one message, forged and mismatched tickets. Nothing is written and no
//! lock stays taken after any of them.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{within, StoreKind, TestServer, TestStore};
use liaison_exchange::Endpoint;
use liaison_state::protocol::{Failure, Reply, Request};
use liaison_state::{LockTicket, StateConfig, StateError, StateService};
use liaison_transport::LoopbackKind;
use liaison_wire::Codec;

const MAX_STATE: usize = 1024;

/// Sends raw `message` as a request and decodes the reply.
async fn raw_call(endpoint: &Endpoint, message: &'static [u8]) -> Reply {
    let reply = endpoint
        .root()
        .expect("root")
        .call(Bytes::from_static(message))
        .await
        .expect("a reply");
    endpoint.codec().decode(&reply).expect("a Reply")
}

async fn bad_input(transport: LoopbackKind) {
    let store = TestStore::new(StoreKind::Memory).await;
    let config = StateConfig::default()
        .with_max_key_len(16)
        .with_max_state_size(MAX_STATE)
        .with_lock_wait(Duration::from_secs(30));
    let server = TestServer::start(transport, store.store.clone(), config).await;
    let (endpoint, states) = server.connect().await;

    // Malformed requests: garbage, a truncated request, an unknown variant, no request.
    for garbage in [&b"\xff\xff\xff"[..], b"\x01\x10ab", b"\x09", b""] {
        match raw_call(&endpoint, garbage).await {
            Reply::Failed(Failure::Malformed { detail }) => {
                assert!(detail.contains("undecodable request"), "{detail}");
            }
            other => panic!("{garbage:?} answered {other:?}"),
        }
    }
    let mut silent = endpoint.root().expect("root").begin().await.expect("begin");
    silent.end().await.expect("end");
    let reply: Reply = silent.recv_typed().await.expect("recv").expect("a reply");
    assert!(
        matches!(reply, Reply::Failed(Failure::Malformed { .. })),
        "{reply:?}"
    );

    // A malformed update on a lock exchange: refused, the lock released, nothing written.
    let mut exchange = endpoint.root().expect("root").begin().await.expect("begin");
    exchange
        .send_typed(&Request::Lock { key: "k".into() })
        .await
        .expect("send");
    let reply: Reply = exchange.recv_typed().await.expect("recv").expect("state");
    assert_eq!(reply, Reply::State(None));
    exchange
        .send(Bytes::from_static(b"\x07junk"))
        .await
        .expect("send");
    let reply: Reply = exchange.recv_typed().await.expect("recv").expect("reply");
    assert!(
        matches!(reply, Reply::Failed(Failure::Malformed { .. })),
        "{reply:?}"
    );
    drop(exchange);
    states
        .lock("k")
        .await
        .expect("the lock was released")
        .release()
        .await
        .expect("release");
    assert!(states.get("k").await.unwrap_err().is_not_found());

    // Unknown keys.
    let error = states.get("nobody").await.unwrap_err();
    assert!(
        matches!(&error, StateError::NotFound { key } if key == "nobody"),
        "{error}"
    );

    // Keys: empty, a control character, too long — for every mode.
    let long = "x".repeat(17);
    for key in ["", "a\nb", long.as_str()] {
        let errors = [
            states.get(key).await.unwrap_err(),
            states.lock(key).await.unwrap_err(),
            states.lock_split(key).await.unwrap_err(),
            states
                .put(
                    &LockTicket {
                        key: key.into(),
                        token: [0; 16],
                    },
                    Bytes::new(),
                )
                .await
                .unwrap_err(),
        ];
        for error in errors {
            match (key.len(), &error) {
                (17, StateError::KeyTooLong { len: 17, max: 16 }) => {}
                (0 | 3, StateError::InvalidKey { .. }) => {}
                _ => panic!("key {key:?}: {error}"),
            }
        }
    }

    // States over the service's limit: refused, nothing written, the lock released.
    let too_big = Bytes::from(vec![7u8; MAX_STATE + 1]);
    let guard = states.lock("big").await.expect("lock");
    let error = guard.commit(too_big.clone()).await.unwrap_err();
    assert!(
        matches!(error, StateError::StateTooLarge { size, max } if size == 1025 && max == 1024),
        "{error}"
    );
    let hold = states
        .lock_split("big")
        .await
        .expect("the lock was released");
    let error = states.put(hold.ticket(), too_big).await.unwrap_err();
    assert!(matches!(error, StateError::StateTooLarge { .. }), "{error}");
    // The hold survives a refused put: a fitting state still commits.
    let version = hold.commit(vec![1u8; MAX_STATE]).await.expect("commit");
    assert_eq!(states.get("big").await.expect("get").version, version);

    // A state over one message of the session: refused on this side, before sending.
    let guard = states.lock("big").await.expect("lock");
    let error = guard.commit(vec![0u8; 2 << 20]).await.unwrap_err();
    assert!(matches!(error, StateError::StateTooLarge { .. }), "{error}");
    assert_eq!(states.get("big").await.expect("get").version, version);

    // Forged and mismatched tickets.
    let forged = LockTicket {
        key: "big".into(),
        token: [0x42; 16],
    };
    assert!(states
        .put(&forged, Bytes::new())
        .await
        .unwrap_err()
        .is_lock_lost());
    let hold = states.lock_split("big").await.expect("lock_split");
    let mismatched = LockTicket {
        key: "k".into(),
        token: hold.ticket().token,
    };
    assert!(states
        .put(&mismatched, Bytes::new())
        .await
        .unwrap_err()
        .is_lock_lost());
    // The real ticket still works.
    let last = hold.commit(&b"ok"[..]).await.expect("commit");
    let state = states.get("big").await.expect("get");
    assert_eq!((&state.value[..], state.version), (&b"ok"[..], last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_tcp() {
    within(bad_input(LoopbackKind::Tcp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_quic() {
    within(bad_input(LoopbackKind::Quic)).await;
}

#[test]
fn unusable_configurations_are_refused() {
    let store = std::sync::Arc::new(liaison_resume::MemoryStore::new());
    for config in [
        StateConfig::default().with_max_key_len(0),
        StateConfig::default().with_max_state_size(0),
        StateConfig::default().with_lease(Duration::ZERO),
        StateConfig::default().with_poll_interval(Duration::ZERO),
        StateConfig::default().with_state_ttl(Some(Duration::ZERO)),
    ] {
        let error = StateService::new(store.clone(), config).unwrap_err();
        assert!(matches!(error, StateError::InvalidConfig(_)), "{error}");
    }
}
