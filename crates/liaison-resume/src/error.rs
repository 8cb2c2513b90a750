//! The crate's error type.

/// What can go wrong in resume and in the stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// A conditional write found another version than the one expected.
    #[error("version conflict on {key:?}: expected {expected:?}, found {current:?}")]
    Conflict {
        /// The key written.
        key: String,
        /// The version the writer expected (`None`: the key absent).
        expected: Option<u64>,
        /// The version found (`None`: the key absent).
        current: Option<u64>,
    },
    /// The storage backend failed.
    #[error("{backend} store: {message}")]
    Backend {
        /// Which backend (`memory`, `redb`, `redis`).
        backend: &'static str,
        /// What it reported.
        message: String,
    },
    /// A stored resume record does not decode.
    #[error("malformed resume record: {0}")]
    Record(String),
    /// The peer's key-agreement public key is a low-order point.
    #[error("key agreement failed: the peer's public key is unusable")]
    KeyAgreement,
}
