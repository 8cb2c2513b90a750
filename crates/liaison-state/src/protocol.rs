//! The wire messages of the session-state service and the exchanges that carry them.
//!
//! Every message is a serde type encoded with the session's payload codec (bincode by
//! default, PROTOCOL.md §5.2), one message per `Data` (or `ExchangeBegin`) frame (§9). The
//! service is a capability (§9.8); each operation is one exchange towards it, and the
//! exchange's first message is a [`Request`].
//!
//! # Read-only: one exchange, no lock
//!
//! ```text
//! client                                   server
//!   ExchangeBegin [Get { key }] + END  ──▶  reads the store (never waits for a lock)
//!                                     ◀──  [State(Some(state))] + END
//!                                          or [Failed(NotFound | ...)] + END
//! ```
//!
//! # Writable over one full-duplex exchange
//!
//! ```text
//! client                                   server
//!   ExchangeBegin [Lock { key }]       ──▶  takes the key's lock (waits up to lock_wait),
//!                                          loads the state, renews the lease meanwhile
//!                                     ◀──  [State(Some(state) | None)]
//!   (the application works)
//!   Data [Commit { state }] + END      ──▶  persists with a version check, releases
//!                                     ◀──  [Committed { version }] + END
//!                                          or [Failed(Conflict | LockLost | ...)] + END
//! ```
//!
//! Instead of a `Commit` the client may send [`Update::Release`] (answered [`Reply::Released`]),
//! end its direction, or cancel the exchange: the lock is released and nothing is written.
//! The same happens when the session terminates. A lock the server could not take within
//! its wait is answered `Failed(Locked)` and ends the exchange.
//!
//! # Writable over two exchanges
//!
//! For when one full-duplex exchange is not available (the put may even travel over another
//! session, to another server sharing the store):
//!
//! ```text
//! client                                   server
//!  first exchange, held open:
//!   ExchangeBegin [LockSplit { key }]  ──▶  takes the lock, loads the state, registers the
//!                                          hold in the store under a fresh ticket
//!                                     ◀──  [Held { state, ticket }]
//!   (the application works)
//!  second exchange:
//!   ExchangeBegin [Put { ticket, state }] + END
//!                                     ──▶  claims the hold, persists, releases
//!                                     ◀──  [Committed { version }] + END (second exchange)
//!                                     ◀──  [Completed { version }] + END (first exchange)
//! ```
//!
//! If the first exchange ends (the client ends its direction, cancels it, or sends
//! [`Update::Release`], answered [`Reply::Released`]) or its session terminates before a
//! put claimed the hold, the server deletes the hold and releases the lock: a later `Put`
//! with that ticket is answered `Failed(LockLost)`. After a final answer the server waits
//! for the client to end its direction (or drop the exchange) before it closes it, so the
//! answer is never discarded by a cancel.
//!
//! # Locks
//!
//! The lock of a key lives in the [`Store`](liaison_resume::Store)'s lock namespace under
//! the key, owned by a random 128-bit token the holding server draws for the holder (the
//! [`LockTicket`] names key and token), with a lease the server renews while the holder is
//! alive. A server that dies leaves a lock that expires with its lease. Every write is
//! conditional on the version the holder read, so a holder whose lease lapsed and whose key
//! someone else wrote meanwhile gets `Failed(Conflict)`, never a lost update.
//!
//! # Store layout
//!
//! Under the service's [`prefix`](crate::StateConfig::prefix) (`liaison-state/` by
//! default), in any [`Store`](liaison_resume::Store):
//!
//! | store key | namespace | holds |
//! | --- | --- | --- |
//! | `{prefix}v/{key}` | values | the state of `key`, versioned by the store |
//! | `{prefix}v/{key}` | locks | the lock of `key`, owned by the holder's token in hex, with a lease |
//! | `{prefix}h/{token}` | values | a hold of the two-exchange mode: its key and the version read, with a lease; whoever deletes it (the put or the ending hold) decides its fate |
//! | `{prefix}d/{token}` | values | the outcome of a put, for a holder on another server, kept one lease |

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A stored state and the version it was written with (versions grow with every write).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct State {
    /// The state's bytes, as the application wrote them.
    #[serde(with = "bytes_serde")]
    pub value: Bytes,
    /// Its version (at least 1).
    pub version: u64,
}

/// Names a hold of the two-exchange mode: the key and the lock owner's random token. Sent
/// back in [`Request::Put`] to commit; anyone holding it can commit once, until the hold
/// ends.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LockTicket {
    /// The locked key.
    pub key: String,
    /// The lock owner's token: 128 random bits drawn by the server that took the lock.
    pub token: [u8; 16],
}

impl LockTicket {
    /// The token in lower-case hex (how the store names the owner).
    pub fn token_hex(&self) -> String {
        hex(&self.token)
    }
}

impl fmt::Debug for LockTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a capability: show only a prefix.
        f.debug_struct("LockTicket")
            .field("key", &self.key)
            .field("token", &format_args!("{}…", &self.token_hex()[..8]))
            .finish()
    }
}

/// The first message of every exchange towards the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Read-only: the state of `key`, no lock.
    Get {
        /// The key.
        key: String,
    },
    /// Writable over this exchange: lock `key`, send its state, wait for an [`Update`].
    Lock {
        /// The key.
        key: String,
    },
    /// Writable over two exchanges: lock `key`, send its state and a ticket, hold the lock
    /// while this exchange stays open.
    LockSplit {
        /// The key.
        key: String,
    },
    /// The second exchange of the two-exchange mode: commit `state` under the hold `ticket`
    /// names.
    Put {
        /// The hold's ticket, from [`Reply::Held`].
        ticket: LockTicket,
        /// The new state.
        #[serde(with = "bytes_serde")]
        state: Bytes,
    },
}

/// What the client sends on a [`Request::Lock`] exchange once it has the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Update {
    /// Persist `state` and release the lock.
    Commit {
        /// The new state.
        #[serde(with = "bytes_serde")]
        state: Bytes,
    },
    /// Release the lock without writing.
    Release,
}

/// What the service answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Reply {
    /// The state of the key (`None`: no state yet, only after a lock).
    State(Option<State>),
    /// The two-exchange mode's lock is held: the state and the ticket to commit with.
    Held {
        /// The state of the key (`None`: no state yet).
        state: Option<State>,
        /// The ticket for [`Request::Put`].
        ticket: LockTicket,
    },
    /// The new state was persisted with this version (answer to a commit or a put).
    Committed {
        /// The new version.
        version: u64,
    },
    /// The two-exchange mode's put committed with this version (on the first exchange).
    Completed {
        /// The new version.
        version: u64,
    },
    /// The lock was released without writing.
    Released,
    /// The operation failed; nothing was written.
    Failed(Failure),
}

/// Why an operation failed, as the wire carries it; the client turns it into a
/// [`StateError`](crate::StateError).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Failure {
    /// The key has no state.
    NotFound {
        /// The key.
        key: String,
    },
    /// Another holder kept the key's lock for the whole wait.
    Locked {
        /// The key.
        key: String,
        /// How long the server waited, in milliseconds.
        waited_ms: u64,
    },
    /// The hold ended (its exchange or session ended, its lease expired, or another put
    /// used it) before the commit.
    LockLost {
        /// The key.
        key: String,
    },
    /// The key was written by someone else since it was read.
    Conflict {
        /// The key.
        key: String,
        /// The version read (`None`: absent).
        expected: Option<u64>,
        /// The version found (`None`: absent).
        current: Option<u64>,
    },
    /// The key is not acceptable (empty, or holds a control character).
    InvalidKey {
        /// Why.
        reason: String,
    },
    /// The key is longer than the server accepts.
    KeyTooLong {
        /// Its length in bytes.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The state is larger than the server accepts.
    StateTooLarge {
        /// Its size in bytes.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A message could not be decoded or came at the wrong point of the exchange.
    Malformed {
        /// What was wrong.
        detail: String,
    },
    /// The server's store failed.
    Store {
        /// What it reported.
        message: String,
    },
}

/// `bytes` in lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Serde for [`Bytes`] as one byte string (a length and the raw bytes in bincode), without
/// the `bytes` crate's serde feature.
mod bytes_serde {
    use std::fmt;

    use bytes::Bytes;
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Bytes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(value)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Bytes;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            // Self-describing formats may send a sequence; its length hint is not trusted.
            let mut out = Vec::new();
            while let Some(byte) = seq.next_element::<u8>()? {
                out.push(byte);
            }
            Ok(Bytes::from(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use liaison_wire::{BincodeCodec, Codec};
    use proptest::prelude::*;

    use super::*;

    fn codec() -> BincodeCodec {
        BincodeCodec::new(1 << 20)
    }

    #[test]
    fn states_travel_as_length_and_raw_bytes() {
        let state = State {
            value: Bytes::from_static(b"abc"),
            version: 2,
        };
        let bytes = codec().encode(&state).unwrap();
        // A varint length, the bytes, a varint version.
        assert_eq!(bytes[..], [3, b'a', b'b', b'c', 2]);
        assert_eq!(codec().decode::<State>(&bytes).unwrap(), state);
    }

    #[test]
    fn a_huge_claimed_length_is_refused_without_allocating_it() {
        // Put { ticket, state } with a state claiming 2^60 bytes.
        let mut bytes = codec()
            .encode(&Request::Put {
                ticket: LockTicket {
                    key: "k".into(),
                    token: [1; 16],
                },
                state: Bytes::new(),
            })
            .unwrap()
            .to_vec();
        bytes.pop();
        bytes.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        assert!(codec().decode::<Request>(&bytes).is_err());
    }

    #[test]
    fn ticket_debug_hides_most_of_the_token() {
        let ticket = LockTicket {
            key: "user".into(),
            token: [0xab; 16],
        };
        assert_eq!(ticket.token_hex(), "ab".repeat(16));
        let shown = format!("{ticket:?}");
        assert!(shown.contains("abababab…"), "{shown}");
        assert!(!shown.contains(&"ab".repeat(16)), "{shown}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn requests_round_trip(key in ".{0,40}", state in proptest::collection::vec(any::<u8>(), 0..200), token in any::<[u8; 16]>()) {
            let requests = [
                Request::Get { key: key.clone() },
                Request::Lock { key: key.clone() },
                Request::LockSplit { key: key.clone() },
                Request::Put { ticket: LockTicket { key, token }, state: Bytes::from(state) },
            ];
            for request in requests {
                let bytes = codec().encode(&request).unwrap();
                prop_assert_eq!(codec().decode::<Request>(&bytes).unwrap(), request);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = codec().decode::<Request>(&bytes);
            let _ = codec().decode::<Update>(&bytes);
            let _ = codec().decode::<Reply>(&bytes);
        }
    }
}
