//! [`ResumeRecord`]: what a server keeps in its [`Store`](crate::Store) about a resumable
//! session, so that it (or another server sharing the store) can resume it after losing
//! the live session.

use bytes::Bytes;
use liaison_wire::{Codec, DefaultCodec};
use serde::{Deserialize, Serialize};

use crate::{ResumeError, ResumeSecret};

/// Prefix of the keys records are stored under.
pub const RECORD_PREFIX: &str = "liaison/session/";

/// The key of session `session_id`'s record: `liaison/session/<32 hex digits>`.
pub fn record_key(session_id: &[u8; 16]) -> String {
    let mut key = String::with_capacity(RECORD_PREFIX.len() + 32);
    key.push_str(RECORD_PREFIX);
    for byte in session_id {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// A resumable session as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResumeRecord {
    /// The session's id.
    pub session_id: [u8; 16],
    /// The client's authenticated identity, as the server renders it; a resume must
    /// authenticate as the same identity.
    pub identity: String,
    /// The resume secret.
    pub secret: ResumeSecret,
    /// When the session was established, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The session layer's negotiated parameters, opaque here.
    pub params: Vec<u8>,
    /// How many times the session was rebuilt from the store (0 as established): tells the
    /// record a server wrote apart from the one another server wrote after rebuilding it.
    pub incarnation: u32,
}

impl ResumeRecord {
    /// A record.
    pub fn new(
        session_id: [u8; 16],
        identity: impl Into<String>,
        secret: ResumeSecret,
        created_ms: u64,
        params: Vec<u8>,
    ) -> Self {
        Self {
            session_id,
            identity: identity.into(),
            secret,
            created_ms,
            params,
            incarnation: 0,
        }
    }

    /// The same record for the next incarnation of the session (rebuilt from the store).
    #[must_use]
    pub fn next_incarnation(mut self) -> Self {
        self.incarnation = self.incarnation.saturating_add(1);
        self
    }

    /// The key this record is stored under.
    pub fn key(&self) -> String {
        record_key(&self.session_id)
    }

    /// The record's bytes (the wire codec).
    pub fn encode(&self) -> Result<Bytes, ResumeError> {
        DefaultCodec::default()
            .encode(self)
            .map_err(|e| ResumeError::Record(e.to_string()))
    }

    /// A record from its bytes.
    ///
    /// # Errors
    ///
    /// [`ResumeError::Record`] for bytes that are not a record.
    pub fn decode(bytes: &[u8]) -> Result<Self, ResumeError> {
        DefaultCodec::default()
            .decode(bytes)
            .map_err(|e| ResumeError::Record(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_under_a_hex_key() {
        let record = ResumeRecord::new(
            [0xab; 16],
            "psk:app/worker",
            ResumeSecret::from_bytes([3; 32]),
            1_700_000_000_000,
            vec![1, 2, 3],
        );
        assert_eq!(record.key(), format!("liaison/session/{}", "ab".repeat(16)));
        let bytes = record.encode().expect("encode");
        assert_eq!(ResumeRecord::decode(&bytes).expect("decode"), record);
        assert!(matches!(
            ResumeRecord::decode(&bytes[..bytes.len() - 1]),
            Err(ResumeError::Record(_))
        ));
    }
}
