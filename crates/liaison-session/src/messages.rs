//! Payloads of the session layer's frames (docs/SESSION.md): `Welcome`, `Reject`, `Config`,
//! `Bye`, and the [`ReasonCode`]s `Reject` and `Bye` carry.
//!
//! Structured payloads are serde types encoded with the wire crate's default codec; the
//! `Hello` payload is the wire crate's [`VersionOffer`](liaison_wire::VersionOffer) and
//! authentication payloads belong to the [`Authenticator`](crate::Authenticator) in use.

use std::fmt;

use bytes::Bytes;
use liaison_wire::{Codec, DefaultCodec, WireError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{HandshakeFailure, Origin, SequencingMode, SessionLimits, TerminationReason};

/// Longest reason text put on the wire; longer texts are cut (at a character boundary).
pub const MAX_REASON_LEN: usize = 512;

/// Why a session ended or a handshake was refused: the code of a `Reject` or `Bye` frame
/// (docs/SESSION.md §5 and §6; PROTOCOL.md §11). One code space serves both frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReasonCode {
    /// 0: graceful close; the message is the reason given to `close`.
    Closed,
    /// 1: the sender aborted.
    Aborted,
    /// 2: the sender found a protocol violation; the message says what.
    ProtocolViolation,
    /// 3: the sender heard nothing from its peer for its idle timeout.
    IdleTimeout,
    /// 4: the sender is shutting down (its scope was cancelled).
    ShuttingDown,
    /// 5: no protocol version in common.
    VersionMismatch,
    /// 6: authentication failed (never more detail than that).
    AuthenticationFailed,
    /// 7: the configuration cannot be accepted.
    ConfigRejected,
    /// 8: the handshake did not complete in time.
    HandshakeTimeout,
    /// 16: the client refuses the sequencing mode the server set (the NACK of
    /// docs/SESSION.md §4.1); the message restates the request.
    ModeRejected,
    /// 17: the sender bows out of sequencing (`Bye` with `IGNORE_SEQ`, docs/SESSION.md §7.5).
    SequenceAbandoned,
    /// 18: a resume names a session the server does not hold (never known, expired after
    /// its idle timeout, or not resumable); docs/PROTOCOL.md §10.
    SessionUnknown,
    /// 19: a resume's proof or identity does not match the session (docs/PROTOCOL.md §10).
    ResumeDenied,
    /// 20: the server could not rebuild the session from the client's state
    /// (`ResumeStateAck`, docs/PROTOCOL.md §10.2).
    StateRejected,
    /// A code this version does not know.
    Unknown(u16),
}

impl ReasonCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Closed => 0,
            Self::Aborted => 1,
            Self::ProtocolViolation => 2,
            Self::IdleTimeout => 3,
            Self::ShuttingDown => 4,
            Self::VersionMismatch => 5,
            Self::AuthenticationFailed => 6,
            Self::ConfigRejected => 7,
            Self::HandshakeTimeout => 8,
            Self::ModeRejected => 16,
            Self::SequenceAbandoned => 17,
            Self::SessionUnknown => 18,
            Self::ResumeDenied => 19,
            Self::StateRejected => 20,
            Self::Unknown(code) => code,
        }
    }
}

impl From<u16> for ReasonCode {
    fn from(code: u16) -> Self {
        match code {
            0 => Self::Closed,
            1 => Self::Aborted,
            2 => Self::ProtocolViolation,
            3 => Self::IdleTimeout,
            4 => Self::ShuttingDown,
            5 => Self::VersionMismatch,
            6 => Self::AuthenticationFailed,
            7 => Self::ConfigRejected,
            8 => Self::HandshakeTimeout,
            16 => Self::ModeRejected,
            17 => Self::SequenceAbandoned,
            18 => Self::SessionUnknown,
            19 => Self::ResumeDenied,
            20 => Self::StateRejected,
            other => Self::Unknown(other),
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("closed"),
            Self::Aborted => f.write_str("aborted"),
            Self::ProtocolViolation => f.write_str("protocol violation"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::ShuttingDown => f.write_str("shutting down"),
            Self::VersionMismatch => f.write_str("version mismatch"),
            Self::AuthenticationFailed => f.write_str("authentication failed"),
            Self::ConfigRejected => f.write_str("configuration rejected"),
            Self::HandshakeTimeout => f.write_str("handshake timeout"),
            Self::ModeRejected => f.write_str("session mode rejected"),
            Self::SequenceAbandoned => f.write_str("sequence abandoned"),
            Self::SessionUnknown => f.write_str("session unknown"),
            Self::ResumeDenied => f.write_str("resume denied"),
            Self::StateRejected => f.write_str("session state rejected"),
            Self::Unknown(code) => write!(f, "code {code}"),
        }
    }
}

impl From<&HandshakeFailure> for ReasonCode {
    fn from(failure: &HandshakeFailure) -> Self {
        match failure {
            HandshakeFailure::VersionMismatch { .. } => Self::VersionMismatch,
            HandshakeFailure::AuthenticationFailed { .. } => Self::AuthenticationFailed,
            HandshakeFailure::Rejected { code, .. } => *code,
            HandshakeFailure::Timeout => Self::HandshakeTimeout,
            HandshakeFailure::ModeRejected { .. } => Self::ModeRejected,
        }
    }
}

impl From<&TerminationReason> for ReasonCode {
    /// The code sent when a session ends locally for `reason`.
    fn from(reason: &TerminationReason) -> Self {
        match reason {
            TerminationReason::Closed { .. } => Self::Closed,
            TerminationReason::ProtocolViolation { .. } => Self::ProtocolViolation,
            TerminationReason::IdleTimeout => Self::IdleTimeout,
            TerminationReason::ScopeCancelled => Self::ShuttingDown,
            TerminationReason::HandshakeFailed(failure) => failure.into(),
            TerminationReason::SequenceAbandoned { .. } | TerminationReason::BowedOut { .. } => {
                Self::SequenceAbandoned
            }
            TerminationReason::ResumeRefused { code, .. } => *code,
            TerminationReason::Aborted { .. }
            | TerminationReason::TransportFailed(_)
            | TerminationReason::TransportClosed
            | TerminationReason::ReconnectFailed { .. }
            | TerminationReason::PeerRestarted => Self::Aborted,
        }
    }
}

/// The reason a receiver of a `Reject` or `Bye` with `code` and `message` terminates with
/// (docs/SESSION.md §5, §6). `established` says whether the session was established;
/// `offered` and `supported` are the versions of both sides, as far as the receiver knows
/// them (for a version mismatch).
pub fn remote_reason(
    code: ReasonCode,
    message: &str,
    established: bool,
    offered: &[u16],
    supported: &[u16],
) -> TerminationReason {
    let origin = Origin::Remote;
    match code {
        ReasonCode::Aborted if established => TerminationReason::Aborted { origin },
        ReasonCode::ProtocolViolation => TerminationReason::ProtocolViolation {
            origin,
            detail: message.to_owned(),
        },
        _ if established => TerminationReason::Closed {
            origin,
            reason: message.to_owned(),
        },
        ReasonCode::VersionMismatch => {
            TerminationReason::HandshakeFailed(HandshakeFailure::VersionMismatch {
                offered: offered.to_vec(),
                supported: supported.to_vec(),
            })
        }
        ReasonCode::AuthenticationFailed => {
            TerminationReason::HandshakeFailed(HandshakeFailure::AuthenticationFailed {
                origin,
                detail: "authentication failed".into(),
            })
        }
        code => TerminationReason::HandshakeFailed(HandshakeFailure::Rejected {
            origin,
            code,
            message: message.to_owned(),
        }),
    }
}

/// `Welcome`, server → client (docs/SESSION.md §2), hand-encoded: the chosen version (u16
/// LE, PROTOCOL.md §7.1), then the server's authentication mechanism as a one-byte length
/// and that many bytes of UTF-8, then the server's fresh 32-byte resume nonce
/// (PROTOCOL.md §10.1). Bytes after it are extensions a receiver ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The version both sides now speak.
    pub version: u16,
    /// The server's [`Authenticator::mechanism`](crate::Authenticator::mechanism), at most
    /// 255 bytes.
    pub mechanism: String,
    /// Fresh random bytes of this connection: a resume proof is computed over them.
    pub nonce: [u8; 32],
}

impl Welcome {
    /// The payload's bytes. A mechanism name longer than 255 bytes is cut.
    pub fn to_bytes(&self) -> Bytes {
        let name = self.mechanism.as_bytes();
        let len = u8::try_from(name.len()).unwrap_or(u8::MAX);
        let mut out = Vec::with_capacity(3 + usize::from(len) + 32);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.push(len);
        out.extend_from_slice(&name[..usize::from(len)]);
        out.extend_from_slice(&self.nonce);
        Bytes::from(out)
    }

    /// Decodes a `Welcome` payload.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let truncated = |needed| WireError::Truncated {
            needed,
            available: payload.len(),
        };
        let (version, rest) = payload
            .split_first_chunk::<2>()
            .ok_or_else(|| truncated(3))?;
        let (&len, rest) = rest.split_first().ok_or_else(|| truncated(3))?;
        let name = rest
            .get(..usize::from(len))
            .ok_or_else(|| truncated(3 + usize::from(len)))?;
        let mechanism = std::str::from_utf8(name)
            .map_err(|_| WireError::Malformed("mechanism name is not UTF-8"))?;
        let nonce = rest
            .get(usize::from(len)..)
            .and_then(|rest| rest.first_chunk::<32>())
            .ok_or_else(|| truncated(3 + usize::from(len) + 32))?;
        Ok(Self {
            version: u16::from_le_bytes(*version),
            mechanism: mechanism.to_owned(),
            nonce: *nonce,
        })
    }
}

/// `Reject`, server → client during the handshake (docs/SESSION.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// A [`ReasonCode`] number.
    pub code: u16,
    /// Human-readable explanation, at most [`MAX_REASON_LEN`] bytes.
    pub message: String,
    /// The server's versions, with [`ReasonCode::VersionMismatch`]; otherwise empty.
    pub supported_versions: Vec<u16>,
}

impl Reject {
    /// A reject with `code` and `message` (cut to [`MAX_REASON_LEN`]).
    pub fn new(code: ReasonCode, message: &str) -> Self {
        Self {
            code: code.to_u16(),
            message: truncate(message).to_owned(),
            supported_versions: Vec::new(),
        }
    }

    /// The reason the client terminates with on receiving this reject, having offered
    /// `offered`.
    pub fn to_reason(&self, offered: &[u16]) -> TerminationReason {
        remote_reason(
            ReasonCode::from(self.code),
            &self.message,
            false,
            offered,
            &self.supported_versions,
        )
    }
}

/// `Config`, client → server (docs/SESSION.md §4): the client's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRequest {
    /// The client's limits.
    pub limits: SessionLimits,
    /// The client's keepalive interval, in milliseconds.
    pub keepalive_ms: u64,
    /// The client's idle timeout, in milliseconds.
    pub idle_timeout_ms: u64,
    /// The sequencing mode the client asks for.
    pub sequencing: SequencingMode,
    /// The client's application parameters.
    pub app_params: Blob,
    /// To ask for a resumable session: the client's ephemeral x25519 public key (32 bytes,
    /// PROTOCOL.md §10).
    pub resume_key: Option<Blob>,
}

/// `Config`, server → client (docs/SESSION.md §4): the server's answer, which establishes
/// the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigAnswer {
    /// The session's id (128 random bits: 16 bytes).
    pub session_id: Blob,
    /// Limits in force: the minimum of both sides.
    pub limits: SessionLimits,
    /// Keepalive interval in force, in milliseconds: the minimum of both sides.
    pub keepalive_ms: u64,
    /// Idle timeout in force, in milliseconds: the minimum of both sides.
    pub idle_timeout_ms: u64,
    /// The sequencing mode the server sets (`Set-Session-Mode`): the one the client asked
    /// for, or another one the client then refuses (docs/SESSION.md §4.1).
    pub sequencing: SequencingMode,
    /// The server's application parameters.
    pub app_params: Blob,
    /// The server's root capability: an application-defined id and descriptor.
    pub root: Option<(u64, Blob)>,
    /// When the session is resumable: the server's ephemeral x25519 public key (32 bytes,
    /// PROTOCOL.md §10).
    pub resume_key: Option<Blob>,
}

/// `Resume`, client → server in place of `Config` (PROTOCOL.md §10.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The session to resume (16 bytes).
    pub session_id: Blob,
    /// `HMAC-SHA256(secret, "liaison resume proof v1" ‖ session id ‖ Welcome nonce)`
    /// (32 bytes).
    pub proof: Blob,
    /// The client received every sequenced frame of the server below this number.
    pub next_expected: u64,
}

/// `ResumeAck`, server → client (PROTOCOL.md §10.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResumeAck {
    /// 0: the session goes on.
    Resumed {
        /// The server received every sequenced frame of the client below this number.
        next_expected: u64,
        /// The server rebuilt the session from its store: the client sends `ResumeState`
        /// and both sides number from 0 again.
        state_needed: bool,
    },
    /// 1: the session cannot be resumed; the client may open a new one.
    New {
        /// A reason code (`SessionUnknown`, `ResumeDenied`, ...).
        code: u16,
        /// Why, at most [`MAX_REASON_LEN`] bytes.
        message: String,
    },
}

/// `ResumeStateAck`, server → client (PROTOCOL.md §10.2): code 0 when the session was
/// rebuilt, otherwise why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeStateAck {
    /// 0, or a reason code (`StateRejected`).
    pub code: u16,
    /// Why not, at most [`MAX_REASON_LEN`] bytes; empty on success.
    pub message: String,
}

/// `Bye`, either direction once established, and client → server during the handshake
/// (docs/SESSION.md §5, §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bye {
    /// A [`ReasonCode`] number.
    pub code: u16,
    /// The reason, at most [`MAX_REASON_LEN`] bytes.
    pub message: String,
}

impl Bye {
    /// A bye with `code` and `message` (cut to [`MAX_REASON_LEN`]).
    pub fn new(code: ReasonCode, message: &str) -> Self {
        Self {
            code: code.to_u16(),
            message: truncate(message).to_owned(),
        }
    }

    /// The `Bye` an endpoint sends when it terminates locally for `reason`.
    pub fn for_reason(reason: &TerminationReason) -> Self {
        let message = match reason {
            TerminationReason::Closed { reason, .. } => reason.clone(),
            TerminationReason::ProtocolViolation { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        Self::new(ReasonCode::from(reason), &message)
    }

    /// The reason the receiver of this `Bye` terminates with, once established.
    pub fn to_reason(&self) -> TerminationReason {
        remote_reason(ReasonCode::from(self.code), &self.message, true, &[], &[])
    }
}

/// Opaque bytes in a payload, encoded as one length-prefixed byte string.
///
/// Serde's `Vec<u8>` and `[u8; N]` are sequences of single bytes; this is the same encoding
/// read as one string of bytes, so the codec checks the length once instead of counting
/// every byte as an element.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    /// The bytes as an array of `N`, if there are exactly `N`.
    pub fn to_array<const N: usize>(&self) -> Option<[u8; N]> {
        self.0.as_slice().try_into().ok()
    }
}

impl From<&[u8]> for Blob {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;

        impl serde::de::Visitor<'_> for BlobVisitor {
            type Value = Blob;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }

        deserializer.deserialize_byte_buf(BlobVisitor)
    }
}

/// `s` cut to at most [`MAX_REASON_LEN`] bytes at a character boundary.
pub(crate) fn truncate(s: &str) -> &str {
    if s.len() <= MAX_REASON_LEN {
        return s;
    }
    let mut end = MAX_REASON_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Encodes a control payload with the wire crate's default codec.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes, WireError> {
    DefaultCodec::default().encode(value)
}

/// Decodes a control payload with the wire crate's default codec.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    DefaultCodec::default().decode(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_encodes_like_a_byte_vector_and_decodes_any_length() {
        let bytes: Vec<u8> = (0..=255).collect();
        let blob = Blob(bytes.clone());
        let encoded = encode(&blob).expect("encode");
        assert_eq!(encoded, encode(&bytes).expect("encode"));
        assert_eq!(decode::<Blob>(&encoded).expect("decode"), blob);
        assert_eq!(blob.to_array::<256>().map(|a| a.len()), Some(256));
        assert_eq!(blob.to_array::<16>(), None);
    }

    #[test]
    fn codes_round_trip_through_their_numbers() {
        for n in 0..=12u16 {
            assert_eq!(ReasonCode::from(n).to_u16(), n);
        }
        assert_eq!(ReasonCode::from(9), ReasonCode::Unknown(9));
    }

    #[test]
    fn welcome_is_version_first_and_ignores_extensions() {
        let welcome = Welcome {
            version: 0x0102,
            mechanism: "psk-hmac-sha256".into(),
            nonce: [7; 32],
        };
        let mut bytes = welcome.to_bytes().to_vec();
        assert_eq!(bytes[..3], [0x02, 0x01, 15]);
        bytes.extend_from_slice(b"future");
        assert_eq!(Welcome::decode(&bytes), Ok(welcome));
        assert!(Welcome::decode(&[1]).is_err());
        assert!(Welcome::decode(&[1, 0, 5, b'a']).is_err());
        assert!(Welcome::decode(&[1, 0, 1, 0xff]).is_err());
    }

    #[test]
    fn bye_maps_local_reasons_to_remote_ones() {
        let closed = TerminationReason::Closed {
            origin: Origin::Local,
            reason: "done".into(),
        };
        assert_eq!(
            Bye::for_reason(&closed).to_reason(),
            TerminationReason::Closed {
                origin: Origin::Remote,
                reason: "done".into()
            }
        );
        let aborted = TerminationReason::Aborted {
            origin: Origin::Local,
        };
        assert_eq!(
            Bye::for_reason(&aborted).to_reason(),
            TerminationReason::Aborted {
                origin: Origin::Remote
            }
        );
        let violation = TerminationReason::ProtocolViolation {
            origin: Origin::Local,
            detail: "bad".into(),
        };
        assert_eq!(
            Bye::for_reason(&violation).to_reason(),
            TerminationReason::ProtocolViolation {
                origin: Origin::Remote,
                detail: "bad".into()
            }
        );
    }

    #[test]
    fn long_reasons_are_cut_at_a_char_boundary() {
        let long = "é".repeat(MAX_REASON_LEN);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_REASON_LEN);
        assert!(long.starts_with(cut));
    }

    #[test]
    fn a_remote_authentication_failure_stays_generic() {
        let reject = Reject::new(ReasonCode::AuthenticationFailed, "key 7 unknown");
        assert_eq!(
            reject.to_reason(&[1]),
            TerminationReason::HandshakeFailed(HandshakeFailure::AuthenticationFailed {
                origin: Origin::Remote,
                detail: "authentication failed".into()
            })
        );
    }

    #[test]
    fn a_version_mismatch_reject_carries_both_version_lists() {
        let mut reject = Reject::new(ReasonCode::VersionMismatch, "no common version");
        reject.supported_versions = vec![1, 2];
        assert_eq!(
            reject.to_reason(&[7]),
            TerminationReason::HandshakeFailed(HandshakeFailure::VersionMismatch {
                offered: vec![7],
                supported: vec![1, 2]
            })
        );
    }
}
