//! Why a session ended: [`TerminationReason`], who started it ([`Origin`]) and why a
//! handshake failed ([`HandshakeFailure`]).

use std::fmt;

use liaison_wire::RangeSet;

use crate::SequencingMode;

/// Which side of the session started something: a close, an abort, a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// This endpoint.
    Local,
    /// The peer, as told by a `Bye` or `Reject` frame.
    Remote,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::Remote => "remote",
        })
    }
}

/// Why a session ended. Every session that started ends with exactly one reason, seen by
/// [`Session::closed`](crate::Session::closed), by every pending
/// [`Eventual`](crate::Eventual) ([`Aborted`](crate::Aborted)) and by every
/// [`Revocable`](crate::Revocable) ([`Revoked`](crate::Revoked)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TerminationReason {
    /// A graceful close: a `Bye` was sent (local) or received (remote) with this reason.
    Closed {
        /// Who closed.
        origin: Origin,
        /// The reason given to `close`.
        reason: String,
    },
    /// An abrupt end: `abort()` was called here (local) or on the peer (remote).
    Aborted {
        /// Who aborted.
        origin: Origin,
    },
    /// The transport failed with this error.
    TransportFailed(String),
    /// The transport ended cleanly without a `Bye`.
    TransportClosed,
    /// A frame broke the protocol: malformed, too large, or of a kind not allowed in the
    /// session's state. Local: this endpoint detected it; remote: the peer did.
    ProtocolViolation {
        /// Who detected the violation.
        origin: Origin,
        /// What was wrong.
        detail: String,
    },
    /// The peer was silent for longer than the idle timeout.
    IdleTimeout,
    /// The [`Scope`](crate::Scope) the session belongs to was cancelled or dropped.
    ScopeCancelled,
    /// Establishment failed before the session was established.
    HandshakeFailed(HandshakeFailure),
    /// The peer bowed out of sequencing (`Bye` with `Ignore-Seq: *`, docs/SESSION.md §7.5):
    /// it no longer holds frames this side asked for. `ranges` are the sequence numbers of
    /// the peer's frames that this side lacked and will never receive (empty when nothing
    /// was missing any more). Frames after the gap are not delivered: the loss is never
    /// silent. A new session numbers from 0 again.
    SequenceAbandoned {
        /// The peer's sequence numbers that will never be delivered.
        ranges: RangeSet,
    },
    /// This side bowed out of sequencing (`Ignore-Seq: *`, docs/SESSION.md §7.5): the peer
    /// asked for frames the retransmit buffer no longer held (only with
    /// [`Overflow::DropOldest`](crate::Overflow::DropOldest)). `ranges` are this side's
    /// unacknowledged sequence numbers it gave up; the peer reports the ones it lacked as
    /// [`SequenceAbandoned`](Self::SequenceAbandoned).
    BowedOut {
        /// This side's sequence numbers given up.
        ranges: RangeSet,
    },
    /// A resume was refused (docs/PROTOCOL.md §10): the server answered `NEW` (the session
    /// expired after its idle timeout, is unknown, or the proof did not match), or could
    /// not rebuild the session from the client's state.
    ResumeRefused {
        /// The code the server gave (`SessionUnknown`, `ResumeDenied`, `StateRejected`).
        code: crate::ReasonCode,
        /// The server's explanation.
        message: String,
    },
    /// A detached client gave up reconnecting: its attempts or its time ran out.
    ReconnectFailed {
        /// Reconnection attempts made.
        attempts: u32,
        /// What went wrong last.
        detail: String,
    },
    /// The server restarted and rebuilt the session from the client's state: what was
    /// pending on the session before cannot complete. Pending values resolve
    /// [`Aborted`](crate::Aborted) with this reason; the session itself goes on.
    PeerRestarted,
}

impl TerminationReason {
    /// Who started the termination, where that is known: `None` for transport failures,
    /// idle timeouts and scope cancellation, which have no single origin on the wire.
    pub fn origin(&self) -> Option<Origin> {
        match self {
            Self::Closed { origin, .. }
            | Self::Aborted { origin }
            | Self::ProtocolViolation { origin, .. } => Some(*origin),
            Self::HandshakeFailed(failure) => failure.origin(),
            Self::SequenceAbandoned { .. } | Self::ResumeRefused { .. } | Self::PeerRestarted => {
                Some(Origin::Remote)
            }
            Self::BowedOut { .. } | Self::ReconnectFailed { .. } => Some(Origin::Local),
            Self::TransportFailed(_)
            | Self::TransportClosed
            | Self::IdleTimeout
            | Self::ScopeCancelled => None,
        }
    }

    /// Whether the session ended by a graceful close from either side.
    pub fn is_graceful(&self) -> bool {
        matches!(self, Self::Closed { .. })
    }
}

impl fmt::Display for TerminationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed { origin, reason } => write!(f, "closed ({origin}): {reason}"),
            Self::Aborted { origin } => write!(f, "aborted ({origin})"),
            Self::TransportFailed(error) => write!(f, "transport failed: {error}"),
            Self::TransportClosed => f.write_str("transport closed without a bye"),
            Self::ProtocolViolation { origin, detail } => {
                write!(f, "protocol violation ({origin}): {detail}")
            }
            Self::IdleTimeout => f.write_str("peer silent past the idle timeout"),
            Self::ScopeCancelled => f.write_str("scope cancelled"),
            Self::HandshakeFailed(failure) => write!(f, "handshake failed: {failure}"),
            Self::SequenceAbandoned { ranges } if ranges.is_empty() => {
                f.write_str("the peer bowed out of sequencing (nothing was missing)")
            }
            Self::SequenceAbandoned { ranges } => write!(
                f,
                "the peer bowed out of sequencing: frames {ranges} will never be delivered"
            ),
            Self::BowedOut { ranges } => write!(
                f,
                "bowed out of sequencing: the peer asked for frames no longer held (gave up {ranges})"
            ),
            Self::ResumeRefused { code, message } => {
                write!(f, "resume refused ({code}): {message}")
            }
            Self::ReconnectFailed { attempts, detail } => {
                write!(f, "gave up reconnecting after {attempts} attempts: {detail}")
            }
            Self::PeerRestarted => {
                f.write_str("the peer restarted and rebuilt the session from its state")
            }
        }
    }
}

/// Why establishment failed (docs/SESSION.md §2 to §5).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// No protocol version in common (§2).
    VersionMismatch {
        /// Versions the client offered.
        offered: Vec<u16>,
        /// Versions the server supports.
        supported: Vec<u16>,
    },
    /// Authentication failed (§3). A remote failure carries no detail beyond
    /// "authentication failed": the peer never learns why.
    AuthenticationFailed {
        /// Who found the failure.
        origin: Origin,
        /// What failed; for a remote failure only the generic message.
        detail: String,
    },
    /// The handshake was refused for another reason (§5), for example a configuration the
    /// server does not accept.
    Rejected {
        /// Who refused.
        origin: Origin,
        /// The reason code sent on the wire.
        code: crate::ReasonCode,
        /// Human-readable explanation.
        message: String,
    },
    /// The handshake did not complete before its deadline.
    Timeout,
    /// The server set another sequencing mode than the client requested (docs/SESSION.md
    /// §4.1): the client refused it with a NACK restating its request, and gave up as its
    /// [`ClientModePolicy`](crate::ClientModePolicy) says. Local on the client, remote on
    /// the server.
    ModeRejected {
        /// Who refused: the client (local there, remote on the server).
        origin: Origin,
        /// The mode the client requested (`Request-Session-Mode`).
        requested: SequencingMode,
        /// The mode the server set (`Set-Session-Mode`).
        offered: SequencingMode,
    },
}

impl HandshakeFailure {
    /// Who caused the failure, where that is known.
    pub fn origin(&self) -> Option<Origin> {
        match self {
            Self::AuthenticationFailed { origin, .. }
            | Self::Rejected { origin, .. }
            | Self::ModeRejected { origin, .. } => Some(*origin),
            Self::VersionMismatch { .. } | Self::Timeout => None,
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VersionMismatch { offered, supported } => write!(
                f,
                "no common protocol version: offered {offered:?}, supported {supported:?}"
            ),
            Self::AuthenticationFailed { origin, detail } => {
                write!(f, "authentication failed ({origin}): {detail}")
            }
            Self::Rejected {
                origin,
                code,
                message,
            } => write!(f, "rejected ({origin}, {code}): {message}"),
            Self::Timeout => f.write_str("handshake deadline passed"),
            Self::ModeRejected {
                origin,
                requested,
                offered,
            } => write!(
                f,
                "session mode refused ({origin}): {requested} requested, the server set {offered}"
            ),
        }
    }
}
