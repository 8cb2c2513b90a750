//! The CLI's error type: what can end a command, as one line for the terminal.

use liaison_exchange::ExchangeError;
use liaison_resume::ResumeError;
use liaison_session::{SessionError, TerminationReason};
use liaison_state::StateError;
use liaison_transport::TransportError;
use liaison_wire::WireError;

/// Why a `liaison` command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CliError {
    /// A transport could not be bound, connected or used.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// A session could not be established or used.
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// An exchange failed.
    #[error("exchange: {0}")]
    Exchange(#[from] ExchangeError),
    /// A frame could not be decoded.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    /// A store could not be opened or used.
    #[error("store: {0}")]
    Store(#[from] ResumeError),
    /// The session-state service refused or failed a request.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// The command line asks for something that cannot work.
    #[error("{0}")]
    Usage(String),
    /// A file or the terminal could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server answered something the command did not expect.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// The demo observed something other than what it promises.
    #[error("demo check failed: {0}")]
    Check(String),
}

impl CliError {
    /// Whether an exchange was aborted because the server restarted and rebuilt the
    /// session: the session goes on, and the operation can run again.
    pub(crate) fn is_peer_restart(&self) -> bool {
        let (Self::Exchange(exchange) | Self::State(StateError::Exchange(exchange))) = self else {
            return false;
        };
        matches!(
            exchange,
            ExchangeError::Aborted(TerminationReason::PeerRestarted)
        )
    }

    /// An I/O error while doing `what`.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
