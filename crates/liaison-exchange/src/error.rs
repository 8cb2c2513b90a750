//! The crate's one error type, [`ExchangeError`], and the reason codes an `ExchangeCancel`
//! carries ([`CancelCode`]).

use std::fmt;

use liaison_session::{Origin, SessionError, TerminationReason};
use liaison_wire::WireError;

/// Why an exchange was cancelled: the code of an `ExchangeCancel` frame (PROTOCOL.md §9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelCode {
    /// 0: the application abandoned the exchange (cancelled it, or dropped its last handle
    /// before the exchange was closed).
    Cancelled,
    /// 1: the exchange targets a capability the receiver does not serve.
    UnknownCapability,
    /// 2: the receiver already has as many open exchanges as it accepts.
    TooManyExchanges,
    /// 3: the receiver does not take the exchange for another reason (the message says why).
    Refused,
    /// A code this version does not know.
    Other(u16),
}

impl CancelCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Cancelled => 0,
            Self::UnknownCapability => 1,
            Self::TooManyExchanges => 2,
            Self::Refused => 3,
            Self::Other(code) => code,
        }
    }
}

impl From<u16> for CancelCode {
    fn from(code: u16) -> Self {
        match code {
            0 => Self::Cancelled,
            1 => Self::UnknownCapability,
            2 => Self::TooManyExchanges,
            3 => Self::Refused,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for CancelCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cancelled => f.write_str("cancelled"),
            Self::UnknownCapability => f.write_str("unknown capability"),
            Self::TooManyExchanges => f.write_str("too many exchanges"),
            Self::Refused => f.write_str("refused"),
            Self::Other(code) => write!(f, "code {code}"),
        }
    }
}

/// Everything that can go wrong with an exchange, a call or a capability.
///
/// The variants that end an eventual value because of its session are
/// [`Aborted`](Self::Aborted) (the value was pending when the session ended) and
/// [`Revoked`](Self::Revoked) (the capability was used after the session ended). Both carry
/// the session's [`TerminationReason`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The session ended while the operation was pending.
    #[error("aborted: {0}")]
    Aborted(TerminationReason),
    /// The capability (or endpoint) was used after its session ended.
    #[error("revoked: {0}")]
    Revoked(TerminationReason),
    /// The exchange was cancelled, by this side or by the peer.
    #[error("exchange cancelled ({by}, {code}): {reason}")]
    Cancelled {
        /// Who cancelled.
        by: Origin,
        /// The reason code sent on the wire.
        code: CancelCode,
        /// Human-readable explanation.
        reason: String,
    },
    /// The peer serves no capability with this id.
    #[error("the peer serves no capability {target}")]
    UnknownCapability {
        /// The capability the exchange targeted.
        target: u64,
    },
    /// The limit on open exchanges was reached and the configuration says to fail
    /// ([`LimitPolicy::Fail`](crate::LimitPolicy::Fail)).
    #[error("too many open exchanges (limit {limit})")]
    TooManyExchanges {
        /// The limit in force.
        limit: u32,
    },
    /// This side already ended its direction of the exchange: nothing more can be sent.
    #[error("this side already ended the exchange")]
    Ended,
    /// The peer ended the exchange without sending the reply a call waits for.
    #[error("the peer ended the exchange without a reply")]
    NoReply,
    /// A message exceeds the session's negotiated `max_frame_payload`.
    #[error("message of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// The message's size.
        size: usize,
        /// The limit in force.
        max: u32,
    },
    /// The peer's handler ended the exchange with an application error.
    #[error("remote error: {0}")]
    RemoteError(String),
    /// A frame broke the exchange rules of PROTOCOL.md §9. The session ends with
    /// [`TerminationReason::ProtocolViolation`] and this detail (PROTOCOL.md §5.3), the
    /// peer told with a `Bye` of code `ProtocolViolation`.
    #[error("exchange protocol violation: {0}")]
    Protocol(String),
    /// A typed message could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] WireError),
    /// The session refused a frame for another reason than its termination.
    #[error("session: {0}")]
    Session(SessionError),
    /// The session has no root capability (PROTOCOL.md §7.3), so there is no root to call
    /// or serve.
    #[error("the session has no root capability")]
    NoRootCapability,
    /// The session's incoming frames were already taken by another consumer, so an endpoint
    /// cannot be started on it.
    #[error("the session's incoming frames were already taken")]
    IncomingTaken,
}

impl ExchangeError {
    /// The session's termination reason, for [`Aborted`](Self::Aborted) and
    /// [`Revoked`](Self::Revoked).
    pub fn termination_reason(&self) -> Option<&TerminationReason> {
        match self {
            Self::Aborted(reason) | Self::Revoked(reason) => Some(reason),
            _ => None,
        }
    }

    /// Whether this is [`Aborted`](Self::Aborted).
    pub fn is_aborted(&self) -> bool {
        matches!(self, Self::Aborted(_))
    }

    /// Whether this is [`Revoked`](Self::Revoked).
    pub fn is_revoked(&self) -> bool {
        matches!(self, Self::Revoked(_))
    }

    /// Whether this is [`Cancelled`](Self::Cancelled).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled { .. })
    }

    /// Maps an error of [`Session::send`](liaison_session::Session::send): termination
    /// becomes [`Aborted`](Self::Aborted), anything else [`Session`](Self::Session).
    pub(crate) fn from_send(error: SessionError) -> Self {
        match error {
            SessionError::Terminated(reason) => Self::Aborted(reason),
            other => Self::Session(other),
        }
    }
}
