//! Helpers shared by the integration tests: frame patterns, unique addresses, QUIC test certificates, connected pairs.

// Each test file compiles this module on its own and uses only some of the helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use liaison_transport::{
    bind, connect, Address, QuicClientTls, QuicConfig, QuicServerTls, Transport, TransportConfig,
};

/// A frame of `len` bytes whose content depends on `seed` (the seed is in the first bytes).
pub(crate) fn pattern(seed: u32, len: usize) -> Bytes {
    let seed_bytes = seed.to_le_bytes();
    let bytes: Vec<u8> = (0..len)
        .map(|i| match seed_bytes.get(i) {
            Some(b) => *b,
            None => (i.wrapping_mul(31).wrapping_add(seed as usize) % 251).to_le_bytes()[0],
        })
        .collect();
    Bytes::from(bytes)
}

/// A name unique within this test process.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A socket path in the temporary directory that nothing uses yet.
pub(crate) fn unix_path() -> PathBuf {
    std::env::temp_dir().join(format!("{}.sock", unique("liaison-test")))
}

/// The self-signed certificate of every QUIC test server.
pub(crate) fn server_tls() -> &'static QuicServerTls {
    static TLS: OnceLock<QuicServerTls> = OnceLock::new();
    // Generating a certificate with fixed names cannot fail.
    TLS.get_or_init(|| QuicServerTls::self_signed(&["localhost", "127.0.0.1"]).unwrap())
}

/// A configuration that can both bind QUIC (test certificate) and connect to it (trusting it).
pub(crate) fn quic_config(max_frame: usize) -> TransportConfig {
    TransportConfig::default()
        .with_max_frame(max_frame)
        .with_quic(
            QuicConfig::default()
                .with_server_tls(server_tls().clone())
                .with_client_tls(QuicClientTls::trust_certificates(vec![server_tls()
                    .cert_der()
                    .clone()])),
        )
}

/// Binds at `addr`, connects, and returns `(client, server)`.
pub(crate) async fn pair(
    addr: &Address,
    server_config: &TransportConfig,
    client_config: &TransportConfig,
) -> (Box<dyn Transport>, Box<dyn Transport>) {
    let mut listener = bind(addr, server_config).await.expect("bind");
    let local = listener.local_addr();
    let (client, server) = tokio::join!(connect(&local, client_config), listener.accept());
    (client.expect("connect"), server.expect("accept"))
}
