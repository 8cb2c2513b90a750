//! Capabilities of the peer: [`CapabilityRef`] (an id that travels in messages), [`Remote`]
//! (a handle to call one) and [`Call`] (the eventual value of a unary call).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use liaison_wire::Codec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::shared::{Handle, Shared};
use crate::{Exchange, ExchangeError, TypedCall, TypedRemote};

/// The id of a capability, scoped to one session: what a message carries to hand the peer a
/// capability it can call next (turn it into a [`Remote`] with
/// [`Endpoint::remote`](crate::Endpoint::remote)). Serialized as a plain `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CapabilityRef(pub u64);

impl CapabilityRef {
    /// The id.
    pub fn id(self) -> u64 {
        self.0
    }
}

impl fmt::Display for CapabilityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "capability {}", self.0)
    }
}

/// A capability the peer serves: each [`begin`](Self::begin) or [`call`](Self::call) opens
/// an exchange targeting it.
///
/// Cheap to clone. Once the session has ended the capability is revoked: every later call
/// fails at once with [`ExchangeError::Revoked`].
#[derive(Clone)]
pub struct Remote {
    pub(crate) shared: Arc<Shared>,
    target: u64,
}

impl Remote {
    pub(crate) fn new(shared: Arc<Shared>, target: u64) -> Self {
        Self { shared, target }
    }

    /// The capability's id.
    pub fn capability(&self) -> CapabilityRef {
        CapabilityRef(self.target)
    }

    /// Whether the session has ended.
    pub fn is_revoked(&self) -> bool {
        self.shared.guard.is_revoked()
    }

    /// Opens an exchange (an `ExchangeBegin` without a message), waiting for room under the
    /// limit on open exchanges or failing, per
    /// [`ExchangeConfig::on_limit`](crate::ExchangeConfig::on_limit).
    pub async fn begin(&self) -> Result<Exchange, ExchangeError> {
        let handle = self.shared.open(self.target, None, false).await?;
        Ok(Exchange::new(handle, self.target, true))
    }

    /// Opens an exchange whose `ExchangeBegin` already carries `first`.
    pub async fn begin_with(&self, first: Bytes) -> Result<Exchange, ExchangeError> {
        let handle = self.shared.open(self.target, Some(first), false).await?;
        Ok(Exchange::new(handle, self.target, true))
    }

    /// A unary call: `request` goes out as one `ExchangeBegin` with `END`, and the call
    /// resolves with the first message of the reply (normally one `Data` with `END`).
    ///
    /// The returned [`Call`] is the eventual value: it resolves with the reply, the
    /// handler's [`RemoteError`](ExchangeError::RemoteError), a cancellation, or
    /// [`Aborted`](ExchangeError::Aborted) if the session ends first. Dropping it cancels
    /// the exchange, and the peer's handler sees the cancellation.
    pub fn call(&self, request: Bytes) -> Call {
        Call {
            state: CallState::Start {
                shared: Arc::clone(&self.shared),
                target: self.target,
                request,
            },
        }
    }

    /// A typed unary call: `request` is encoded with the endpoint's codec (bincode by
    /// default) and the reply decoded as `Resp`.
    pub fn call_typed<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        request: &Req,
    ) -> TypedCall<Resp> {
        TypedCall::new(
            self.shared
                .codec
                .encode(request)
                .map(|bytes| self.call(bytes)),
            self.shared.codec,
        )
    }

    /// This capability as a typed one, calls taking `Req` and returning `Resp`.
    pub fn typed<Req, Resp>(&self) -> TypedRemote<Req, Resp> {
        TypedRemote::new(self.clone())
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("target", &self.target)
            .field("revoked", &self.is_revoked())
            .finish()
    }
}

/// The eventual value of a unary [`Remote::call`]: a future of the reply.
///
/// Dropping it before it resolves cancels its exchange (`ExchangeCancel`); the peer's
/// handler sees [`Context::cancelled`](crate::Context::cancelled). It always resolves: with
/// the reply, an error of the exchange, or [`ExchangeError::Aborted`] when the session ends.
#[must_use = "a call does nothing unless polled, and dropping it cancels it"]
pub struct Call {
    state: CallState,
}

/// Where a [`Call`] is.
enum CallState {
    /// Not polled yet.
    Start {
        shared: Arc<Shared>,
        target: u64,
        request: Bytes,
    },
    /// Opening its exchange after a wait (for room, or to send a request too large for the
    /// `ExchangeBegin` after it): the only case that needs a future of its own.
    Opening(Pin<Box<dyn Future<Output = Result<Handle, ExchangeError>> + Send>>),
    /// Waiting for the reply.
    Replying(Handle),
    /// Resolved.
    Done,
}

impl Future for Call {
    type Output = Result<Bytes, ExchangeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let state = &mut self.state;
        loop {
            match std::mem::replace(state, CallState::Done) {
                CallState::Start {
                    shared,
                    target,
                    request,
                } => {
                    let opened = shared.open_at_once(target, Some(request), true);
                    *state =
                        match opened {
                            Ok(Ok(handle)) => CallState::Replying(handle),
                            Ok(Err(opener)) => CallState::Opening(Box::pin(async move {
                                shared.open_later(opener).await
                            })),
                            Err(error) => return Poll::Ready(Err(error)),
                        };
                }
                CallState::Opening(mut opening) => match opening.as_mut().poll(cx) {
                    Poll::Ready(Ok(handle)) => *state = CallState::Replying(handle),
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => {
                        *state = CallState::Opening(opening);
                        return Poll::Pending;
                    }
                },
                CallState::Replying(mut handle) => match handle.poll_recv_last(cx) {
                    Poll::Ready(reply) => {
                        return Poll::Ready(
                            reply.and_then(|reply| reply.ok_or(ExchangeError::NoReply)),
                        )
                    }
                    Poll::Pending => {
                        *state = CallState::Replying(handle);
                        return Poll::Pending;
                    }
                },
                CallState::Done => {
                    return Poll::Ready(Err(ExchangeError::Protocol(
                        "a call was polled after it resolved".into(),
                    )))
                }
            }
        }
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call").finish_non_exhaustive()
    }
}
