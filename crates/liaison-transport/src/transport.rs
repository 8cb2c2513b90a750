//! The transport traits ([`Transport`], [`FrameSender`], [`FrameReceiver`], [`Listener`], [`Connector`]) and [`TransportInfo`].

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use rustls::pki_types::CertificateDer;

use crate::address::Address;
use crate::error::TransportError;

/// What a transport guarantees about the frames it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Properties {
    /// Every frame sent is delivered exactly once and intact, until the connection ends.
    pub reliable: bool,
    /// Frames are delivered in the order they were sent.
    pub ordered: bool,
    /// The largest frame, in bytes, this end sends and accepts.
    pub max_frame: usize,
}

/// What is known about an established connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportInfo {
    /// Delivery guarantees and limits.
    pub properties: Properties,
    /// The local end, printed as an address (for logs).
    pub local: String,
    /// The remote end, printed as an address (for logs).
    pub peer: String,
    /// The peer's certificate chain, leaf first, when TLS verified it (QUIC): the server's chain
    /// on the client, the client's chain on a server that requires client certificates. `None`
    /// when the transport has no TLS or the chain was not verified.
    pub tls_peer_certificates: Option<Vec<CertificateDer<'static>>>,
}

/// One established, message-oriented connection: whole frames in, whole frames out.
///
/// A transport carries opaque frames ([`Bytes`]); it knows nothing of their content. A driver
/// reads [`info`](Self::info), then [`split`](Self::split)s the transport to read and write
/// concurrently.
///
/// Dropping a transport (or its halves) without [`FrameSender::close`] is an *abrupt* end: the
/// peer's [`FrameReceiver::recv`] fails with [`TransportError::ConnectionLost`] or
/// [`TransportError::ConnectionReset`] instead of returning `Ok(None)`.
pub trait Transport: Send + 'static {
    /// Properties, addresses and TLS identity of this connection.
    fn info(&self) -> &TransportInfo;

    /// Splits the connection into its sending and receiving halves.
    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>);
}

/// The sending half of a [`Transport`].
///
/// Writes are batched: [`feed`](Self::feed) queues a frame (it may write when its buffer is full),
/// [`flush`](Self::flush) pushes everything queued to the connection. A driver feeds every frame it
/// has ready and flushes once.
///
/// The futures of a sender are not cancel-safe: dropping one midway may lose the frame or leave
/// the connection in an unknown state (treat it as broken).
#[async_trait]
pub trait FrameSender: Send {
    /// Queues one frame. Fails with [`TransportError::FrameTooLarge`] (before anything is
    /// written) if the frame is over the limit, and with [`TransportError::Closed`] after
    /// [`close`](Self::close).
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError>;

    /// Queues one frame made of `head` followed by `body`, as [`feed`](Self::feed) would the
    /// two joined.
    ///
    /// This saves the copy that joining them costs: stream transports (TCP, Unix sockets,
    /// QUIC streams) copy only `head` and write a large `body` from where it lies. The default
    /// joins the two into one buffer and calls [`feed`](Self::feed), for transports that
    /// carry each frame as one message anyway.
    async fn feed_parts(&mut self, head: &[u8], body: Bytes) -> Result<(), TransportError> {
        self.feed(join_parts(head, &body)).await
    }

    /// Writes out every queued frame.
    async fn flush(&mut self) -> Result<(), TransportError>;

    /// Queues one frame and flushes.
    async fn send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.feed(frame).await?;
        self.flush().await
    }

    /// Flushes and ends this direction gracefully: after receiving every frame sent before, the
    /// peer's [`FrameReceiver::recv`] returns `Ok(None)`. The other direction stays open as long as
    /// the transport allows (stream transports: until the receiving half is dropped). Closing
    /// twice is a no-op.
    async fn close(&mut self) -> Result<(), TransportError>;
}

/// `head` followed by `body`, in one buffer of exactly their size: a frame for a transport
/// that carries each frame as one message.
pub(crate) fn join_parts(head: &[u8], body: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(head.len() + body.len());
    frame.extend_from_slice(head);
    frame.extend_from_slice(body);
    frame.freeze()
}

/// The receiving half of a [`Transport`].
#[async_trait]
pub trait FrameReceiver: Send {
    /// Waits for the next frame.
    ///
    /// Returns `Ok(Some(frame))` for a frame, `Ok(None)` once the peer closed gracefully (and
    /// forever after), and an error when the connection ended abruptly
    /// ([`TransportError::is_abrupt`]) or a frame broke the limits
    /// ([`TransportError::FrameTooLarge`]).
    ///
    /// # Cancel safety
    ///
    /// This method is cancel-safe: if the future is dropped before it completes (for example
    /// because another branch of a `tokio::select!` won), no frame is lost; a partially received
    /// frame stays buffered and the next call continues with it.
    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError>;
}

/// Accepts incoming connections. Dropping the listener stops accepting and releases the address
/// (connections already accepted stay up).
#[async_trait]
pub trait Listener: Send {
    /// Waits for the next incoming connection.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel-safe: dropping the future loses no pending connection.
    async fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError>;

    /// The address actually bound (port `0` resolved to the real port), usable with
    /// [`connect`](crate::connect).
    fn local_addr(&self) -> Address;
}

/// Opens connections to one fixed destination, as many times as asked (an upper layer keeps a
/// connector to reconnect after a connection is lost).
#[async_trait]
pub trait Connector: Send + Sync {
    /// Opens a new connection.
    async fn connect(&self) -> Result<Box<dyn Transport>, TransportError>;
}
