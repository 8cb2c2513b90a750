//! Capabilities this side serves: the [`Service`] trait, the [`Context`] a handler runs in,
//! and closure adapters for unary services ([`service_fn`], [`raw_service_fn`]).

use std::fmt;
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use liaison_session::Session;
use liaison_wire::{Codec, DefaultCodec};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::shared::Handle;
use crate::{CapabilityRef, Endpoint, Exchange, Remote};

/// An object the peer can call: each exchange the peer opens towards it runs
/// [`handle`](Self::handle).
///
/// The handler starts as the frame that opens its exchange arrives, on the session's own
/// task (or on the endpoint's dispatch task, behind frames of streams that arrived just
/// before), and goes on in a task of its own from its first wait: a handler that answers at
/// once (a unary call whose request came with the exchange) costs no task at all, and its
/// reply is written in the same pass. Until that first wait the session reads no other
/// frame (nor answers pings), so a handler with long synchronous work does it after a wait,
/// or off the runtime (`tokio::task::spawn_blocking`).
///
/// The handler owns the exchange: it reads the peer's messages, sends its own, and ends its
/// direction. Returning without ending cancels the exchange if the peer has not ended
/// either. [`Context::cancelled`] resolves when the peer cancels (for example by dropping
/// the [`Call`](crate::Call)) or the session ends; the exchange's operations then fail.
///
/// ```
/// use async_trait::async_trait;
/// use liaison_exchange::{Context, Exchange, Service};
///
/// /// Echoes every message back, then ends.
/// struct Echo;
///
/// #[async_trait]
/// impl Service for Echo {
///     async fn handle(&self, mut exchange: Exchange, _ctx: &Context) {
///         while let Ok(Some(message)) = exchange.recv().await {
///             if exchange.send(message).await.is_err() {
///                 return;
///             }
///         }
///         let _ = exchange.end().await;
///     }
/// }
/// ```
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// Serves one exchange the peer opened towards this service.
    async fn handle(&self, exchange: Exchange, ctx: &Context);
}

#[async_trait]
impl<S: Service + ?Sized> Service for Arc<S> {
    async fn handle(&self, exchange: Exchange, ctx: &Context) {
        (**self).handle(exchange, ctx).await;
    }
}

/// What a handler knows about the exchange it serves, and how it reaches the rest of the
/// endpoint. Cheap to clone: clones share one handle on the exchange, so cloning touches no
/// lock.
#[derive(Clone)]
pub struct Context {
    handle: Arc<Handle>,
    target: u64,
}

impl Context {
    pub(crate) fn new(handle: Handle, target: u64) -> Self {
        Self {
            handle: Arc::new(handle),
            target,
        }
    }

    /// The exchange's id.
    pub fn exchange_id(&self) -> u64 {
        self.handle.id
    }

    /// The capability the exchange targets (this service's id).
    pub fn target(&self) -> CapabilityRef {
        CapabilityRef(self.target)
    }

    /// Whether the exchange was cancelled (by either side) or the session ended.
    pub fn is_cancelled(&self) -> bool {
        self.handle.is_cancelled()
    }

    /// Resolves once the exchange is cancelled (by either side) or the session ends.
    pub async fn cancelled(&self) {
        self.handle.cancelled().await;
    }

    /// Serves `service` as a new capability of this session; see [`Endpoint::export`].
    pub fn export(&self, service: impl Service) -> CapabilityRef {
        self.endpoint().export(service)
    }

    /// The peer's capability `capability`, to call back.
    pub fn remote(&self, capability: CapabilityRef) -> Remote {
        Remote::new(Arc::clone(&self.handle.shared), capability.0)
    }

    /// The endpoint this handler runs on.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(Arc::clone(&self.handle.shared))
    }

    /// The endpoint's codec.
    pub fn codec(&self) -> &DefaultCodec {
        &self.handle.shared.codec
    }

    /// The session (the peer's identity, its parameters).
    pub fn session(&self) -> &Session {
        &self.handle.shared.session
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("exchange", &self.handle.id)
            .field("target", &self.target)
            .finish()
    }
}

/// Serves a unary call: reads one request, runs `respond` on it unless the exchange is
/// cancelled first, and replies with `Data` + `END`, or ends with the error's text.
async fn unary<Fut, Resp, E>(
    exchange: &mut Exchange,
    ctx: &Context,
    respond: impl FnOnce(Bytes) -> Result<Fut, String>,
    encode: impl FnOnce(Resp) -> Result<Bytes, String>,
) where
    Fut: Future<Output = Result<Resp, E>>,
    E: Display,
{
    let request = match exchange.recv().await {
        Ok(Some(request)) => request,
        Ok(None) => {
            let _ = exchange.fail("expected a request").await;
            return;
        }
        Err(_) => return,
    };
    let future = match respond(request) {
        Ok(future) => future,
        Err(error) => {
            let _ = exchange.fail(error).await;
            return;
        }
    };
    // The handler first: one that answers at once never registers for the cancellation.
    let outcome = tokio::select! {
        biased;
        outcome = future => outcome,
        () = ctx.cancelled() => return,
    };
    let reply = match outcome {
        Ok(response) => encode(response),
        Err(error) => Err(error.to_string()),
    };
    let _ = match reply {
        Ok(reply) => exchange.send_last(reply).await,
        Err(error) => exchange.fail(error).await,
    };
}

/// A typed unary service from a closure; see [`service_fn`].
pub struct ServiceFn<F, Req> {
    f: F,
    _request: PhantomData<fn(Req)>,
}

/// A unary service from an async closure over serde types: each call's request is decoded
/// with the endpoint's codec, `f` runs with it and the handler's [`Context`], and its
/// `Ok` is the reply, its `Err` the caller's [`RemoteError`](crate::ExchangeError::RemoteError).
/// If the call is cancelled (the caller dropped it, or the session ended) `f`'s future is
/// dropped.
///
/// ```
/// use liaison_exchange::{service_fn, Context};
///
/// let add = service_fn(|(a, b): (u32, u32), _ctx: Context| async move {
///     a.checked_add(b).ok_or("overflow")
/// });
/// # let _ = add;
/// ```
pub fn service_fn<F, Req, Fut>(f: F) -> ServiceFn<F, Req>
where
    F: Fn(Req, Context) -> Fut,
{
    ServiceFn {
        f,
        _request: PhantomData,
    }
}

#[async_trait]
impl<F, Req, Fut, Resp, E> Service for ServiceFn<F, Req>
where
    F: Fn(Req, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    Req: DeserializeOwned + 'static,
    Resp: Serialize + Send + 'static,
    E: Display + Send + 'static,
{
    async fn handle(&self, mut exchange: Exchange, ctx: &Context) {
        let codec = *ctx.codec();
        unary(
            &mut exchange,
            ctx,
            |request| {
                let request: Req = codec
                    .decode(&request)
                    .map_err(|e| format!("undecodable request: {e}"))?;
                Ok((self.f)(request, ctx.clone()))
            },
            |response: Resp| {
                codec
                    .encode(&response)
                    .map_err(|e| format!("unencodable response: {e}"))
            },
        )
        .await;
    }
}

impl<F, Req> fmt::Debug for ServiceFn<F, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceFn").finish_non_exhaustive()
    }
}

/// A unary service over raw bytes from a closure; see [`raw_service_fn`].
pub struct RawServiceFn<F> {
    f: F,
}

/// A unary service from an async closure over raw messages: `f` runs with each call's
/// request and the handler's [`Context`]; its `Ok` is the reply, its `Err` the caller's
/// [`RemoteError`](crate::ExchangeError::RemoteError).
///
/// ```
/// use bytes::Bytes;
/// use liaison_exchange::{raw_service_fn, Context};
///
/// let echo = raw_service_fn(|request: Bytes, _ctx: Context| async move {
///     Ok::<_, String>(request)
/// });
/// # let _ = echo;
/// ```
pub fn raw_service_fn<F, Fut>(f: F) -> RawServiceFn<F>
where
    F: Fn(Bytes, Context) -> Fut,
{
    RawServiceFn { f }
}

#[async_trait]
impl<F, Fut, E> Service for RawServiceFn<F>
where
    F: Fn(Bytes, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    async fn handle(&self, mut exchange: Exchange, ctx: &Context) {
        unary(
            &mut exchange,
            ctx,
            |request| Ok((self.f)(request, ctx.clone())),
            Ok,
        )
        .await;
    }
}

impl<F> fmt::Debug for RawServiceFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawServiceFn").finish_non_exhaustive()
    }
}
