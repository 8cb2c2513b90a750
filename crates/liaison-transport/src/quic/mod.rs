//! QUIC transport (quinn): endpoints, connect and listen, in stream mode (`quic://`) or datagram mode (`quic+dgram://`).
//!
//! **Stream mode.** Each connection carries one bidirectional stream. The client opens it and
//! writes [`STREAM_PREAMBLE`] first, so that the server's `accept_bi` sees the stream at once;
//! then both directions carry length-prefixed frames and the end-of-stream marker (see
//! [wire framing](crate#wire-framing)). A graceful close writes the marker, finishes the stream and waits until
//! the peer acknowledged everything; the connection itself is closed once both halves of the
//! transport are dropped.
//!
//! **Datagram mode.** Each frame is one QUIC datagram: unreliable, unordered, and limited to the
//! connection's current datagram size ([`Properties::max_frame`](crate::Properties) holds its value
//! when the connection was established; the sender checks the current value for every frame). A
//! graceful close closes the connection with [`CLOSE_GRACEFUL`], which the peer reports as
//! `Ok(None)`; any other end of the connection is an abrupt loss.
//!
//! The two modes use distinct ALPN protocols ([`ALPN_STREAM`], [`ALPN_DATAGRAM`]), so a client and
//! a server that disagree fail the handshake. TLS 1.3 only (QUIC requires it), ring crypto.

mod datagram;
mod stream;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, ConnectionError, Endpoint, EndpointConfig, IdleTimeout, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::address::{Address, HostPort};
use crate::config::{QuicConfig, TransportConfig};
use crate::error::{describe, TransportError};
use crate::transport::{Listener, Transport};

/// ALPN protocol of stream mode.
pub const ALPN_STREAM: &[u8] = b"liaison/1";

/// ALPN protocol of datagram mode.
pub const ALPN_DATAGRAM: &[u8] = b"liaison/1+dgram";

/// The bytes a client writes first on the stream of a stream-mode connection.
pub const STREAM_PREAMBLE: &[u8; 4] = b"LSN1";

/// Application close code of a graceful close (datagram mode).
pub const CLOSE_GRACEFUL: u32 = 1;

/// Application close code used when the peer broke the connection protocol (wrong preamble).
pub const CLOSE_PROTOCOL_ERROR: u32 = 2;

/// Size requested for the UDP socket buffers (the system may grant less).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// How many established connections wait for `accept` before handshakes wait.
const BACKLOG: usize = 64;

/// Stream or datagram mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Stream,
    Datagram,
}

impl Mode {
    fn alpn(self) -> &'static [u8] {
        match self {
            Self::Stream => ALPN_STREAM,
            Self::Datagram => ALPN_DATAGRAM,
        }
    }

    fn address(self, hp: HostPort) -> Address {
        match self {
            Self::Stream => Address::Quic(hp),
            Self::Datagram => Address::QuicDatagram(hp),
        }
    }
}

fn invalid_config(reason: impl Into<String>) -> TransportError {
    TransportError::InvalidConfig {
        reason: reason.into(),
    }
}

/// The quinn transport settings for one side and mode.
fn transport_config(
    config: &QuicConfig,
    mode: Mode,
    server: bool,
) -> Result<quinn::TransportConfig, TransportError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| invalid_config("QUIC idle timeout is too large"))?;
    transport
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(config.keep_alive_interval)
        .stream_receive_window(VarInt::from_u32(config.stream_receive_window))
        .receive_window(VarInt::from_u32(config.receive_window))
        .send_window(config.send_window)
        .max_concurrent_uni_streams(VarInt::from_u32(0));
    match mode {
        Mode::Stream => {
            let incoming_streams = if server { 1 } else { 0 };
            transport
                .max_concurrent_bidi_streams(VarInt::from_u32(incoming_streams))
                .datagram_receive_buffer_size(None);
        }
        Mode::Datagram => {
            transport
                .max_concurrent_bidi_streams(VarInt::from_u32(0))
                .datagram_receive_buffer_size(Some(config.datagram_receive_buffer))
                .datagram_send_buffer_size(config.datagram_send_buffer);
        }
    }
    if !config.mtu_discovery {
        transport.mtu_discovery_config(None);
    }
    Ok(transport)
}

/// A UDP socket with large buffers, wrapped in a quinn endpoint.
fn endpoint(
    bind: SocketAddr,
    server: Option<quinn::ServerConfig>,
    addr_text: &str,
) -> Result<Endpoint, TransportError> {
    let socket =
        std::net::UdpSocket::bind(bind).map_err(|e| TransportError::from_bind_io(addr_text, e))?;
    let sock = socket2::SockRef::from(&socket);
    // Best effort: the system caps the sizes (net.core.rmem_max), which is not an error.
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    let runtime =
        quinn::default_runtime().ok_or_else(|| invalid_config("QUIC needs a tokio runtime"))?;
    Ok(Endpoint::new(
        EndpointConfig::default(),
        server,
        socket,
        runtime,
    )?)
}

/// The verified certificate chain of the peer, if TLS verified one.
fn peer_certificates(conn: &Connection, verified: bool) -> Option<Vec<CertificateDer<'static>>> {
    if !verified {
        return None;
    }
    conn.peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()
        .map(|chain| *chain)
}

/// Maps the end of an established connection onto the abrupt errors.
pub(crate) fn connection_lost(err: &ConnectionError) -> TransportError {
    match err {
        ConnectionError::Reset => TransportError::ConnectionReset {
            reason: describe(err),
        },
        _ => TransportError::lost(describe(err)),
    }
}

/// Maps a failure while establishing a connection to `addr`.
fn handshake_failed(addr: &str, err: ConnectionError, config: &QuicConfig) -> TransportError {
    match err {
        ConnectionError::TimedOut => TransportError::TimedOut {
            addr: addr.to_owned(),
            after: config.idle_timeout,
        },
        ConnectionError::ConnectionClosed(ref close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            TransportError::ConnectionRefused {
                addr: addr.to_owned(),
                reason: describe(&err),
            }
        }
        ConnectionError::Reset | ConnectionError::ApplicationClosed(_) => {
            TransportError::ConnectionRefused {
                addr: addr.to_owned(),
                reason: describe(&err),
            }
        }
        other => TransportError::Quic(other),
    }
}

/// Connects to `target` in `mode`.
pub(crate) async fn connect(
    target: &HostPort,
    config: &TransportConfig,
    mode: Mode,
) -> Result<Box<dyn Transport>, TransportError> {
    let addr = mode.address(target.clone()).to_string();
    let quic = &config.quic;
    let remote = *target
        .resolve()
        .await?
        .first()
        .ok_or_else(|| TransportError::invalid_address(&addr, "host resolves to no address"))?;
    let bind: SocketAddr = if remote.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = endpoint(bind, None, &addr)?;
    let crypto = crate::tls::client_config(&quic.client_tls, mode.alpn())?;
    let crypto = QuicClientConfig::try_from(crypto)
        .map_err(|e| invalid_config(format!("TLS config unusable for QUIC: {e}")))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(transport_config(quic, mode, false)?));
    let server_name = quic.client_tls.server_name().unwrap_or(target.host());
    let connecting = endpoint
        .connect_with(client, remote, server_name)
        .map_err(|e| invalid_config(format!("cannot connect to {addr}: {e}")))?;
    let verified = quic.client_tls.verifies_server();
    let max_frame = config.max_frame;
    let establish = async {
        let conn = connecting
            .await
            .map_err(|e| handshake_failed(&addr, e, quic))?;
        let local = Address::quic(endpoint.local_addr()?).to_string();
        let peer = mode
            .address(HostPort::from(conn.remote_address()))
            .to_string();
        let certs = peer_certificates(&conn, verified);
        let transport: Box<dyn Transport> = match mode {
            Mode::Stream => Box::new(
                stream::QuicStreamTransport::open(conn, local, peer, certs, max_frame).await?,
            ),
            Mode::Datagram => Box::new(datagram::QuicDatagramTransport::new(
                conn, local, peer, certs,
            )?),
        };
        Ok::<_, TransportError>(transport)
    };
    let transport = tokio::time::timeout(config.connect_timeout, establish)
        .await
        .map_err(|_| TransportError::TimedOut {
            addr: addr.clone(),
            after: config.connect_timeout,
        })??;
    tracing::debug!(%addr, local = %transport.info().local, "quic connected");
    Ok(transport)
}

/// What the accept loop needs to finish a server-side connection.
struct ServerSide {
    mode: Mode,
    max_frame: usize,
    verifies_clients: bool,
    handshake_timeout: std::time::Duration,
    local: String,
}

/// Binds a QUIC listener at `target` in `mode`; needs [`QuicConfig::server_tls`].
pub(crate) async fn bind(
    target: &HostPort,
    config: &TransportConfig,
    mode: Mode,
) -> Result<QuicListener, TransportError> {
    let addr = mode.address(target.clone()).to_string();
    let tls = config.quic.server_tls.as_ref().ok_or_else(|| {
        invalid_config("binding QUIC needs a server certificate (quic.server_tls)")
    })?;
    let crypto = crate::tls::server_config(tls, mode.alpn())?;
    let crypto = QuicServerConfig::try_from(crypto)
        .map_err(|e| invalid_config(format!("TLS config unusable for QUIC: {e}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config(&config.quic, mode, true)?));
    let socket_addr = *target
        .resolve()
        .await?
        .first()
        .ok_or_else(|| TransportError::invalid_address(&addr, "host resolves to no address"))?;
    let endpoint = endpoint(socket_addr, Some(server), &addr)?;
    let local = endpoint.local_addr()?;
    let local_addr = mode.address(HostPort::from(local));
    let side = Arc::new(ServerSide {
        mode,
        max_frame: config.max_frame,
        verifies_clients: tls.verifies_clients(),
        handshake_timeout: config.connect_timeout,
        local: local_addr.to_string(),
    });
    let (tx, rx) = mpsc::channel(BACKLOG);
    let accept_task = tokio::spawn(accept_loop(endpoint.clone(), tx, side));
    tracing::debug!(addr = %local_addr, "quic listener bound");
    Ok(QuicListener {
        endpoint,
        local: local_addr,
        accepted: rx,
        accept_task,
    })
}

/// Accepts incoming connections and runs each handshake in its own task, so that a slow client
/// cannot hold up the others.
async fn accept_loop(
    endpoint: Endpoint,
    accepted: mpsc::Sender<Box<dyn Transport>>,
    side: Arc<ServerSide>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let accepted = accepted.clone();
        let side = side.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match tokio::time::timeout(side.handshake_timeout, establish(incoming, &side)).await {
                Ok(Ok(transport)) => {
                    tracing::debug!(local = %side.local, %remote, "quic connection accepted");
                    // If the listener is gone, the connection is dropped (and closed) here.
                    let _ = accepted.send(transport).await;
                }
                Ok(Err(err)) => {
                    tracing::debug!(local = %side.local, %remote, %err, "quic handshake failed");
                }
                Err(_) => {
                    tracing::debug!(local = %side.local, %remote, "quic handshake timed out");
                }
            }
        });
    }
}

/// Completes the server side of one connection.
async fn establish(
    incoming: quinn::Incoming,
    side: &ServerSide,
) -> Result<Box<dyn Transport>, TransportError> {
    let conn = incoming.await.map_err(|e| connection_lost(&e))?;
    let peer = side
        .mode
        .address(HostPort::from(conn.remote_address()))
        .to_string();
    let certs = peer_certificates(&conn, side.verifies_clients);
    Ok(match side.mode {
        Mode::Stream => Box::new(
            stream::QuicStreamTransport::accept(
                conn,
                side.local.clone(),
                peer,
                certs,
                side.max_frame,
            )
            .await?,
        ),
        Mode::Datagram => Box::new(datagram::QuicDatagramTransport::new(
            conn,
            side.local.clone(),
            peer,
            certs,
        )?),
    })
}

/// Accepts QUIC connections. Dropping it refuses new connections; accepted ones stay up.
#[derive(Debug)]
pub(crate) struct QuicListener {
    endpoint: Endpoint,
    local: Address,
    accepted: mpsc::Receiver<Box<dyn Transport>>,
    accept_task: JoinHandle<()>,
}

#[async_trait]
impl Listener for QuicListener {
    async fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        // `mpsc::Receiver::recv` is cancel-safe. The channel ends only if the accept loop
        // stopped, which happens when the endpoint is closed.
        self.accepted.recv().await.ok_or(TransportError::Closed)
    }

    fn local_addr(&self) -> Address {
        self.local.clone()
    }
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.endpoint.set_server_config(None);
        tracing::debug!(addr = %self.local, "quic listener closed");
    }
}
