//! Cancellation: dropping a call's eventual value cancels its exchange and the server's
//! handler sees it; explicit cancels from either side; a handler that gives up; and
//! handler failures (errors and panics) reaching the caller as typed errors, as does a call
//! polled again after it resolved.

mod common;

use async_trait::async_trait;
use bytes::Bytes;
use common::{session_config, sessions, within, Kind};
use liaison_exchange::{
    service_fn, CancelCode, Context, Endpoint, Exchange, ExchangeConfig, ExchangeError, Service,
};
use liaison_session::Origin;
use tokio::sync::mpsc;

/// What the handler observed.
#[derive(Debug, PartialEq)]
enum Seen {
    Started(u64),
    /// `ctx.cancelled()` resolved; then the exchange failed with this.
    Cancelled {
        recv: String,
    },
}

/// Reports when it starts, then waits for a second message or its cancellation.
struct Watcher(mpsc::UnboundedSender<Seen>);

#[async_trait]
impl Service for Watcher {
    async fn handle(&self, mut exchange: Exchange, ctx: &Context) {
        let first = exchange.recv().await;
        let _ = self.0.send(Seen::Started(ctx.exchange_id()));
        match first {
            Ok(Some(request)) if request == "give up" => {
                // Returns without ending: the exchange is cancelled when dropped.
            }
            Ok(Some(request)) if request == "refuse" => exchange.cancel("not today"),
            _ => {
                ctx.cancelled().await;
                assert!(ctx.is_cancelled());
                let recv = match exchange.recv().await {
                    Err(e) => format!("{e:?}"),
                    Ok(other) => format!("not an error: {other:?}"),
                };
                let _ = self.0.send(Seen::Cancelled { recv });
            }
        }
    }
}

async fn setup(kind: Kind) -> (Endpoint, Endpoint, mpsc::UnboundedReceiver<Seen>) {
    let (client, server) = sessions(kind, session_config(64)).await;
    let (tx, seen) = mpsc::unbounded_channel();
    let server = Endpoint::builder(server)
        .root(Watcher(tx))
        .start()
        .expect("server");
    let client = Endpoint::new(client, ExchangeConfig::default()).expect("client");
    (client, server, seen)
}

async fn dropping_the_call_cancels_the_handler(kind: Kind) {
    let (client, server, mut seen) = setup(kind).await;
    let mut call = client
        .root()
        .expect("root")
        .call(Bytes::from_static(b"wait"));
    // Drive the call until the handler runs, then drop it.
    let started = tokio::select! {
        result = &mut call => panic!("the call resolved: {result:?}"),
        started = seen.recv() => started,
    };
    assert!(matches!(started, Some(Seen::Started(_))));
    drop(call);
    let cancelled = seen.recv().await.expect("the handler saw the cancellation");
    let Seen::Cancelled { recv } = cancelled else {
        panic!("{cancelled:?}");
    };
    assert!(
        recv.contains("Cancelled") && recv.contains("Remote"),
        "{recv}"
    );
    while server.stats().running_handlers > 0 || client.stats().outgoing > 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(server.stats().incoming, 0);
}

#[tokio::test]
async fn dropping_the_call_cancels_the_handler_memory() {
    within(dropping_the_call_cancels_the_handler(Kind::Memory)).await;
}

#[tokio::test]
async fn dropping_the_call_cancels_the_handler_tcp() {
    within(dropping_the_call_cancels_the_handler(Kind::Tcp)).await;
}

#[tokio::test]
async fn dropping_the_call_cancels_the_handler_quic() {
    within(dropping_the_call_cancels_the_handler(Kind::Quic)).await;
}

#[tokio::test]
async fn explicit_cancels_from_either_side() {
    within(async {
        let (client, _server, mut seen) = setup(Kind::Memory).await;
        let root = client.root().expect("root");

        // The client cancels an open exchange: the handler sees it with the reason.
        let mut exchange = root.begin().await.expect("begin");
        exchange
            .send(Bytes::from_static(b"wait"))
            .await
            .expect("send");
        assert!(matches!(seen.recv().await, Some(Seen::Started(_))));
        exchange.cancel("changed my mind");
        let Some(Seen::Cancelled { recv }) = seen.recv().await else {
            panic!("no cancellation seen");
        };
        assert!(recv.contains("changed my mind"), "{recv}");

        // The handler cancels: the caller gets `Cancelled { by: Remote }` with its reason.
        let refused = root.call(Bytes::from_static(b"refuse")).await;
        assert!(
            matches!(
                &refused,
                Err(ExchangeError::Cancelled { by: Origin::Remote, code: CancelCode::Cancelled, reason })
                    if reason == "not today"
            ),
            "{refused:?}"
        );

        // A handler that returns without ending cancels its exchange.
        let abandoned = root.call(Bytes::from_static(b"give up")).await;
        assert!(
            matches!(abandoned, Err(ExchangeError::Cancelled { by: Origin::Remote, .. })),
            "{abandoned:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn handler_failures_are_typed_errors() {
    within(async {
        let (client, server) = sessions(Kind::Memory, session_config(8)).await;
        let _server = Endpoint::builder(server)
            .root(service_fn(|n: i32, _ctx: Context| async move {
                if n < 0 {
                    Err(format!("{n} is negative"))
                } else {
                    Ok(n * 2)
                }
            }))
            .start()
            .expect("server");
        let client = Endpoint::new(client, ExchangeConfig::default()).expect("client");
        let root = client.root().expect("root").typed::<i32, i32>();
        assert_eq!(root.call(&4).await.expect("call"), 8);
        let failed = root.call(&-1).await;
        assert!(
            matches!(&failed, Err(ExchangeError::RemoteError(m)) if m == "-1 is negative"),
            "{failed:?}"
        );
        // A request the service cannot decode.
        let garbage = client
            .root()
            .expect("root")
            .call(Bytes::from_static(&[0xff, 0xff, 0xff]))
            .await;
        assert!(
            matches!(&garbage, Err(ExchangeError::RemoteError(m)) if m.contains("undecodable")),
            "{garbage:?}"
        );
        // A reply the caller cannot decode.
        let wrong: Result<String, _> = client.root().expect("root").call_typed(&3i32).await;
        assert!(matches!(wrong, Err(ExchangeError::Codec(_))), "{wrong:?}");
    })
    .await;
}

/// Panics on `"now"` before its first wait, on `"later"` after one; echoes anything else.
struct Panicky;

#[async_trait]
impl Service for Panicky {
    async fn handle(&self, mut exchange: Exchange, _ctx: &Context) {
        let Ok(Some(request)) = exchange.recv().await else {
            return;
        };
        if request == "now" {
            panic!("a handler that fails at once");
        }
        if request == "later" {
            tokio::task::yield_now().await;
            panic!("a handler that fails after a wait");
        }
        let _ = exchange.send_last(request).await;
    }
}

/// A handler that panics, whether it runs on the dispatcher (before its first wait) or in
/// its own task (after it), cancels its call; the endpoint goes on serving.
async fn a_panicking_handler_cancels_its_call(kind: Kind) {
    let (client, server) = sessions(kind, session_config(64)).await;
    let server = Endpoint::builder(server)
        .root(Panicky)
        .start()
        .expect("server");
    let client = Endpoint::new(client, ExchangeConfig::default()).expect("client");
    let root = client.root().expect("root");
    for request in ["now", "later", "now"] {
        let result = root.call(Bytes::from_static(request.as_bytes())).await;
        assert!(
            matches!(
                &result,
                Err(ExchangeError::Cancelled {
                    by: Origin::Remote,
                    ..
                })
            ),
            "{request}: {result:?}"
        );
        let echoed = root.call(Bytes::from_static(b"still here")).await;
        assert_eq!(echoed.expect("the endpoint still serves"), "still here");
    }
    while server.stats().running_handlers > 0 {
        tokio::task::yield_now().await;
    }
    assert!(!client.session().is_terminated());
}

#[tokio::test]
async fn a_panicking_handler_cancels_its_call_memory() {
    within(a_panicking_handler_cancels_its_call(Kind::Memory)).await;
}

#[tokio::test]
async fn a_panicking_handler_cancels_its_call_tcp() {
    within(a_panicking_handler_cancels_its_call(Kind::Tcp)).await;
}

#[tokio::test]
async fn a_call_polled_again_after_it_resolved_fails_with_a_typed_error() {
    within(async {
        let (client, _server, _seen) = setup(Kind::Memory).await;
        let root = client.root().expect("root");
        let mut call = root.call(Bytes::from_static(b"refuse"));
        let first = (&mut call).await;
        assert!(
            matches!(first, Err(ExchangeError::Cancelled { .. })),
            "{first:?}"
        );
        let again = (&mut call).await;
        assert!(
            matches!(again, Err(ExchangeError::Protocol(_))),
            "{again:?}"
        );
    })
    .await;
}
