//! The CLI's error type: what can end a command, as one line for the terminal.

use liaison_exchange::ExchangeError;
use liaison_session::SessionError;
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
    /// The demo observed something other than what it promises.
    #[error("demo check failed: {0}")]
    Check(String),
}
