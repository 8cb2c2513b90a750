//! liaison's session resume support: the storage trait shared by session resume and the
//! session-state service, and its backends.
//!
//! # What it does
//!
//! - [`Store`]: a versioned key-value store with time-to-live and lease locks, the one
//!   storage trait of liaison. [`MemoryStore`] keeps everything in the process.
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

mod error;
pub mod store;

pub use error::ResumeError;
pub use store::{MemoryStore, Store, Versioned};
