//! Typed calls: [`TypedRemote`] (a capability whose calls take and return serde types) and
//! [`TypedCall`] (their eventual value), through a [`Codec`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use liaison_wire::{Codec, DefaultCodec, WireError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Call, CapabilityRef, ExchangeError, Remote};

/// A capability whose unary calls take a `Req` and return a `Resp`, encoded with codec `C`
/// (the endpoint's bincode codec by default).
///
/// ```no_run
/// # async fn demo(remote: liaison_exchange::Remote) -> Result<(), liaison_exchange::ExchangeError> {
/// let add = remote.typed::<(u32, u32), u32>();
/// assert_eq!(add.call(&(2, 3)).await?, 5);
/// # Ok(()) }
/// ```
pub struct TypedRemote<Req, Resp, C = DefaultCodec> {
    remote: Remote,
    codec: C,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> TypedRemote<Req, Resp> {
    /// `remote` with the endpoint's codec.
    pub fn new(remote: Remote) -> Self {
        let codec = remote.shared.codec;
        Self::with_codec(remote, codec)
    }
}

impl<Req, Resp, C: Codec> TypedRemote<Req, Resp, C> {
    /// `remote` with `codec`.
    pub fn with_codec(remote: Remote, codec: C) -> Self {
        Self {
            remote,
            codec,
            _types: PhantomData,
        }
    }

    /// The untyped capability.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The capability's id.
    pub fn capability(&self) -> CapabilityRef {
        self.remote.capability()
    }
}

impl<Req: Serialize, Resp: DeserializeOwned, C: Codec> TypedRemote<Req, Resp, C> {
    /// Calls the capability with `request`; see [`Remote::call`].
    pub fn call(&self, request: &Req) -> TypedCall<Resp, C> {
        TypedCall::new(
            self.codec
                .encode(request)
                .map(|bytes| self.remote.call(bytes)),
            self.codec.clone(),
        )
    }
}

impl<Req, Resp, C: Clone> Clone for TypedRemote<Req, Resp, C> {
    fn clone(&self) -> Self {
        Self {
            remote: self.remote.clone(),
            codec: self.codec.clone(),
            _types: PhantomData,
        }
    }
}

impl<Req, Resp, C> fmt::Debug for TypedRemote<Req, Resp, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedRemote")
            .field("remote", &self.remote)
            .finish()
    }
}

/// The eventual value of a typed call: the reply decoded as `Resp`. Dropping it cancels the
/// call, as with [`Call`].
#[must_use = "a call does nothing unless polled, and dropping it cancels it"]
pub struct TypedCall<Resp, C = DefaultCodec> {
    call: Option<Result<Call, WireError>>,
    codec: C,
    _types: PhantomData<fn() -> Resp>,
}

impl<Resp, C> TypedCall<Resp, C> {
    pub(crate) fn new(call: Result<Call, WireError>, codec: C) -> Self {
        Self {
            call: Some(call),
            codec,
            _types: PhantomData,
        }
    }
}

// Only the boxed `Call` is ever pinned, so moving a `TypedCall` is fine.
impl<Resp, C> Unpin for TypedCall<Resp, C> {}

impl<Resp: DeserializeOwned, C: Codec> Future for TypedCall<Resp, C> {
    type Output = Result<Resp, ExchangeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.call.as_mut() {
            None => Poll::Ready(Err(ExchangeError::Protocol(
                "a typed call was polled after it resolved".into(),
            ))),
            Some(Err(_)) => match this.call.take() {
                Some(Err(error)) => Poll::Ready(Err(error.into())),
                _ => Poll::Pending,
            },
            Some(Ok(call)) => match Pin::new(call).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(result) => {
                    this.call = None;
                    Poll::Ready(result.and_then(|bytes| Ok(this.codec.decode(&bytes)?)))
                }
            },
        }
    }
}

impl<Resp, C> fmt::Debug for TypedCall<Resp, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCall").finish_non_exhaustive()
    }
}
