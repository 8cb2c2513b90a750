//! Session mode negotiation (`Request-Session-Mode` / `Set-Session-Mode`, NACK on
//! disagreement) as plain state types the session layer's configuration step calls
//! (docs/SESSION.md §4.1: the mode is a request in the client's `Config`, answered in the
//! server's).
//!
//! ```text
//!  client                                              server
//!  ModeRequest::new(requested, policy)
//!        --- Request-Session-Mode: requested --->   ServerModePolicy::answer(requested)
//!        <-- Set-Session-Mode: offered ----------
//!  ModeRequest::on_answer(offered)
//!    offered == requested  -> Agreed(mode)
//!    offered != requested  -> NACK restating Request-Session-Mode: requested, then
//!                             Reregister { retry }   while the policy allows another attempt
//!                             Rejected { ModeRejected } otherwise
//! ```

use std::fmt;

use crate::SeqError;

/// How a session delivers messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Each message exactly once, in sequence order; gaps are filled by retransmission.
    Ordered,
    /// Each message exactly once, as soon as it arrives.
    Unordered,
}

impl Mode {
    /// The mode's name on the wire: `ordered` or `unordered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ordered => "ordered",
            Self::Unordered => "unordered",
        }
    }

    /// The mode named `name` (`ordered` or `unordered`), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ordered" => Some(Self::Ordered),
            "unordered" => Some(Self::Unordered),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which modes a server grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ServerModePolicy {
    /// Grant whichever mode the client requests.
    #[default]
    Any,
    /// Support this mode only: it is the answer to every request.
    Only(Mode),
}

impl ServerModePolicy {
    /// The mode the server sets (`Set-Session-Mode`) in answer to `requested`.
    pub fn answer(self, requested: Mode) -> Mode {
        match self {
            Self::Any => requested,
            Self::Only(mode) => mode,
        }
    }
}

/// What a client does when the server sets another mode than it requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientModePolicy {
    /// NACK, then fail with [`SeqError::ModeRejected`].
    #[default]
    Fail,
    /// NACK, then register again, up to `attempts` more times before failing.
    Reregister {
        /// How many more registrations to try after the first refusal.
        attempts: u32,
    },
}

/// A client's mode request in flight: sent as `Request-Session-Mode`, awaiting the server's
/// `Set-Session-Mode`. Consumed by [`on_answer`](Self::on_answer).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a mode request resolves only through on_answer"]
pub struct ModeRequest {
    requested: Mode,
    policy: ClientModePolicy,
    retries_left: u32,
}

impl ModeRequest {
    /// Starts a request for `requested`, resolving disagreement with `policy`.
    pub fn new(requested: Mode, policy: ClientModePolicy) -> Self {
        let retries_left = match policy {
            ClientModePolicy::Fail => 0,
            ClientModePolicy::Reregister { attempts } => attempts,
        };
        Self {
            requested,
            policy,
            retries_left,
        }
    }

    /// The mode to put in `Request-Session-Mode`.
    pub fn requested(&self) -> Mode {
        self.requested
    }

    /// How many more registrations the policy allows after this one.
    pub fn retries_left(&self) -> u32 {
        self.retries_left
    }

    /// Resolves the request with the server's answer.
    pub fn on_answer(self, offered: Mode) -> ModeOutcome {
        if offered == self.requested {
            tracing::debug!(mode = %offered, "session mode agreed");
            return ModeOutcome::Agreed(offered);
        }
        let nack = ModeNack {
            requested: self.requested,
        };
        match self.retries_left.checked_sub(1) {
            Some(retries_left) => {
                tracing::debug!(requested = %self.requested, %offered, retries_left, "session mode refused; registering again");
                ModeOutcome::Reregister {
                    nack,
                    retry: Self {
                        retries_left,
                        ..self
                    },
                }
            }
            None => {
                tracing::debug!(requested = %self.requested, %offered, policy = ?self.policy, "session mode refused");
                ModeOutcome::Rejected {
                    nack,
                    error: SeqError::ModeRejected {
                        requested: self.requested,
                        offered,
                    },
                }
            }
        }
    }
}

/// The NACK a client sends when the server set another mode: it restates the request
/// (`Request-Session-Mode`) for reference. On the wire it is the `Bye` that refuses the
/// server's `Config` (docs/SESSION.md §4.1); re-registering opens a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeNack {
    requested: Mode,
}

impl ModeNack {
    /// The mode the NACK restates.
    pub fn requested(self) -> Mode {
        self.requested
    }
}

/// How a mode request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModeOutcome {
    /// Both sides use this mode.
    Agreed(Mode),
    /// Send `nack`, then register again with `retry` (its `requested` is unchanged).
    Reregister {
        /// The NACK to send first.
        nack: ModeNack,
        /// The next registration's request.
        retry: ModeRequest,
    },
    /// Send `nack`, then fail with `error` ([`SeqError::ModeRejected`]).
    Rejected {
        /// The NACK to send first.
        nack: ModeNack,
        /// The failure to report.
        error: SeqError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in [Mode::Ordered, Mode::Unordered] {
            assert_eq!(Mode::from_name(mode.as_str()), Some(mode));
            assert_eq!(mode.to_string(), mode.as_str());
        }
        assert_eq!(Mode::from_name("Ordered"), None);
    }

    #[test]
    fn server_answers_what_it_supports() {
        assert_eq!(ServerModePolicy::Any.answer(Mode::Ordered), Mode::Ordered);
        assert_eq!(
            ServerModePolicy::Any.answer(Mode::Unordered),
            Mode::Unordered
        );
        let only = ServerModePolicy::Only(Mode::Unordered);
        assert_eq!(only.answer(Mode::Ordered), Mode::Unordered);
        assert_eq!(only.answer(Mode::Unordered), Mode::Unordered);
    }

    #[test]
    fn agreement_needs_no_nack() {
        let request = ModeRequest::new(Mode::Ordered, ClientModePolicy::Fail);
        let answer = ServerModePolicy::Any.answer(request.requested());
        assert_eq!(
            request.on_answer(answer),
            ModeOutcome::Agreed(Mode::Ordered)
        );
    }

    #[test]
    fn disagreement_with_fail_policy_nacks_and_rejects() {
        let request = ModeRequest::new(Mode::Ordered, ClientModePolicy::Fail);
        let answer = ServerModePolicy::Only(Mode::Unordered).answer(request.requested());
        match request.on_answer(answer) {
            ModeOutcome::Rejected { nack, error } => {
                assert_eq!(nack.requested(), Mode::Ordered);
                assert_eq!(
                    error,
                    SeqError::ModeRejected {
                        requested: Mode::Ordered,
                        offered: Mode::Unordered
                    }
                );
                assert!(!error.is_peer_violation());
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn reregister_policy_retries_then_fails() {
        let server = ServerModePolicy::Only(Mode::Ordered);
        let mut request = ModeRequest::new(
            Mode::Unordered,
            ClientModePolicy::Reregister { attempts: 2 },
        );
        let mut registrations = 1;
        let error = loop {
            match request.on_answer(server.answer(Mode::Unordered)) {
                ModeOutcome::Reregister { nack, retry } => {
                    assert_eq!(nack.requested(), Mode::Unordered);
                    assert_eq!(retry.requested(), Mode::Unordered);
                    request = retry;
                    registrations += 1;
                }
                ModeOutcome::Rejected { nack, error } => {
                    assert_eq!(nack.requested(), Mode::Unordered);
                    break error;
                }
                ModeOutcome::Agreed(mode) => panic!("agreed on {mode} against the server policy"),
            }
        };
        assert_eq!(registrations, 3, "the first registration and two more");
        assert!(matches!(error, SeqError::ModeRejected { .. }));
    }

    #[test]
    fn a_retry_can_be_agreed() {
        let request = ModeRequest::new(Mode::Ordered, ClientModePolicy::Reregister { attempts: 1 });
        let ModeOutcome::Reregister { retry, .. } = request.on_answer(Mode::Unordered) else {
            panic!("expected a re-registration");
        };
        assert_eq!(retry.retries_left(), 0);
        // The server's support changed in between (for example another node answered).
        assert_eq!(
            retry.on_answer(Mode::Ordered),
            ModeOutcome::Agreed(Mode::Ordered)
        );
    }
}
