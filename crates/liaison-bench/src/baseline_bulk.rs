//! Bulk-throughput baselines: 64 KiB messages through raw TCP, one yamux stream over TCP, and
//! one raw quinn stream.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::poll_fn;
use futures::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::measure::{rate_one, Budget};

/// Size of one bulk message.
pub(crate) const CHUNK: usize = 64 * 1024;

const MIB: f64 = 1024.0 * 1024.0;

async fn tcp_sink_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect loopback");
    let (server, _) = server.expect("accept");
    client.set_nodelay(true).ok();
    server.set_nodelay(true).ok();
    (client, server)
}

/// Raw TCP: the sender writes 64 KiB chunks, the receiver reads whole chunks.
pub(crate) async fn tcp(budget: Budget) -> f64 {
    let (mut client, mut server) = tcp_sink_pair().await;
    tokio::spawn(async move {
        let chunk = vec![1u8; CHUNK];
        while client.write_all(&chunk).await.is_ok() {}
    });
    let chunks = rate_one(budget, move |counter| async move {
        let mut buf = vec![0u8; CHUNK];
        while counter.running() && server.read_exact(&mut buf).await.is_ok() {
            counter.add(1);
        }
    })
    .await;
    chunks * CHUNK as f64 / MIB
}

/// One yamux stream over TCP.
pub(crate) async fn yamux(budget: Budget) -> f64 {
    let (client, server) = tcp_sink_pair().await;
    let mut client_conn = yamux::Connection::new(
        client.compat(),
        yamux::Config::default(),
        yamux::Mode::Client,
    );
    let mut server_conn = yamux::Connection::new(
        server.compat(),
        yamux::Config::default(),
        yamux::Mode::Server,
    );
    let mut outbound = poll_fn(|cx| client_conn.poll_new_outbound(cx))
        .await
        .expect("yamux outbound stream");
    // The client connection must keep being polled to move data.
    tokio::spawn(async move {
        while poll_fn(|cx| client_conn.poll_next_inbound(cx))
            .await
            .is_some()
        {}
    });
    tokio::spawn(async move {
        let chunk = vec![1u8; CHUNK];
        while outbound.write_all(&chunk).await.is_ok() {}
    });
    let inbound = match poll_fn(|cx| server_conn.poll_next_inbound(cx)).await {
        Some(Ok(stream)) => stream,
        other => panic!("yamux inbound stream: {other:?}"),
    };
    tokio::spawn(async move {
        while poll_fn(|cx| server_conn.poll_next_inbound(cx))
            .await
            .is_some()
        {}
    });
    let mut inbound = inbound;
    let chunks = rate_one(budget, move |counter| async move {
        let mut buf = vec![0u8; CHUNK];
        while counter.running() && inbound.read_exact(&mut buf).await.is_ok() {
            counter.add(1);
        }
    })
    .await;
    chunks * CHUNK as f64 / MIB
}

/// A self-signed QUIC server and a client that trusts it, on loopback.
pub(crate) fn quinn_pair() -> (quinn::Endpoint, quinn::Endpoint, SocketAddr) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("self-signed cert");
    let cert_der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let server_config =
        quinn::ServerConfig::with_single_cert(vec![cert_der.clone()], key).expect("server config");
    let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().expect("addr"))
        .expect("bind quic server");
    let addr = server.local_addr().expect("bound address");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).expect("trust self-signed cert");
    let client_config =
        quinn::ClientConfig::with_root_certificates(Arc::new(roots)).expect("client config");
    let mut client =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind quic client");
    client.set_default_client_config(client_config);
    (server, client, addr)
}

/// One raw quinn stream.
pub(crate) async fn quinn(budget: Budget) -> f64 {
    let (server, client, addr) = quinn_pair();
    let accept = tokio::spawn(async move {
        let conn = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("handshake");
        let stream = conn.accept_uni().await.expect("stream");
        (server, conn, stream)
    });
    let conn = client
        .connect(addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    let mut send = conn.open_uni().await.expect("open stream");
    tokio::spawn(async move {
        let chunk = bytes::Bytes::from(vec![1u8; CHUNK]);
        while send.write_chunk(chunk.clone()).await.is_ok() {}
    });
    let (_server, _conn, recv) = accept.await.expect("accept task");
    let mut recv = recv;
    let chunks = rate_one(budget, move |counter| async move {
        let mut buf = vec![0u8; CHUNK];
        while counter.running() && recv.read_exact(&mut buf).await.is_ok() {
            counter.add(1);
        }
    })
    .await;
    drop(client);
    chunks * CHUNK as f64 / MIB
}
