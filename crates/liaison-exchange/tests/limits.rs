//! The limit on open exchanges: past it, opening waits (first come, first served) or fails
//! with a typed error, per configuration; the limit in force is the smaller of the local one
//! and the session's negotiated one; a peer whose own limit is lower refuses the excess; and
//! openers also wait for room in the session's send queue.

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Waker};

use async_trait::async_trait;
use bytes::Bytes;
use common::{number, session_config, sessions, within, Echo, Kind};
use liaison_exchange::{
    CancelCode, Context, Endpoint, Exchange, ExchangeConfig, ExchangeError, LimitPolicy, Service,
};
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

/// Records the first message of each exchange and answers it with `Data` + `END`; keeps
/// [`HELD`] until the peer ends too.
struct Recorder(Arc<Mutex<Vec<Bytes>>>);

const HELD: u64 = 100;

#[async_trait]
impl Service for Recorder {
    async fn handle(&self, mut exchange: Exchange, _ctx: &Context) {
        let Ok(Some(first)) = exchange.recv().await else {
            return;
        };
        self.0.lock().expect("lock").push(first.clone());
        let held = first == number(HELD);
        if exchange.send_last(first).await.is_ok() && held {
            while let Ok(Some(_)) = exchange.recv().await {}
        }
    }
}

#[tokio::test]
async fn openers_waiting_for_room_are_served_first_come_first_served() {
    within(async {
        let (c, s) = sessions(Kind::Memory, session_config(64)).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let _server = Endpoint::builder(s)
            .root(Recorder(record))
            .start()
            .expect("server");
        let client = Endpoint::new(c, config(1, LimitPolicy::Wait)).expect("client");
        let root = client.root().expect("root");
        // The one exchange allowed: answered, open until this side ends it, and closed then
        // at once.
        let mut open = root.begin_with(number(HELD)).await.expect("first");
        assert_eq!(open.recv().await.expect("reply"), Some(number(HELD)));

        // Callers come one after the other while the limit is reached, and wait.
        let mut callers = Vec::new();
        for n in 0..5u64 {
            callers.push(tokio::spawn({
                let root = root.clone();
                async move { root.call(number(n)).await }
            }));
            for _ in 0..50 {
                tokio::task::yield_now().await;
            }
        }
        assert!(callers.iter().all(|caller| !caller.is_finished()));

        // Room, and at once a newcomer: it goes behind those who waited.
        open.end().await.expect("end");
        let mut newcomer = Box::pin(root.call(number(9)));
        let mut now = TaskContext::from_waker(Waker::noop());
        assert!(newcomer.as_mut().poll(&mut now).is_pending());
        let newcomer = tokio::spawn(newcomer);

        for (n, caller) in (0..5u64).zip(callers) {
            assert_eq!(caller.await.expect("task").expect("call"), number(n));
        }
        assert_eq!(newcomer.await.expect("task").expect("call"), number(9));
        let seen = seen.lock().expect("lock").clone();
        let order: Vec<_> = [HELD, 0, 1, 2, 3, 4, 9].into_iter().map(number).collect();
        assert_eq!(seen, order);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openers_wait_for_room_in_a_full_send_queue() {
    within(async {
        let mut session = session_config(1024);
        session.limits.send_buffer = 1;
        let (c, s) = sessions(Kind::Tcp, session).await;
        let _server = Endpoint::builder(s).root(Echo).start().expect("server");
        let client = Endpoint::new(c, ExchangeConfig::default()).expect("client");
        let root = client.root().expect("root");
        let callers: Vec<_> = (0..256u64)
            .map(|n| {
                let root = root.clone();
                tokio::spawn(async move {
                    for round in 0..8u64 {
                        let request = number(n << 8 | round);
                        assert_eq!(root.call(request.clone()).await.expect("call"), request);
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.expect("every call answered");
        }
        // Every exchange closed: nothing is left behind in either table.
        assert_eq!(client.stats().outgoing, 0);
    })
    .await;
}
