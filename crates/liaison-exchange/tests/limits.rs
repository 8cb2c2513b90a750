//! The limit on open exchanges: past it, opening waits or fails with a typed error, per
//! configuration; the limit in force is the smaller of the local one and the session's
//! negotiated one; and a peer whose own limit is lower refuses the excess.

mod common;

use bytes::Bytes;
use common::{session_config, sessions, within, Echo, Kind};
use liaison_exchange::{CancelCode, Endpoint, ExchangeConfig, ExchangeError, LimitPolicy};
use liaison_session::Origin;

fn config(max_exchanges: u32, on_limit: LimitPolicy) -> ExchangeConfig {
    let mut config = ExchangeConfig::default();
    config.max_exchanges = max_exchanges;
    config.on_limit = on_limit;
    config
}

async fn endpoints(
    negotiated: u32,
    client: ExchangeConfig,
    server: ExchangeConfig,
) -> (Endpoint, Endpoint) {
    let (c, s) = sessions(Kind::Memory, session_config(negotiated)).await;
    let server = Endpoint::builder(s)
        .config(server)
        .root(Echo)
        .start()
        .expect("server");
    let client = Endpoint::new(c, client).expect("client");
    (client, server)
}

#[tokio::test]
async fn fail_policy_fails_at_once_past_the_limit() {
    within(async {
        let (client, _server) =
            endpoints(64, config(2, LimitPolicy::Fail), ExchangeConfig::default()).await;
        assert_eq!(client.stats().limit, 2);
        let root = client.root().expect("root");
        let mut a = root.begin().await.expect("first");
        let _b = root.begin().await.expect("second");
        let third = root.begin().await;
        assert!(
            matches!(third, Err(ExchangeError::TooManyExchanges { limit: 2 })),
            "{third:?}"
        );
        let call = root.call(Bytes::from_static(b"x")).await;
        assert!(matches!(call, Err(ExchangeError::TooManyExchanges { .. })));

        // Once an exchange is closed (both sides ended), there is room again.
        a.end().await.expect("end");
        assert_eq!(a.recv().await.expect("end"), None);
        drop(a);
        let reply = root
            .call(Bytes::from_static(b"x"))
            .await
            .expect("room again");
        assert_eq!(reply, "x");
    })
    .await;
}

#[tokio::test]
async fn wait_policy_waits_for_room() {
    within(async {
        let (client, _server) =
            endpoints(64, config(1, LimitPolicy::Wait), ExchangeConfig::default()).await;
        let root = client.root().expect("root");
        let open = root.begin().await.expect("first");
        let waiting = tokio::spawn({
            let root = root.clone();
            async move { root.call(Bytes::from_static(b"later")).await }
        });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "the call did not wait");
        assert_eq!(client.stats().outgoing, 1);
        // Dropping the open exchange cancels it; once the cancel is sent, the call runs.
        drop(open);
        let reply = waiting.await.expect("task").expect("call");
        assert_eq!(reply, "later");
    })
    .await;
}

#[tokio::test]
async fn the_negotiated_limit_caps_the_local_one() {
    within(async {
        let (client, server) = endpoints(
            3,
            config(100, LimitPolicy::Fail),
            config(100, LimitPolicy::Fail),
        )
        .await;
        assert_eq!(client.stats().limit, 3);
        assert_eq!(server.stats().limit, 3);
        let root = client.root().expect("root");
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(root.begin().await.expect("within the limit"));
        }
        assert!(matches!(
            root.begin().await,
            Err(ExchangeError::TooManyExchanges { limit: 3 })
        ));
    })
    .await;
}

#[tokio::test]
async fn a_peer_with_a_lower_limit_refuses_the_excess() {
    within(async {
        let (client, server) = endpoints(
            64,
            config(8, LimitPolicy::Fail),
            config(2, LimitPolicy::Fail),
        )
        .await;
        let root = client.root().expect("root");
        let mut accepted = Vec::new();
        for _ in 0..2 {
            let mut exchange = root.begin().await.expect("begin");
            exchange.send(Bytes::from_static(b"1")).await.expect("send");
            assert_eq!(exchange.recv().await.expect("echo"), Some("1".into()));
            accepted.push(exchange);
        }
        assert_eq!(server.stats().incoming, 2);
        let refused = root.call(Bytes::from_static(b"one too many")).await;
        assert!(
            matches!(
                refused,
                Err(ExchangeError::Cancelled {
                    by: Origin::Remote,
                    code: CancelCode::TooManyExchanges,
                    ..
                })
            ),
            "{refused:?}"
        );
        // The accepted ones still work.
        for exchange in &mut accepted {
            exchange.send(Bytes::from_static(b"2")).await.expect("send");
            assert_eq!(exchange.recv().await.expect("echo"), Some("2".into()));
        }
    })
    .await;
}
