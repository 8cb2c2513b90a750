//! liaison: an authenticated, versioned, resumable session layer for Rust, over memory, TCP,
//! Unix sockets and QUIC, carrying many concurrent exchanges that never mix.
//!
//! This crate re-exports every layer under one name, and a [`prelude`] with what an
//! application uses most. Each layer is also a crate of its own:
//!
//! | module | crate | what it holds |
//! | --- | --- | --- |
//! | [`wire`] | `liaison-wire` | frame format, payload codec, limits (no I/O) |
//! | [`transport`] | `liaison-transport` | memory, TCP, Unix, QUIC transports; fault injection |
//! | [`seq`] | `liaison-seq` | sans-IO sequencer: ordered / unordered delivery, Need-Seq, retransmission |
//! | [`session`] | `liaison-session` | establishment (version, authentication, configuration), keepalive, termination, scopes |
//! | [`exchange`] | `liaison-exchange` | exchanges, flow control, capabilities, typed calls |
//! | [`resume`] | `liaison-resume` | resume secrets, reconnect backoff, the stores (memory, redb, Redis) |
//! | [`state`] | `liaison-state` | the remote session-state service |
//!
//! # What it does not do
//!
//! It adds no behaviour of its own: everything here is one of the layers above, and the
//! `liaison` command-line tool (`liaison-cli`) is built from the same parts.
//!
//! # Example
//!
//! A server and a client over an in-memory listener, authenticated with a pre-shared key,
//! and one typed call.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use liaison::prelude::*;
//!
//! let key = [7u8; 32];
//! let address: Address = "mem://facade-example".parse()?;
//! let transport = TransportConfig::default();
//!
//! // The server offers a root capability that adds two numbers.
//! let server_config = ServerConfig::new(PskAuth::new("app", key)?.with_name("server"))
//!     .with_root(RootCapability::new(1, &b"adder/1"[..]));
//! let mut server = Server::bind(&address, &transport, server_config).await?;
//!
//! let client_config = ClientConfig::new(PskAuth::new("app", key)?.with_name("client"));
//! let (client, accepted) = tokio::try_join!(
//!     Session::connect_to(&address, &transport, client_config),
//!     server.accept(),
//! )?;
//! assert_eq!(accepted.peer_identity().to_string(), "psk:app:client");
//!
//! let adder = service_fn(|(a, b): (u32, u32), _ctx: Context| async move {
//!     a.checked_add(b).ok_or_else(|| "overflow".to_string())
//! });
//! let _served = Endpoint::builder(accepted).root(adder).start()?;
//!
//! // One typed call: the request and the reply go through the codec (bincode).
//! let client = Endpoint::new(client, ExchangeConfig::default())?;
//! let add = client.root()?.typed::<(u32, u32), u32>();
//! assert_eq!(add.call(&(2, 3)).await?, 5);
//!
//! // Closing ends the session on both sides; the capability is revoked.
//! client.close("done").await;
//! assert!(add.call(&(1, 1)).await.unwrap_err().is_revoked());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use liaison_exchange as exchange;
pub use liaison_resume as resume;
pub use liaison_seq as seq;
pub use liaison_session as session;
pub use liaison_state as state;
pub use liaison_transport as transport;
pub use liaison_wire as wire;

/// What most applications use: addresses and transports, session configuration,
/// authentication and resume, exchanges, services and capabilities, stores, the
/// session-state service, and `async_trait` and `Bytes` to write services with.
///
/// ```
/// use liaison::prelude::*;
///
/// let config = ClientConfig::new(NoAuth).with_sequencing(SequencingMode::Ordered);
/// assert_eq!(config.sequencing, SequencingMode::Ordered);
/// ```
pub mod prelude {
    pub use async_trait::async_trait;
    pub use bytes::Bytes;

    pub use liaison_exchange::{
        raw_service_fn, service_fn, CapabilityRef, Context, Endpoint, Exchange, ExchangeConfig,
        ExchangeError, Remote, Service, TypedRemote,
    };
    pub use liaison_resume::{MemoryStore, RedbStore, RedisStore, Store};
    pub use liaison_session::{
        ClientConfig, NoAuth, PeerIdentity, PskAuth, ResumeConfig, RootCapability, Scope,
        SequencingMode, Server, ServerConfig, ServerResume, Session, SessionConfig, SessionError,
        TerminationReason, TlsIdentityAuth,
    };
    pub use liaison_state::{StateClient, StateConfig, StateError, StateService};
    pub use liaison_transport::{
        Address, Loopback, LoopbackKind, QuicClientTls, QuicServerTls, TransportConfig,
        TransportError,
    };
}
