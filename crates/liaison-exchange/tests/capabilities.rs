//! Capabilities: the root capability from the handshake, results carrying new capabilities
//! (both ways), unknown and withdrawn capabilities, and revocation after termination by
//! close, abort and transport failure: pending calls resolve `Aborted(reason)`, later calls
//! fail at once with `Revoked(reason)`, and running handlers are cancelled.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::{cuttable_sessions, session_config, sessions, within, Kind};
use liaison_exchange::{
    raw_service_fn, service_fn, CapabilityRef, Context, Endpoint, ExchangeConfig, ExchangeError,
};
use liaison_session::{Origin, Session, TerminationReason};
use serde::{Deserialize, Serialize};

/// What the root service answers.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// A new counter capability starting at the given value.
    NewCounter(u64),
    /// Call the client's capability back with this value and return its answer.
    CallBack(CapabilityRef, u64),
    /// Never answer (until cancelled).
    Hang,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Response {
    Counter(CapabilityRef),
    Value(u64),
}

fn root_service() -> impl liaison_exchange::Service {
    service_fn(|request: Request, ctx: Context| async move {
        match request {
            Request::NewCounter(start) => {
                let count = Arc::new(AtomicU64::new(start));
                let counter = ctx.export(service_fn(move |step: u64, _ctx: Context| {
                    let count = Arc::clone(&count);
                    async move { Ok::<_, String>(count.fetch_add(step, Ordering::SeqCst) + step) }
                }));
                Ok(Response::Counter(counter))
            }
            Request::CallBack(capability, value) => {
                let doubled: u64 = ctx
                    .remote(capability)
                    .call_typed(&value)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Response::Value(doubled))
            }
            Request::Hang => {
                ctx.cancelled().await;
                Err("cancelled".to_string())
            }
        }
    })
}

async fn endpoints(client: Session, server: Session) -> (Endpoint, Endpoint) {
    let server = Endpoint::builder(server)
        .root(root_service())
        .start()
        .expect("server");
    let client = Endpoint::new(client, ExchangeConfig::default()).expect("client");
    (client, server)
}

async fn capabilities_travel_in_results(kind: Kind) {
    let (client, server) = sessions(kind, session_config(64)).await;
    let (client, _server) = endpoints(client, server).await;
    let root = client.root().expect("root");
    assert_eq!(root.capability(), CapabilityRef(common::ROOT));

    // The server hands out two counters; each is its own capability with its own state.
    let counters: Vec<_> = [10, 100]
        .into_iter()
        .map(|start| root.call_typed::<_, Response>(&Request::NewCounter(start)))
        .collect();
    let mut remotes = Vec::new();
    for counter in counters {
        let Response::Counter(capability) = counter.await.expect("counter") else {
            panic!("not a counter");
        };
        assert_ne!(capability.id(), common::ROOT);
        remotes.push(client.remote(capability).typed::<u64, u64>());
    }
    assert_ne!(remotes[0].capability(), remotes[1].capability());
    assert_eq!(remotes[0].call(&1).await.expect("call"), 11);
    assert_eq!(remotes[0].call(&5).await.expect("call"), 16);
    assert_eq!(remotes[1].call(&1).await.expect("call"), 101);

    // The other way: the client exports a capability and the server calls it back.
    let doubler = client.export(service_fn(|n: u64, _ctx: Context| async move {
        Ok::<_, String>(n * 2)
    }));
    let answer: Response = root
        .call_typed(&Request::CallBack(doubler, 21))
        .await
        .expect("call back");
    assert_eq!(answer, Response::Value(42));

    // A capability nobody serves, and one withdrawn.
    let unknown = client.remote(CapabilityRef(999)).call(Bytes::new()).await;
    assert!(
        matches!(
            unknown,
            Err(ExchangeError::UnknownCapability { target: 999 })
        ),
        "{unknown:?}"
    );
    assert!(client.unexport(doubler));
    let withdrawn: Result<Response, _> = root.call_typed(&Request::CallBack(doubler, 1)).await;
    let error = withdrawn.expect_err("withdrawn");
    assert!(
        matches!(&error, ExchangeError::RemoteError(text) if text.contains("serves no capability")),
        "{error:?}"
    );
}

#[tokio::test]
async fn capabilities_travel_in_results_memory() {
    within(capabilities_travel_in_results(Kind::Memory)).await;
}

#[tokio::test]
async fn capabilities_travel_in_results_tcp() {
    within(capabilities_travel_in_results(Kind::Tcp)).await;
}

#[tokio::test]
async fn capabilities_travel_in_results_quic() {
    within(capabilities_travel_in_results(Kind::Quic)).await;
}

#[tokio::test]
async fn a_client_can_serve_a_root_too() {
    within(async {
        let (client, server) = sessions(Kind::Memory, session_config(8)).await;
        let client = Endpoint::builder(client)
            .root(raw_service_fn(|request: Bytes, _ctx: Context| async move {
                Ok::<_, String>(Bytes::from([&b"client:"[..], &request].concat()))
            }))
            .start()
            .expect("client");
        let server = Endpoint::new(server, ExchangeConfig::default()).expect("server");
        let reply = server
            .root()
            .expect("root")
            .call(Bytes::from_static(b"hi"))
            .await
            .expect("call");
        assert_eq!(reply, "client:hi");
        drop(client);
    })
    .await;
}

/// How the session ends.
#[derive(Debug, Clone, Copy)]
enum End {
    ClientClose,
    ServerClose,
    ClientAbort,
    ServerAbort,
    TransportKilled,
}

async fn revoked_after(end: End) {
    let (client, server, cut) = cuttable_sessions(session_config(64)).await;
    let (client, server) = endpoints(client, server).await;
    let root = client.root().expect("root");
    let Response::Counter(counter) = root
        .call_typed(&Request::NewCounter(0))
        .await
        .expect("counter")
    else {
        panic!("not a counter");
    };
    let counter = client.remote(counter);

    // Calls pending when the session ends: one on the root, one on an open stream.
    let hanging = tokio::spawn(root.call_typed::<_, Response>(&Request::Hang));
    let mut stream = counter.begin().await.expect("begin");
    while server.stats().running_handlers < 2 {
        tokio::task::yield_now().await;
    }

    match end {
        End::ClientClose => {
            client.close("client done").await;
        }
        End::ServerClose => {
            server.close("server done").await;
        }
        End::ClientAbort => client.abort(),
        End::ServerAbort => server.abort(),
        End::TransportKilled => cut.cut(),
    }
    let reason = client.closed().await;
    let expected_origin = match end {
        End::ClientClose | End::ClientAbort => Some(Origin::Local),
        End::ServerClose | End::ServerAbort => Some(Origin::Remote),
        End::TransportKilled => None,
    };
    assert_eq!(reason.origin(), expected_origin, "{reason:?}");
    if matches!(end, End::TransportKilled) {
        assert!(
            matches!(reason, TerminationReason::TransportFailed(_)),
            "{reason:?}"
        );
    }

    // Pending eventual values: aborted with the reason.
    let pending = hanging.await.expect("task").expect_err("aborted");
    assert!(
        matches!(&pending, ExchangeError::Aborted(r) if *r == reason),
        "{pending:?}"
    );
    let recv = stream.recv().await.expect_err("aborted");
    assert!(
        matches!(&recv, ExchangeError::Aborted(r) if *r == reason),
        "{recv:?}"
    );
    let send = stream
        .send(Bytes::from_static(b"1"))
        .await
        .expect_err("aborted");
    assert!(send.is_aborted(), "{send:?}");

    // Every remote is revoked: later calls fail at once.
    for remote in [&root, &counter] {
        assert!(remote.is_revoked());
        let call = remote.call(Bytes::new()).await.expect_err("revoked");
        assert!(
            matches!(&call, ExchangeError::Revoked(r) if *r == reason),
            "{call:?}"
        );
        let begin = remote.begin().await.expect_err("revoked");
        assert!(begin.is_revoked(), "{begin:?}");
    }
    let fresh = client.remote(CapabilityRef(5)).call(Bytes::new()).await;
    assert!(matches!(fresh, Err(ExchangeError::Revoked(_))));

    // Running handlers on the server were cancelled and finished.
    server.closed().await;
    while server.stats().running_handlers > 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(client.stats().outgoing, 0);
}

#[tokio::test]
async fn revoked_after_client_close() {
    within(revoked_after(End::ClientClose)).await;
}

#[tokio::test]
async fn revoked_after_server_close() {
    within(revoked_after(End::ServerClose)).await;
}

#[tokio::test]
async fn revoked_after_client_abort() {
    within(revoked_after(End::ClientAbort)).await;
}

#[tokio::test]
async fn revoked_after_server_abort() {
    within(revoked_after(End::ServerAbort)).await;
}

#[tokio::test]
async fn revoked_after_transport_killed() {
    within(revoked_after(End::TransportKilled)).await;
}
