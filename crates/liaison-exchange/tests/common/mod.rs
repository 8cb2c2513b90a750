//! Shared helpers of the integration suites: a session pair over each transport (memory,
//! TCP, QUIC with a self-signed certificate), with the server offering a root capability,
//! and small services the suites use.

// Each suite uses a part of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use liaison_exchange::{Context, Exchange, Service};
use liaison_session::{
    ClientConfig, PskAuth, RootCapability, ServerConfig, Session, SessionConfig,
};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultyTransport};
use liaison_transport::{memory, QuicClientTls, QuicConfig, QuicServerTls, TransportConfig};

/// Which transport a suite runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Memory,
    Tcp,
    Quic,
}

/// The id of the server's root capability in every suite.
pub(crate) const ROOT: u64 = 1;

const KEY: [u8; 32] = [0x42; 32];

/// Session settings: `max_exchanges` each way, the default timers.
pub(crate) fn session_config(max_exchanges: u32) -> SessionConfig {
    let mut config = SessionConfig::default();
    config.limits.max_exchanges = max_exchanges;
    config
}

fn client_config(session: SessionConfig) -> ClientConfig {
    ClientConfig::new(PskAuth::new("tests", KEY).expect("key").with_name("client"))
        .with_session(session)
}

fn server_config(session: SessionConfig) -> ServerConfig {
    ServerConfig::new(PskAuth::new("tests", KEY).expect("key").with_name("server"))
        .with_session(session)
        .with_root(RootCapability::new(ROOT, &b"liaison-exchange tests"[..]))
}

/// A client and a server session over `kind`, both with `session` settings.
pub(crate) async fn sessions(kind: Kind, session: SessionConfig) -> (Session, Session) {
    match kind {
        Kind::Memory => {
            let (a, b) = memory::pair(256, 1 << 20);
            tokio::try_join!(
                Session::connect(Box::new(a), client_config(session.clone())),
                Session::accept(Box::new(b), server_config(session)),
            )
            .expect("memory sessions")
        }
        Kind::Tcp => {
            let config = TransportConfig::default();
            over_network("tcp://127.0.0.1:0", &config, &config, session).await
        }
        Kind::Quic => {
            let server_tls = QuicServerTls::self_signed(&["localhost"]).expect("certificate");
            let client_tls = QuicClientTls::trust_certificates(vec![server_tls.cert_der().clone()])
                .with_server_name("localhost");
            let server = TransportConfig::default()
                .with_quic(QuicConfig::default().with_server_tls(server_tls));
            let client = TransportConfig::default()
                .with_quic(QuicConfig::default().with_client_tls(client_tls));
            over_network("quic://127.0.0.1:0", &server, &client, session).await
        }
    }
}

async fn over_network(
    address: &str,
    server_transport: &TransportConfig,
    client_transport: &TransportConfig,
    session: SessionConfig,
) -> (Session, Session) {
    let mut server = liaison_session::Server::bind(
        &address.parse().expect("address"),
        server_transport,
        server_config(session.clone()),
    )
    .await
    .expect("bind");
    let addr = server.local_addr().clone();
    let (client, accepted) = tokio::join!(
        Session::connect_to(&addr, client_transport, client_config(session)),
        server.accept(),
    );
    (
        client.expect("client session"),
        accepted.expect("server session"),
    )
}

/// A client and a server session over memory whose client side can be cut abruptly.
pub(crate) async fn cuttable_sessions(session: SessionConfig) -> (Session, Session, FaultHandle) {
    let (a, b) = memory::pair(256, 1 << 20);
    let faulty = FaultyTransport::new(Box::new(a), FaultConfig::default());
    let handle = faulty.handle();
    let (client, server) = tokio::try_join!(
        Session::connect(Box::new(faulty), client_config(session.clone())),
        Session::accept(Box::new(b), server_config(session)),
    )
    .expect("memory sessions");
    (client, server, handle)
}

/// Bounds a test on (possibly paused) time: nothing may hang.
pub(crate) async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("the test hung")
}

/// Echoes every message back, then ends when the peer ends.
pub(crate) struct Echo;

#[async_trait]
impl Service for Echo {
    async fn handle(&self, mut exchange: Exchange, _ctx: &Context) {
        loop {
            match exchange.recv().await {
                Ok(Some(message)) => {
                    if exchange.send(message).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    let _ = exchange.end().await;
                    return;
                }
                Err(_) => return,
            }
        }
    }
}

/// `n` as a message.
pub(crate) fn number(n: u64) -> Bytes {
    Bytes::copy_from_slice(&n.to_le_bytes())
}
