//! The life of one exchange as one side sees it: [`ExchangeState`] (PROTOCOL.md §9.6).

use liaison_session::{Origin, TerminationReason};

use crate::{CancelCode, ExchangeError};

/// Where an exchange stands, as one side sees it (PROTOCOL.md §9.6).
///
/// "Local END" is this side sending `END` (on `ExchangeBegin` or `Data`) or `ExchangeEnd`;
/// "remote END" is receiving one of those.
///
/// ```text
///                       ExchangeBegin sent or received
///                                    │
///                                    ▼
///                            ┌──────────────┐
///             local END      │     Open     │      remote END
///          ┌─────────────────┤              ├─────────────────┐
///          ▼                 └──────────────┘                 ▼
///  ┌─────────────────┐                               ┌──────────────────┐
///  │ HalfClosedLocal │                               │ HalfClosedRemote │
///  └────────┬────────┘                               └────────┬─────────┘
///           │ remote END     ┌──────────────┐      local END  │
///           └───────────────▶│    Closed    │◀────────────────┘
///                            └──────────────┘
///
///  Open, HalfClosed* ── ExchangeCancel sent or received ──▶ Cancelled { by }
///  Open, HalfClosed* ── the session terminates ───────────▶ Aborted(reason)
/// ```
///
/// `Closed`, `Cancelled` and `Aborted` are final. An exchange is *open* (it counts against
/// the limit on open exchanges) until it reaches a final state; a cancel this side sent
/// counts as open until the frame was handed to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeState {
    /// Both sides may send.
    Open,
    /// This side ended; the peer may still send.
    HalfClosedLocal,
    /// The peer ended; this side may still send.
    HalfClosedRemote,
    /// Both sides ended.
    Closed,
    /// One side cancelled: both directions stopped.
    Cancelled {
        /// Who cancelled.
        by: Origin,
        /// The reason code.
        code: CancelCode,
        /// The reason text.
        reason: String,
    },
    /// The session ended while the exchange was open.
    Aborted(TerminationReason),
}

impl ExchangeState {
    /// Whether the state is final (`Closed`, `Cancelled` or `Aborted`).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Closed | Self::Cancelled { .. } | Self::Aborted(_)
        )
    }

    /// Whether this side may still send (`Open` or `HalfClosedRemote`).
    pub fn can_send(&self) -> bool {
        matches!(self, Self::Open | Self::HalfClosedRemote)
    }

    /// Whether the peer may still send (`Open` or `HalfClosedLocal`).
    pub fn peer_can_send(&self) -> bool {
        matches!(self, Self::Open | Self::HalfClosedLocal)
    }

    /// The state after this side ends its direction.
    pub(crate) fn after_local_end(&self) -> Option<Self> {
        match self {
            Self::Open => Some(Self::HalfClosedLocal),
            Self::HalfClosedRemote => Some(Self::Closed),
            _ => None,
        }
    }

    /// The state after the peer ends its direction.
    pub(crate) fn after_remote_end(&self) -> Option<Self> {
        match self {
            Self::Open => Some(Self::HalfClosedRemote),
            Self::HalfClosedLocal => Some(Self::Closed),
            _ => None,
        }
    }

    /// The error an operation that cannot proceed in this state fails with, for an exchange
    /// that targets `target`: `None` when the state does not fail operations.
    pub(crate) fn failure(&self, target: u64) -> Option<ExchangeError> {
        match self {
            Self::Cancelled {
                by: Origin::Remote,
                code: CancelCode::UnknownCapability,
                ..
            } => Some(ExchangeError::UnknownCapability { target }),
            Self::Cancelled { by, code, reason } => Some(ExchangeError::Cancelled {
                by: *by,
                code: *code,
                reason: reason.clone(),
            }),
            Self::Aborted(reason) => Some(ExchangeError::Aborted(reason.clone())),
            _ => None,
        }
    }
}
