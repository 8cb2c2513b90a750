//! liaison's transports: move whole frames between two endpoints over memory, TCP, Unix sockets or
//! QUIC, behind one set of object-safe traits, plus a fault-injecting wrapper for tests.
//!
//! # What it does
//!
//! - [`Transport`], split into a [`FrameSender`] and a [`FrameReceiver`], carries opaque frames
//!   ([`bytes::Bytes`]) and says what it guarantees ([`Properties`]: reliable, ordered, max frame).
//! - [`FrameSender::feed_parts`] queues a frame given as a head and a body: stream transports
//!   copy only the head and write a large body from where it lies (a vectored write over TCP
//!   and Unix sockets, a quinn chunk over QUIC), so a frame is not joined behind its header
//!   first. Received frames are zero-copy slices of the read buffer.
//! - [`Listener`] accepts connections, [`Connector`] opens them again and again (for reconnects).
//! - [`Address`] names an endpoint (`mem://name`, `tcp://host:port`, `unix:///path`,
//!   `quic://host:port`, `quic+dgram://host:port`); [`connect`] and [`bind`] work for all of them.
//! - A clean close is told apart from an abrupt end: after the peer's [`FrameSender::close`],
//!   [`FrameReceiver::recv`] returns `Ok(None)`; if the peer vanished, it returns an error for which
//!   [`TransportError::is_abrupt`] holds. Stream transports carry an explicit end-of-stream marker
//!   for this (see [wire framing](#wire-framing)).
//! - [`fault::FaultyTransport`] wraps any transport and drops, duplicates, reorders, corrupts,
//!   delays or cuts frames, from a seed.
//!
//! # What it does not do
//!
//! It knows nothing of liaison's frame format (liaison-wire encodes frames into the bytes carried
//! here), does no sequencing, retransmission, authentication or session handling: those are the
//! layers above. QUIC's TLS verifies certificates and exposes the peer's verified chain
//! ([`TransportInfo::tls_peer_certificates`]); deciding who that peer *is* belongs above.
//!
//! # Wire framing
//!
//! TCP, Unix sockets and QUIC streams carry each frame as a 4-byte big-endian length and the
//! payload; the length `0xFFFF_FFFF` is the end-of-stream marker written by a graceful close. The
//! receiver checks the announced length against its limit before allocating. Memory connections
//! pass `Bytes` through channels; QUIC datagram mode sends one frame per datagram.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), liaison_transport::TransportError> {
//! use bytes::Bytes;
//! use liaison_transport::{bind, connect, Address, TransportConfig};
//!
//! let config = TransportConfig::default();
//! let mut listener = bind(&"tcp://127.0.0.1:0".parse()?, &config).await?;
//! let addr: Address = listener.local_addr();
//!
//! let (client, server) = tokio::join!(connect(&addr, &config), listener.accept());
//! let (mut to_server, _from_server) = client?.split();
//! let (_to_client, mut from_client) = server?.split();
//!
//! to_server.feed(Bytes::from_static(b"hello")).await?;
//! to_server.feed(Bytes::from_static(b"world")).await?;
//! to_server.flush().await?; // one write for the batch
//! to_server.close().await?;
//!
//! assert_eq!(from_client.recv().await?, Some(Bytes::from_static(b"hello")));
//! assert_eq!(from_client.recv().await?, Some(Bytes::from_static(b"world")));
//! assert_eq!(from_client.recv().await?, None); // closed cleanly
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod address;
mod codec;
mod config;
mod connector;
mod error;
pub mod fault;
mod framed;
mod loopback;
pub mod memory;
pub mod quic;
mod tcp;
mod tls;
mod transport;
#[cfg(unix)]
mod unix;

pub use address::{Address, HostPort};
pub use codec::MAX_STREAM_FRAME;
pub use config::{QuicConfig, TransportConfig, DEFAULT_MAX_FRAME};
pub use connector::{bind, connect, AddressConnector};
pub use error::TransportError;
pub use loopback::{Loopback, LoopbackKind};
pub use tls::{QuicClientTls, QuicServerTls, TlsIdentity};
pub use transport::{
    Connector, FrameReceiver, FrameSender, Listener, Properties, Transport, TransportInfo,
};
