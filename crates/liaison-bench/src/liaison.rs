//! liaison's side of each benchmark: typed unary calls and one-exchange bulk transfer over an
//! authenticated session, on the same transports as the baselines.

use async_trait::async_trait;
use bytes::Bytes;
use liaison_exchange::{service_fn, Context, Endpoint, Exchange, Service};
use liaison_session::{ClientConfig, PskAuth, RootCapability, Server, ServerConfig, Session};
use liaison_transport::{Loopback, LoopbackKind};

use crate::baseline_bulk::CHUNK;
use crate::measure::{rate, rate_one, Budget, Counter};

const KEY: [u8; 32] = [0x5a; 32];
const MIB: f64 = 1024.0 * 1024.0;

/// Reads every message of an exchange and drops it: the far end of the bulk benchmark.
struct Sink;

#[async_trait]
impl Service for Sink {
    async fn handle(&self, mut exchange: Exchange, _ctx: &Context) {
        while let Ok(Some(_)) = exchange.recv().await {}
    }
}

/// An established session pair over a loopback endpoint of `kind`: the client's endpoint, and
/// the server's endpoint serving `root`.
async fn pair(kind: LoopbackKind, root: impl Service) -> (Endpoint, Endpoint) {
    let endpoint = Loopback::new(kind).expect("loopback endpoint");
    let auth = || PskAuth::new("bench", KEY).expect("a valid key");
    let mut server = Server::bind(
        &endpoint.address,
        &endpoint.config,
        ServerConfig::new(auth()).with_root(RootCapability::new(1, &b"bench"[..])),
    )
    .await
    .expect("bind");
    let addr = server.local_addr().clone();
    let (client, accepted) = tokio::join!(
        Session::connect_to(&addr, &endpoint.config, ClientConfig::new(auth())),
        server.accept()
    );
    let client = Endpoint::new(client.expect("connect"), Default::default()).expect("endpoint");
    let server = Endpoint::builder(accepted.expect("accept"))
        .root(root)
        .start()
        .expect("endpoint");
    (client, server)
}

/// Typed unary round trips (`u64` in, `u64` out), `inflight` callers at once.
pub(crate) async fn calls(kind: LoopbackKind, budget: Budget, inflight: usize) -> f64 {
    let echo = service_fn(|value: u64, _ctx: Context| async move { Ok::<u64, String>(value) });
    let (client, server) = pair(kind, echo).await;
    let root = client.root().expect("root capability");
    let calls = rate(budget, inflight, move |counter: Counter| {
        let root = root.typed::<u64, u64>();
        async move {
            let mut v = 0u64;
            while counter.running() {
                match root.call(&v).await {
                    Ok(back) => v = back + 1,
                    Err(_) => return,
                }
                counter.add(1);
            }
        }
    })
    .await;
    client.close("done").await;
    drop(server);
    calls
}

/// Bulk throughput through one exchange: 64 KiB messages, MiB/s at the sender once the
/// receiver's credit window is the limit.
pub(crate) async fn bulk(kind: LoopbackKind, budget: Budget) -> f64 {
    let (client, server) = pair(kind, Sink).await;
    let mut exchange = client
        .root()
        .expect("root capability")
        .begin()
        .await
        .expect("begin");
    let chunk = Bytes::from(vec![1u8; CHUNK]);
    let chunks = rate_one(budget, move |counter| async move {
        while counter.running() && exchange.send(chunk.clone()).await.is_ok() {
            counter.add(1);
        }
    })
    .await;
    client.close("done").await;
    drop(server);
    chunks * CHUNK as f64 / MIB
}
