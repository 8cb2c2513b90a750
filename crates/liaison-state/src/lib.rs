//! liaison's remote session-state service: one process keeps users' session states in a
//! store, others read them, or lock, change and write them back, over liaison exchanges.
//!
//! # What it does
//!
//! - [`StateService`] is a liaison-exchange [`Service`](liaison_exchange::Service) over a
//!   [`Store`](liaison_resume::Store) (memory, redb, Redis): serve it as a session's root
//!   capability ([`StateService::serve`]) or export it next to other services.
//! - [`StateClient`] reaches it through a [`Remote`](liaison_exchange::Remote), in three
//!   access modes (wire messages and exchanges: [`protocol`]):
//!   - **read-only** ([`StateClient::get`]): one exchange, no lock; readers never wait;
//!   - **writable over one full-duplex exchange** ([`StateClient::lock`],
//!     [`StateClient::update`]): the server takes the key's lock and sends the state, the
//!     client sends the new state on the same exchange ([`StateGuard::commit`]), the
//!     server persists it and answers with the new version or why it could not;
//!   - **writable over two exchanges** ([`StateClient::lock_split`]): the first exchange is
//!     held open and its hold registered in the store; a put on a second exchange, from
//!     any session to any server sharing the store ([`StateClient::put`],
//!     [`SplitGuard::commit`]), commits and completes both. If the first exchange ends or
//!     its session terminates before the put, the lock is released and the put is refused
//!     with [`StateError::LockLost`].
//! - **Locks**: a second writer waits up to [`StateConfig::lock_wait`], then gets
//!   [`StateError::Locked`]. A lock is released when its holder commits, releases, ends
//!   its exchange or its session terminates (the exchange layer's abort propagation), and
//!   otherwise expires with its lease, which the server renews while the holder is alive.
//!   Every write is conditional on the version read, so no update is ever lost.
//! - **Limits**: keys up to [`StateConfig::max_key_len`] bytes, states up to
//!   [`StateConfig::max_state_size`] bytes (and one message); past them, and for malformed
//!   requests and unknown keys, a typed [`StateError`].
//!
//! # What it does not do
//!
//! It does not interpret states (they are bytes), establish sessions or choose a transport,
//! and it does not split a state over several messages: a state travels in one.
//!
//! # Example
//!
//! A state server and a client over an in-memory session.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use bytes::Bytes;
//! use liaison_exchange::Endpoint;
//! use liaison_resume::MemoryStore;
//! use liaison_session::{ClientConfig, PskAuth, RootCapability, ServerConfig, Session};
//! use liaison_state::{StateClient, StateConfig, StateError, StateService};
//! use liaison_transport::memory;
//!
//! let key = [7u8; 32];
//! let (a, b) = memory::pair(64, 1 << 20);
//! let (client, server) = tokio::try_join!(
//!     Session::connect(Box::new(a), ClientConfig::new(PskAuth::new("app", key)?)),
//!     Session::accept(
//!         Box::new(b),
//!         ServerConfig::new(PskAuth::new("app", key)?)
//!             .with_root(RootCapability::new(1, &b"liaison-state/1"[..])),
//!     ),
//! )?;
//! let service = StateService::new(Arc::new(MemoryStore::new()), StateConfig::default())?;
//! let _server = service.serve(server)?;
//! let states = StateClient::root(&Endpoint::new(client, Default::default())?)?;
//!
//! // Nothing stored yet: a typed error.
//! assert!(matches!(states.get("user-1").await, Err(StateError::NotFound { .. })));
//!
//! // Writable over one exchange: lock, work, commit.
//! let guard = states.lock("user-1").await?;
//! assert_eq!(guard.state(), None);
//! let first = guard.commit(&b"cart=1"[..]).await?;
//!
//! // The convenience form of the same.
//! let updated = states.update("user-1", |old| {
//!     let mut cart = old.map(|s| s.value.to_vec()).unwrap_or_default();
//!     cart.extend_from_slice(b",2");
//!     Bytes::from(cart)
//! }).await?;
//! assert!(updated.version > first);
//!
//! // Writable over two exchanges: the hold stays open while the put commits.
//! let hold = states.lock_split("user-1").await?;
//! assert_eq!(hold.state().map(|s| &s[..]), Some(&b"cart=1,2"[..]));
//! let last = hold.commit(&b"cart="[..]).await?;
//!
//! // Read-only.
//! let state = states.get("user-1").await?;
//! assert_eq!((&state.value[..], state.version), (&b"cart="[..], last));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
mod lock;
pub mod protocol;
mod service;

pub use client::{SplitGuard, StateClient, StateGuard};
pub use config::StateConfig;
pub use error::StateError;
pub use protocol::{LockTicket, State};
pub use service::StateService;
