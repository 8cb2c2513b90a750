//! liaison's session resume support: the storage trait shared by session resume and the
//! session-state service, and its backends.
//!
//! # What it does
//!
//! - Resume secrets ([`KeyShare`], [`ResumeSecret`], [`proof`], [`verify`]): agreed by an
//!   ephemeral x25519 exchange during configuration, never sent, proven over a fresh
//!   server nonce (docs/PROTOCOL.md §10).
//! - [`Backoff`]: the reconnection schedule of a detached client (sans-IO).
//! - [`ResumeRecord`]: what a server stores about a resumable session.
//! - [`Store`]: a versioned key-value store with time-to-live and lease locks, the one
//!   storage trait of liaison (DESIGN.md, "Stores"), with three backends that pass one
//!   conformance suite:
//!
//!   | backend | keeps data | use it for |
//!   | --- | --- | --- |
//!   | [`MemoryStore`] | in the process | tests (expiry on the tokio clock, so paused time drives it) and a single server that may forget sessions on restart |
//!   | `RedbStore` (feature `redb`) | in one redb file | a single server whose sessions survive its restart; the CLI's default |
//!   | `RedisStore` (feature `redis`) | on a Redis server | a fleet of servers behind a load balancer: a client resumes on any node |
//!
//!   `LocalRedis` (feature `redis`) starts a private `redis-server` for tests and demos.
//!   Both features are on by default.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), liaison_resume::ResumeError> {
//! use bytes::Bytes;
//! use liaison_resume::{MemoryStore, Store};
//!
//! let store = MemoryStore::new();
//! let v1 = store.put("k", Bytes::from_static(b"one"), None, None).await?;
//! assert_eq!(store.get("k").await?.map(|v| v.version), Some(v1));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backoff;
mod error;
mod record;
mod secret;
pub mod store;

pub use backoff::{Backoff, BackoffConfig};
pub use error::ResumeError;
pub use record::{record_key, ResumeRecord, RECORD_PREFIX};
pub use secret::{
    derive, proof, verify, KeyShare, ResumeSecret, NONCE_LEN, PROOF_LEN, PUBLIC_KEY_LEN, SECRET_LEN,
};
#[cfg(feature = "redb")]
pub use store::RedbStore;
#[cfg(feature = "redis")]
pub use store::{LocalRedis, RedisStore};
pub use store::{MemoryStore, Store, Versioned};
