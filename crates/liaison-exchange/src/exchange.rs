//! [`Exchange`]: one open exchange, from either side, and its two halves
//! ([`ExchangeSender`], [`ExchangeReceiver`]).

use std::fmt;
use std::task::{Context, Poll};

use bytes::Bytes;
use liaison_wire::Codec;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::payload::Outcome;
use crate::shared::Handle;
use crate::{CapabilityRef, ExchangeError, ExchangeState};

/// One exchange: any number of messages each way, then each side ends its direction
/// (PROTOCOL.md §9). The same type serves the side that opened it
/// ([`Remote::begin`](crate::Remote::begin)) and the side that received it (a
/// [`Service`](crate::Service) or [`Endpoint::accept`](crate::Endpoint::accept)).
///
/// - [`send`](Self::send) waits for credit: the peer lets this side send at most its window
///   of messages ahead of its reader (PROTOCOL.md §9.5).
/// - [`send_last`](Self::send_last), [`end`](Self::end) and [`fail`](Self::fail) end this
///   side's direction (half-close); the peer may go on sending.
/// - [`recv`](Self::recv) yields the peer's messages in order, `None` once the peer ended,
///   and fails with [`ExchangeError::RemoteError`] if it ended with [`fail`](Self::fail).
/// - [`cancel`](Self::cancel) stops both directions at once.
///
/// Dropping the exchange (every half of it) before both directions ended cancels it; the
/// peer's operations fail with [`ExchangeError::Cancelled`]. After the session ends, every
/// operation fails with [`ExchangeError::Aborted`].
pub struct Exchange {
    handle: Handle,
    target: u64,
    initiator: bool,
}

impl Exchange {
    pub(crate) fn new(handle: Handle, target: u64, initiator: bool) -> Self {
        Self {
            handle,
            target,
            initiator,
        }
    }

    /// The exchange id carried by every frame of the exchange.
    pub fn id(&self) -> u64 {
        self.handle.id
    }

    /// The capability the exchange targets.
    pub fn target(&self) -> CapabilityRef {
        CapabilityRef(self.target)
    }

    /// Whether this side opened the exchange.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// Where the exchange stands.
    pub fn state(&self) -> ExchangeState {
        self.handle.state()
    }

    /// Sends one message, waiting while the peer's window is full.
    pub async fn send(&mut self, message: Bytes) -> Result<(), ExchangeError> {
        self.handle.send(message, false).await
    }

    /// Sends one message and ends this side's direction with it (`END`).
    pub async fn send_last(&mut self, message: Bytes) -> Result<(), ExchangeError> {
        self.handle.send(message, true).await
    }

    /// Encodes `value` with the endpoint's codec and sends it.
    pub async fn send_typed<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), ExchangeError> {
        let message = self.handle.shared.codec.encode(value)?;
        self.send(message).await
    }

    /// Ends this side's direction without a message (`ExchangeEnd`, success).
    pub async fn end(&mut self) -> Result<(), ExchangeError> {
        self.handle.end(Outcome::Success).await
    }

    /// Ends this side's direction with an application error: the peer's
    /// [`recv`](Self::recv) fails with [`ExchangeError::RemoteError`] after the messages
    /// sent before.
    pub async fn fail(&mut self, message: impl Into<String>) -> Result<(), ExchangeError> {
        self.handle.end(Outcome::Failed(message.into())).await
    }

    /// The next message; `None` once the peer ended its direction.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, ExchangeError> {
        self.handle.recv().await
    }

    /// Polls for the next message (for hand-written futures and streams).
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, ExchangeError>> {
        self.handle.poll_recv(cx)
    }

    /// The next message decoded with the endpoint's codec; `None` once the peer ended.
    pub async fn recv_typed<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ExchangeError> {
        match self.recv().await? {
            Some(message) => Ok(Some(self.handle.shared.codec.decode(&message)?)),
            None => Ok(None),
        }
    }

    /// Cancels the exchange: both directions stop at once and the peer is told
    /// (`ExchangeCancel` with `reason`).
    pub fn cancel(self, reason: &str) {
        self.handle.cancel(reason);
    }

    /// Splits the exchange into a sending and a receiving half, for use from two tasks.
    /// The exchange is cancelled when both halves are dropped before it is closed.
    pub fn split(self) -> (ExchangeSender, ExchangeReceiver) {
        let receiver = ExchangeReceiver {
            handle: self.handle.clone(),
        };
        (
            ExchangeSender {
                handle: self.handle,
            },
            receiver,
        )
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("id", &self.handle.id)
            .field("target", &self.target)
            .field("initiator", &self.initiator)
            .finish()
    }
}

/// The sending half of an [`Exchange`].
pub struct ExchangeSender {
    handle: Handle,
}

impl ExchangeSender {
    /// The exchange id.
    pub fn id(&self) -> u64 {
        self.handle.id
    }

    /// As [`Exchange::send`].
    pub async fn send(&mut self, message: Bytes) -> Result<(), ExchangeError> {
        self.handle.send(message, false).await
    }

    /// As [`Exchange::send_last`].
    pub async fn send_last(&mut self, message: Bytes) -> Result<(), ExchangeError> {
        self.handle.send(message, true).await
    }

    /// As [`Exchange::end`].
    pub async fn end(&mut self) -> Result<(), ExchangeError> {
        self.handle.end(Outcome::Success).await
    }

    /// As [`Exchange::fail`].
    pub async fn fail(&mut self, message: impl Into<String>) -> Result<(), ExchangeError> {
        self.handle.end(Outcome::Failed(message.into())).await
    }

    /// As [`Exchange::cancel`]: cancels the whole exchange.
    pub fn cancel(self, reason: &str) {
        self.handle.cancel(reason);
    }
}

impl fmt::Debug for ExchangeSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeSender")
            .field("id", &self.handle.id)
            .finish()
    }
}

/// The receiving half of an [`Exchange`].
pub struct ExchangeReceiver {
    handle: Handle,
}

impl ExchangeReceiver {
    /// The exchange id.
    pub fn id(&self) -> u64 {
        self.handle.id
    }

    /// As [`Exchange::recv`].
    pub async fn recv(&mut self) -> Result<Option<Bytes>, ExchangeError> {
        self.handle.recv().await
    }

    /// As [`Exchange::poll_recv`].
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, ExchangeError>> {
        self.handle.poll_recv(cx)
    }

    /// As [`Exchange::cancel`]: cancels the whole exchange.
    pub fn cancel(self, reason: &str) {
        self.handle.cancel(reason);
    }
}

impl fmt::Debug for ExchangeReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeReceiver")
            .field("id", &self.handle.id)
            .finish()
    }
}
