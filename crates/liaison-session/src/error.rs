//! The crate's one error type, [`SessionError`].

use liaison_transport::TransportError;
use liaison_wire::WireError;

use crate::{HandshakeFailure, Origin, ReasonCode, SequencingMode, TerminationReason};

/// Everything that can go wrong establishing or using a session.
///
/// Establishment failures are typed and say who found them ([`Origin`]): a
/// [`VersionMismatch`](Self::VersionMismatch), an
/// [`AuthenticationFailed`](Self::AuthenticationFailed), a [`Rejected`](Self::Rejected)
/// configuration, a [`HandshakeTimeout`](Self::HandshakeTimeout) or a
/// [`Protocol`](Self::Protocol) violation. The peer receives the same reason on the wire
/// where it is safe to send one (docs/SESSION.md §5).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The two sides speak no protocol version in common (docs/SESSION.md §2).
    #[error("no common protocol version: offered {offered:?}, supported {supported:?}")]
    VersionMismatch {
        /// Versions the client offered.
        offered: Vec<u16>,
        /// Versions the server supports.
        supported: Vec<u16>,
    },
    /// Authentication failed (docs/SESSION.md §3). When the peer found the failure, the
    /// detail is only "authentication failed".
    #[error("authentication failed ({origin}): {detail}")]
    AuthenticationFailed {
        /// Who found the failure.
        origin: Origin,
        /// What failed.
        detail: String,
    },
    /// The handshake was refused for a reason other than version or authentication.
    #[error("handshake rejected ({origin}, {code}): {message}")]
    Rejected {
        /// Who refused.
        origin: Origin,
        /// The reason code sent on the wire.
        code: ReasonCode,
        /// Human-readable explanation.
        message: String,
    },
    /// The handshake did not complete before its deadline.
    #[error("handshake deadline passed")]
    HandshakeTimeout,
    /// The server set another sequencing mode than the client requested; the client
    /// refused it (NACK) and gave up as its [`ClientModePolicy`](crate::ClientModePolicy)
    /// says (docs/SESSION.md §4.1).
    #[error("session mode refused ({origin}): {requested} requested, the server set {offered}")]
    ModeRejected {
        /// Who refused: the client (local there, remote on the server).
        origin: Origin,
        /// The mode the client requested.
        requested: SequencingMode,
        /// The mode the server set.
        offered: SequencingMode,
    },
    /// A frame broke the protocol (malformed, oversized, or not allowed in the state).
    #[error("protocol violation ({origin}): {detail}")]
    Protocol {
        /// Who detected the violation.
        origin: Origin,
        /// What was wrong.
        detail: String,
    },
    /// The transport failed (connect, send or receive), as the transport reported it.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// A frame or payload could not be encoded or decoded.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    /// The session has terminated, for this reason.
    #[error("session terminated: {0}")]
    Terminated(TerminationReason),
    /// A configuration value is unusable (a key shorter than 16 bytes, an idle timeout not
    /// above the keepalive interval, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The application tried to send a frame the session layer owns or that breaks the
    /// frame rules.
    #[error("cannot send this frame: {0}")]
    InvalidFrame(String),
    /// The retransmit buffer is full (sans-IO core only: [`Session::send`](crate::Session::send)
    /// waits instead). Send again once
    /// [`Connection::is_writable`](crate::proto::Connection::is_writable).
    #[error("send buffer full: wait until the peer acknowledges frames")]
    SendBufferFull,
    /// The connection resumed a session that was still live on this server: the session
    /// carries on over it, and no new session comes out of this accept.
    #[error("the connection resumed the live session {0}")]
    ResumedLive(crate::SessionId),
}

impl From<HandshakeFailure> for SessionError {
    fn from(failure: HandshakeFailure) -> Self {
        match failure {
            HandshakeFailure::VersionMismatch { offered, supported } => {
                Self::VersionMismatch { offered, supported }
            }
            HandshakeFailure::AuthenticationFailed { origin, detail } => {
                Self::AuthenticationFailed { origin, detail }
            }
            HandshakeFailure::Rejected {
                origin,
                code,
                message,
            } => Self::Rejected {
                origin,
                code,
                message,
            },
            HandshakeFailure::Timeout => Self::HandshakeTimeout,
            HandshakeFailure::ModeRejected {
                origin,
                requested,
                offered,
            } => Self::ModeRejected {
                origin,
                requested,
                offered,
            },
        }
    }
}

impl From<TerminationReason> for SessionError {
    /// Handshake failures and protocol violations become their own variants; every other
    /// reason becomes [`Terminated`](Self::Terminated).
    fn from(reason: TerminationReason) -> Self {
        match reason {
            TerminationReason::HandshakeFailed(failure) => failure.into(),
            TerminationReason::ProtocolViolation { origin, detail } => {
                Self::Protocol { origin, detail }
            }
            other => Self::Terminated(other),
        }
    }
}
