//! liaison's session layer: establishes an authenticated, versioned, configured session over
//! any `liaison-transport` connection, keeps it alive, ends it with a typed reason, and aborts
//! everything that was waiting on it.
//!
//! # What it does
//!
//! - **Establishment in four steps** (docs/SESSION.md): reachability (a connected
//!   [`Transport`](liaison_transport::Transport)), version agreement, authentication through an
//!   [`Authenticator`] ([`NoAuth`] as an explicit opt-in, [`PskAuth`] mutual HMAC-SHA256
//!   challenge-response, [`TlsIdentityAuth`] the QUIC TLS peer certificate), and configuration
//!   (limits, keepalive, sequencing mode, application parameters, root capability). Any
//!   failure ends the handshake at once with a typed [`SessionError`] that the peer also
//!   receives where it is safe; the whole handshake has a deadline.
//! - **An established [`Session`]**: [`id`](Session::id), [`version`](Session::version),
//!   [`peer_identity`](Session::peer_identity), [`config`](Session::config); keepalive pings
//!   and an idle timeout; a bounded data path for the layers above
//!   ([`send`](Session::send), [`take_incoming`](Session::take_incoming), or a
//!   [`FrameSink`] called on the session's task, [`deliver_to`](Session::deliver_to)).
//! - **Sequencing** (docs/SESSION.md §7), when the client asks for `ordered` or
//!   `unordered` ([`SequencingMode`]) and the server sets that mode (a refusal is
//!   [`SessionError::ModeRejected`] on both sides, per [`ClientModePolicy`]): every exchange
//!   frame is numbered, acknowledged, asked for again on a gap (`Need-Seq`) and
//!   retransmitted from a bounded buffer by the `liaison-seq` sequencer, so each arrives
//!   exactly once (in order, when ordered) even over a transport that loses, duplicates and
//!   reorders frames. A sender that no longer holds a requested frame bows out, and the
//!   session ends with [`TerminationReason::SequenceAbandoned`] naming the lost numbers
//!   (and [`TerminationReason::BowedOut`] on the sender): never silent loss. Over such a
//!   transport the handshake and the last `Bye` are repeated too.
//! - **Termination** by [`close`](Session::close), [`abort`](Session::abort), transport failure,
//!   protocol violation (found by the session, or by a layer above and reported with
//!   [`fail_protocol`](Session::fail_protocol)), idle timeout or [`Scope`] cancellation;
//!   [`closed`](Session::closed) resolves with the [`TerminationReason`] on both sides.
//! - **Abort propagation**: the session's [`PendingTable`] resolves every pending [`Eventual`]
//!   [`Aborted`] with that reason at once, and every [`Revocable`] fails with [`Revoked`].
//! - **Scopes** group sessions and servers; cancelling or dropping a scope ends them all.
//! - **Resume** (docs/SESSION.md §8, PROTOCOL.md §10), when both sides ask for it
//!   ([`ClientConfig::with_resume`], [`ServerConfig::with_resume`]): a session survives its
//!   transport. The client reconnects on a backoff schedule and proves a secret agreed at
//!   establishment (never sent) over a fresh server nonce; both sides send again what the
//!   other lacks. A restarted server, or another sharing the [`ServerResume`] store,
//!   rebuilds the session from the client's state; what the lost server never
//!   acknowledged is then given up and counted ([`LinkStatus::abandoned`]), never silently.
//!   [`Session::link`] and [`Session::resumes`] say what happened.
//!
//! The protocol logic is the sans-IO [`proto::Connection`]: it reads no clock, owns no socket
//! and draws randomness from the RNG it is given. [`Session`] and [`Server`] drive it on tokio.
//!
//! # What it does not do
//!
//! It does not multiplex exchanges or type calls (the exchange layer does, with
//! [`PendingTable`] and [`Revocable`]). It moves
//! frames of those layers (`Data`, `Exchange*`, `Resume*`) without looking inside their
//! payloads. Without sequencing (the default, [`SequencingMode::None`]) frames pass
//! straight through, in the transport's order, and the transport must be reliable; `Ack`
//! and `NeedSeq` are then left to the layers above.
//!
//! # Example
//!
//! A client and a server over an in-memory pair, authenticated with a pre-shared key; one
//! request (a `Data` frame whose exchange id is the request id) and its reply; then a close
//! that both sides see.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use liaison_session::{ClientConfig, PeerIdentity, PskAuth, ServerConfig, Session};
//! use liaison_session::{Origin, TerminationReason};
//! use liaison_transport::memory;
//! use liaison_wire::Frame;
//!
//! let key = [7u8; 32];
//! let (client_end, server_end) = memory::pair(64, 1 << 20);
//! let client_config = ClientConfig::new(PskAuth::new("app", key)?.with_name("worker"));
//! let server_config = ServerConfig::new(PskAuth::new("app", key)?.with_name("hub"));
//! let (client, server) = tokio::try_join!(
//!     Session::connect(Box::new(client_end), client_config),
//!     Session::accept(Box::new(server_end), server_config),
//! )?;
//! assert_eq!(client.id(), server.id());
//! assert_eq!(
//!     server.peer_identity(),
//!     &PeerIdentity::PreSharedKey { key_id: "app".into(), name: "worker".into() }
//! );
//!
//! // The server echoes each request on its exchange.
//! let mut requests = server.take_incoming().expect("first take");
//! let echo = server.clone();
//! tokio::spawn(async move {
//!     while let Some(request) = requests.recv().await {
//!         let _ = echo.send(Frame::data(request.exchange, request.payload)).await;
//!     }
//! });
//!
//! // The client registers the reply as a pending value of the session, then asks.
//! let (resolver, reply) = client.register::<bytes::Bytes>()?;
//! let mut replies = client.take_incoming().expect("first take");
//! client.send(Frame::data(1, &b"hello"[..])).await?;
//! let frame = replies.recv().await.expect("a reply");
//! assert_eq!(frame.exchange, 1);
//! resolver.resolve(frame.payload);
//! assert_eq!(reply.await?, bytes::Bytes::from_static(b"hello"));
//!
//! // A value still pending when the session ends is aborted with the reason.
//! let (_resolver, never) = client.register::<()>()?;
//! let reason = client.close("done").await;
//! assert_eq!(never.await.unwrap_err().reason(), &reason);
//! assert_eq!(
//!     server.closed().await,
//!     TerminationReason::Closed { origin: Origin::Remote, reason: "done".into() }
//! );
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
mod config;
mod driver;
mod error;
mod lifecycle;
pub mod messages;
mod pending;
pub mod proto;
mod quiet;
mod reason;
mod resume;
mod revocable;
mod scope;
mod server;
mod session;
mod writer;

pub use auth::{
    AuthContext, AuthError, AuthState, AuthStep, Authenticator, Fingerprint, NoAuth, PeerIdentity,
    PskAuth, PskKey, Role, TlsIdentityAuth,
};
pub use config::{
    ClientConfig, NegotiatedConfig, RetransmitConfig, RootCapability, SequencingMode, ServerConfig,
    SessionConfig, SessionId, SessionLimits,
};
pub use error::SessionError;
pub use liaison_seq::{ClientModePolicy, Overflow};
pub use messages::ReasonCode;
pub use pending::{Aborted, Eventual, PendingTable, Resolver};
pub use reason::{HandshakeFailure, Origin, TerminationReason};
pub use resume::{
    reconnect_fn, AddressReconnect, LinkState, LinkStatus, Reconnect, ReconnectFn, ResumeConfig,
    ServerResume, StateHandler, StateProvider,
};
pub use revocable::{Revocable, RevocationGuard, Revoked};
pub use scope::Scope;
pub use server::Server;
pub use session::{FrameSink, IncomingFrames, Session};
