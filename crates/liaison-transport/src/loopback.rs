//! Ready-made loopback endpoints for every transport: for tests, demos and benchmarks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::address::Address;
use crate::config::{QuicConfig, TransportConfig};
use crate::error::TransportError;
use crate::tls::{QuicClientTls, QuicServerTls};

/// The transports a loopback endpoint can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoopbackKind {
    /// An in-process `mem://` listener with a unique name.
    Memory,
    /// `tcp://127.0.0.1:0`.
    Tcp,
    /// A Unix socket at a unique path in the temporary directory.
    Unix,
    /// `quic://127.0.0.1:0`, one stream per connection.
    Quic,
    /// `quic+dgram://127.0.0.1:0`, unreliable datagrams.
    QuicDatagram,
}

impl LoopbackKind {
    /// The four reliable transports: memory, TCP, Unix and QUIC streams.
    pub const RELIABLE: [Self; 4] = [Self::Memory, Self::Tcp, Self::Unix, Self::Quic];

    /// The URL scheme of the kind.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Memory => "mem",
            Self::Tcp => "tcp",
            Self::Unix => "unix",
            Self::Quic => "quic",
            Self::QuicDatagram => "quic+dgram",
        }
    }
}

impl fmt::Display for LoopbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Memory => "memory",
            Self::Tcp => "tcp",
            Self::Unix => "unix",
            Self::Quic => "quic",
            Self::QuicDatagram => "quic datagrams",
        })
    }
}

/// An address to bind on this machine and a configuration good for both ends of it.
///
/// For QUIC the configuration holds a fresh self-signed certificate for `localhost` as the
/// server identity, and a client side that trusts exactly that certificate: a development
/// setup that still verifies the server. Each call gives a new memory name, Unix path and
/// certificate, so endpoints never collide.
///
/// ```
/// # tokio_test_block_on(async {
/// use liaison_transport::{bind, connect, Loopback, LoopbackKind};
///
/// let endpoint = Loopback::new(LoopbackKind::Tcp)?;
/// let mut listener = bind(&endpoint.address, &endpoint.config).await?;
/// let client = connect(&listener.local_addr(), &endpoint.config).await?;
/// let server = listener.accept().await?;
/// assert!(client.info().properties.reliable && server.info().properties.ordered);
/// # Ok::<(), liaison_transport::TransportError>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Loopback {
    /// Where to bind (port 0 for TCP and QUIC: read the real one from the listener).
    pub address: Address,
    /// The configuration for the listener and for clients connecting to it.
    pub config: TransportConfig,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl Loopback {
    /// A new loopback endpoint of `kind`.
    pub fn new(kind: LoopbackKind) -> Result<Self, TransportError> {
        let unique = format!(
            "liaison-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let address = match kind {
            LoopbackKind::Memory => Address::Memory(unique),
            LoopbackKind::Tcp => "tcp://127.0.0.1:0".parse()?,
            LoopbackKind::Unix => {
                Address::Unix(std::env::temp_dir().join(format!("{unique}.sock")))
            }
            LoopbackKind::Quic => "quic://127.0.0.1:0".parse()?,
            LoopbackKind::QuicDatagram => "quic+dgram://127.0.0.1:0".parse()?,
        };
        let mut config = TransportConfig::default();
        if matches!(kind, LoopbackKind::Quic | LoopbackKind::QuicDatagram) {
            let server = QuicServerTls::self_signed(&["localhost"])?;
            let client = QuicClientTls::trust_certificates(vec![server.cert_der().clone()])
                .with_server_name("localhost");
            config = config.with_quic(
                QuicConfig::default()
                    .with_server_tls(server)
                    .with_client_tls(client),
            );
        }
        Ok(Self { address, config })
    }
}
