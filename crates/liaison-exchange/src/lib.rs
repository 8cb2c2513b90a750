//! liaison's exchange layer: many concurrent operations over one session, each in its own
//! *exchange* (begin, any number of messages each way, end), with per-exchange flow control,
//! capabilities and eventual values.
//!
//! # What it does
//!
//! - **Exchanges** (PROTOCOL.md §9): every frame carries its exchange id, so concurrent
//!   operations never mix, whatever the transport. Ids are allocated by the side that opens
//!   the exchange (the client odd ids, the server even ones), in increasing order, never
//!   reused. An [`Exchange`] sends, receives, half-closes ([`Exchange::end`]) and cancels.
//! - **Flow control per exchange**: each side grants its peer a window of messages per
//!   exchange ([`ExchangeConfig::window`]) and grants more as its reader takes them. A
//!   reader that stops stalls only its own exchange; the session keeps reading, and memory
//!   for received messages stays within `max_exchanges × window × max_frame_payload`.
//! - **A limit on open exchanges** ([`ExchangeConfig::max_exchanges`], bounded by the
//!   session's negotiated limit): past it, opening waits or fails with
//!   [`ExchangeError::TooManyExchanges`] ([`LimitPolicy`]); the peer's exchanges past it are
//!   refused.
//! - **Capabilities**: a [`Service`] is an object with an async handler; the session's root
//!   capability is served with [`EndpointBuilder::root`] and reached with
//!   [`Endpoint::root`]; [`Endpoint::export`] serves more under fresh ids
//!   ([`CapabilityRef`], serde-serializable, so results can carry them) and
//!   [`Endpoint::remote`] turns an id into a [`Remote`] to call.
//! - **Eventual values**: [`Remote::call`] returns a [`Call`], a future of the reply;
//!   dropping it cancels the exchange and the handler sees [`Context::cancelled`]. Typed
//!   calls ([`Remote::call_typed`], [`TypedRemote`], [`service_fn`]) go through the
//!   [`Codec`](liaison_wire::Codec), bincode by default.
//! - **Termination**: when the session ends, every pending eventual value resolves
//!   [`ExchangeError::Aborted`] with the session's reason, every [`Remote`] is revoked (a
//!   later call fails at once with [`ExchangeError::Revoked`]) and every running handler's
//!   context is cancelled. A frame that breaks the exchange rules ends the session as a
//!   protocol violation ([`Session::fail_protocol`](liaison_session::Session::fail_protocol)),
//!   the peer told why.
//! - **Server restarts** under a resumable session (PROTOCOL.md §10.3): every exchange and
//!   call begun before the restart, including while the session was detached, resolves
//!   [`ExchangeError::Aborted`] with
//!   [`PeerRestarted`](liaison_session::TerminationReason::PeerRestarted), and none of its
//!   frames reaches the rebuilt server; nothing is retried behind the application's back
//!   (it knows whether an operation may run twice). The endpoint goes on over the session.
//!
//! The protocol logic is the sans-IO [`ExchangeTable`]: frames and commands in, frames,
//! events and wakers out. [`Endpoint`] drives it with two tokio tasks per session.
//!
//! # What it does not do
//!
//! It does not establish, authenticate, sequence or resume sessions (the session and
//! sequencing layers do; messages of one exchange arrive in the order the session delivers
//! frames), and it does not define what messages mean beyond raw bytes and serde types.
//! A handler that ignores its context keeps running after a cancellation, but every
//! operation on its exchange fails.
//!
//! # Example
//!
//! A server serving a typed unary root service and a streaming capability, and a client
//! calling both over an in-memory session.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use async_trait::async_trait;
//! use bytes::Bytes;
//! use liaison_exchange::{service_fn, CapabilityRef, Context, Endpoint, Exchange, Service};
//! use liaison_session::{ClientConfig, PskAuth, RootCapability, ServerConfig, Session};
//! use liaison_transport::memory;
//!
//! /// Streams back every message it receives, upper-cased.
//! struct Shout;
//!
//! #[async_trait]
//! impl Service for Shout {
//!     async fn handle(&self, mut exchange: Exchange, _ctx: &Context) {
//!         while let Ok(Some(message)) = exchange.recv().await {
//!             let _ = exchange.send(message.to_ascii_uppercase().into()).await;
//!         }
//!         let _ = exchange.end().await;
//!     }
//! }
//!
//! // A session over memory, the server offering root capability 1.
//! let key = [7u8; 32];
//! let (a, b) = memory::pair(64, 1 << 20);
//! let (client, server) = tokio::try_join!(
//!     Session::connect(Box::new(a), ClientConfig::new(PskAuth::new("app", key)?)),
//!     Session::accept(
//!         Box::new(b),
//!         ServerConfig::new(PskAuth::new("app", key)?)
//!             .with_root(RootCapability::new(1, &b"demo/1"[..])),
//!     ),
//! )?;
//!
//! // The server's root adds two numbers, or hands out the `Shout` capability on (0, 0).
//! let server = Endpoint::builder(server)
//!     .root(service_fn(|(a, b): (u32, u32), ctx: Context| async move {
//!         if (a, b) == (0, 0) {
//!             return Ok::<_, String>((0, Some(ctx.export(Shout))));
//!         }
//!         a.checked_add(b).map(|sum| (sum, None)).ok_or_else(|| "overflow".to_string())
//!     }))
//!     .start()?;
//! let client = Endpoint::new(client, Default::default())?;
//!
//! // A typed unary call: one frame each way.
//! let root = client.root()?.typed::<(u32, u32), (u32, Option<CapabilityRef>)>();
//! assert_eq!(root.call(&(2, 3)).await?, (5, None));
//! let error = root.call(&(u32::MAX, 1)).await.unwrap_err();
//! assert_eq!(error.to_string(), "remote error: overflow");
//!
//! // A result carrying a capability, and a streaming exchange with it.
//! let (_, shout) = root.call(&(0, 0)).await?;
//! let shout = client.remote(shout.expect("a capability"));
//! let mut exchange = shout.begin().await?;
//! exchange.send(Bytes::from_static(b"hello")).await?;
//! exchange.send(Bytes::from_static(b"world")).await?;
//! exchange.end().await?;
//! assert_eq!(exchange.recv().await?, Some(Bytes::from_static(b"HELLO")));
//! assert_eq!(exchange.recv().await?, Some(Bytes::from_static(b"WORLD")));
//! assert_eq!(exchange.recv().await?, None);
//!
//! // After the session ends, capabilities are revoked.
//! client.close("done").await;
//! assert!(root.call(&(1, 1)).await.unwrap_err().is_revoked());
//! # drop(server);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod driver;
mod endpoint;
mod error;
mod exchange;
pub mod payload;
mod remote;
mod service;
mod shared;
mod state;
mod table;
mod typed;

pub use config::{ExchangeConfig, LimitPolicy};
pub use endpoint::{Endpoint, EndpointBuilder, ExchangeStats};
pub use error::{CancelCode, ExchangeError};
pub use exchange::{Exchange, ExchangeReceiver, ExchangeSender};
pub use remote::{Call, CapabilityRef, Remote};
pub use service::{raw_service_fn, service_fn, Context, RawServiceFn, Service, ServiceFn};
pub use state::ExchangeState;
pub use table::{Event, ExchangeTable, TableLimits, TableStats};
pub use typed::{TypedCall, TypedRemote};
