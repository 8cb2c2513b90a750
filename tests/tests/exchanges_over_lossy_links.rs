//! Exchanges over ordered sessions on links that lose 5% of frames each way (and duplicate
//! and reorder some): the fault-injection wrapper around memory, TCP and QUIC datagrams.
//! Every exchange completes with every message intact, on its own exchange, in order.

use std::time::Duration;

use bytes::Bytes;
use liaison_exchange::{Endpoint, ExchangeError};
use liaison_session::{
    ClientConfig, PskAuth, RootCapability, SequencingMode, ServerConfig, Session, SessionConfig,
};
use liaison_tests::{connected_pair, Echo};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultyTransport};
use liaison_transport::{memory, LoopbackKind, Transport};

fn faults(seed: u64) -> FaultConfig {
    FaultConfig::default()
        .with_seed(seed)
        .with_drop(0.05)
        .with_duplicate(0.02)
        .with_reorder(0.05)
}

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.keepalive_interval = Duration::from_secs(1);
    config.idle_timeout = Duration::from_secs(30);
    config.handshake_timeout = Duration::from_secs(20);
    config.retransmit.initial_rto = Duration::from_millis(40);
    config.retransmit.max_rto = Duration::from_millis(640);
    config
}

/// A connected transport pair of `kind`, each end wrapped in its own fault injector, with
/// the injectors' handles.
async fn lossy_pair(
    kind: LoopbackKind,
    seed: u64,
) -> (Box<dyn Transport>, Box<dyn Transport>, [FaultHandle; 2]) {
    let (client, server): (Box<dyn Transport>, Box<dyn Transport>) = if kind == LoopbackKind::Memory
    {
        let (a, b) = memory::pair(256, 1 << 20);
        (Box::new(a), Box::new(b))
    } else {
        connected_pair(kind).await
    };
    let client = FaultyTransport::new(client, faults(seed));
    let server = FaultyTransport::new(server, faults(seed ^ 0xff));
    let handles = [client.handle(), server.handle()];
    (Box::new(client), Box::new(server), handles)
}

fn message(exchange: u64, index: u64) -> Bytes {
    let mut body = Vec::with_capacity(16);
    body.extend_from_slice(&exchange.to_le_bytes());
    body.extend_from_slice(&index.to_le_bytes());
    Bytes::from(body)
}

async fn every_exchange_completes(kind: LoopbackKind, seed: u64) {
    const EXCHANGES: u64 = 40;
    const MESSAGES: u64 = 10;
    let (a, b, handles) = lossy_pair(kind, seed).await;
    let psk = |name: &str| {
        PskAuth::new("tests", [9u8; 32])
            .expect("key")
            .with_name(name)
    };
    let (client, server) = tokio::join!(
        Session::connect(
            a,
            ClientConfig::new(psk("client"))
                .with_session(session_config())
                .with_sequencing(SequencingMode::Ordered)
        ),
        Session::accept(
            b,
            ServerConfig::new(psk("server"))
                .with_session(session_config())
                .with_root(RootCapability::new(1, &b"echo"[..]))
        )
    );
    let _server = Endpoint::builder(server.expect("accept"))
        .root(Echo)
        .start()
        .expect("server endpoint");
    let client = Endpoint::new(client.expect("connect"), Default::default()).expect("endpoint");
    let root = client.root().expect("root capability");
    let mut tasks = tokio::task::JoinSet::new();
    for x in 0..EXCHANGES {
        let root = root.clone();
        tasks.spawn(async move {
            let mut exchange = root.begin().await?;
            for i in 0..MESSAGES {
                exchange.send(message(x, i)).await?;
            }
            exchange.end().await?;
            let mut received = Vec::new();
            while let Some(back) = exchange.recv().await? {
                received.push(back);
            }
            Ok::<_, ExchangeError>((x, received))
        });
    }
    let mut completed = 0;
    while let Some(joined) = tasks.join_next().await {
        let (x, received) = joined.expect("task").expect("exchange completes");
        let expected: Vec<Bytes> = (0..MESSAGES).map(|i| message(x, i)).collect();
        assert_eq!(received, expected, "exchange {x} over {kind}");
        completed += 1;
    }
    assert_eq!(completed, EXCHANGES);
    client.close("done").await;
    for (side, handle) in ["client", "server"].iter().zip(&handles) {
        let stats = handle.stats();
        assert!(
            stats.dropped > 0 && stats.reordered > 0,
            "the {side}'s link over {kind} really lost and reordered frames: {stats:?}"
        );
    }
}

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("nothing hangs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_complete_over_lossy_memory() {
    bounded(every_exchange_completes(LoopbackKind::Memory, 11)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_complete_over_lossy_tcp() {
    bounded(every_exchange_completes(LoopbackKind::Tcp, 12)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_complete_over_lossy_quic_datagrams() {
    bounded(every_exchange_completes(LoopbackKind::QuicDatagram, 13)).await;
}
