//! The crate's one error type, [`StateError`], and its mapping from the wire's
//! [`Failure`].

use std::time::Duration;

use liaison_exchange::ExchangeError;
use liaison_wire::WireError;

use crate::protocol::Failure;

/// Everything that can go wrong with the session-state service.
///
/// The variants up to [`Store`](Self::Store) are the server's answers (a [`Failure`] on
/// the wire); nothing was written when one comes back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The key has no state.
    #[error("no state under {key:?}")]
    NotFound {
        /// The key.
        key: String,
    },
    /// Another holder kept the key's lock for the whole wait.
    #[error("{key:?} is locked (waited {waited:?})")]
    Locked {
        /// The key.
        key: String,
        /// How long the server waited.
        waited: Duration,
    },
    /// The hold ended (its exchange or session ended, its lease expired, or the ticket was
    /// used already) before the commit.
    #[error("the lock on {key:?} was lost before the commit")]
    LockLost {
        /// The key.
        key: String,
    },
    /// The key was written by someone else since it was read.
    #[error("version conflict on {key:?}: read {expected:?}, found {current:?}")]
    Conflict {
        /// The key.
        key: String,
        /// The version read (`None`: absent).
        expected: Option<u64>,
        /// The version found (`None`: absent).
        current: Option<u64>,
    },
    /// The key is not acceptable (empty, or holds a control character).
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why.
        reason: String,
    },
    /// The key is longer than the server accepts.
    #[error("key of {len} bytes exceeds the limit of {max}")]
    KeyTooLong {
        /// Its length in bytes.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The state is larger than the server (or the session's message size) accepts.
    #[error("state of {size} bytes exceeds the limit of {max}")]
    StateTooLarge {
        /// Its size in bytes.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A message could not be decoded or came at the wrong point of the exchange: the
    /// server's verdict on the client's message.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The server's store failed.
    #[error("state store: {0}")]
    Store(String),
    /// The server answered something the protocol does not allow at that point.
    #[error("unexpected answer from the state service: {0}")]
    Protocol(String),
    /// The exchange failed: the session ended ([`ExchangeError::Aborted`]), the capability
    /// was revoked, the server is not a state service, ...
    #[error(transparent)]
    Exchange(ExchangeError),
    /// A [`StateConfig`](crate::StateConfig) is not usable.
    #[error("invalid state service configuration: {0}")]
    InvalidConfig(String),
}

impl StateError {
    /// Whether this is [`Locked`](Self::Locked).
    pub fn is_locked(&self) -> bool {
        matches!(self, Self::Locked { .. })
    }

    /// Whether this is [`LockLost`](Self::LockLost).
    pub fn is_lock_lost(&self) -> bool {
        matches!(self, Self::LockLost { .. })
    }

    /// Whether this is [`NotFound`](Self::NotFound).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

impl From<Failure> for StateError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::NotFound { key } => Self::NotFound { key },
            Failure::Locked { key, waited_ms } => Self::Locked {
                key,
                waited: Duration::from_millis(waited_ms),
            },
            Failure::LockLost { key } => Self::LockLost { key },
            Failure::Conflict {
                key,
                expected,
                current,
            } => Self::Conflict {
                key,
                expected,
                current,
            },
            Failure::InvalidKey { reason } => Self::InvalidKey { reason },
            Failure::KeyTooLong { len, max } => Self::KeyTooLong { len, max },
            Failure::StateTooLarge { size, max } => Self::StateTooLarge { size, max },
            Failure::Malformed { detail } => Self::Malformed(detail),
            Failure::Store { message } => Self::Store(message),
        }
    }
}

impl From<ExchangeError> for StateError {
    /// A message too large for the session becomes [`StateTooLarge`](Self::StateTooLarge);
    /// everything else is [`Exchange`](Self::Exchange).
    fn from(error: ExchangeError) -> Self {
        match error {
            ExchangeError::MessageTooLarge { size, max } => Self::StateTooLarge {
                size: u64::try_from(size).unwrap_or(u64::MAX),
                max: u64::from(max),
            },
            ExchangeError::Codec(error) => error.into(),
            other => Self::Exchange(other),
        }
    }
}

impl From<WireError> for StateError {
    /// A message this side could not encode or decode; a state too large for one message
    /// becomes [`StateTooLarge`](Self::StateTooLarge).
    fn from(error: WireError) -> Self {
        match error {
            WireError::TooLarge { size, max, .. } => Self::StateTooLarge { size, max },
            other => Self::Exchange(ExchangeError::Codec(other)),
        }
    }
}
