//! The crate's one error type, [`TransportError`], and the mapping of I/O and QUIC errors onto it.

use std::io;
use std::time::Duration;

/// Everything that can go wrong while binding, connecting, sending or receiving.
///
/// The variants tell an upper layer what to do next:
///
/// - [`ConnectionLost`](Self::ConnectionLost) and [`ConnectionReset`](Self::ConnectionReset)
///   mean the connection ended *abruptly* (the peer vanished, was dropped without closing, or the
///   network failed); [`is_abrupt`](Self::is_abrupt) groups them. A clean end is not an error: it
///   is `Ok(None)` from [`FrameReceiver::recv`](crate::FrameReceiver::recv).
/// - [`ConnectionRefused`](Self::ConnectionRefused) and [`TimedOut`](Self::TimedOut) come from
///   [`connect`](crate::connect) when nothing answers.
/// - [`FrameTooLarge`](Self::FrameTooLarge) is a frame over the configured limit, refused by the
///   sender before anything is written, or detected by the receiver from the length prefix before
///   anything is allocated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The address could not be parsed or resolved.
    #[error("invalid address `{addr}`: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The address names a scheme this crate does not implement (or not on this platform).
    #[error("unsupported address scheme `{scheme}` (expected mem, tcp, unix, quic or quic+dgram)")]
    UnsupportedScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// Nothing listens at the address, or the peer refused the connection.
    #[error("connection to {addr} refused: {reason}")]
    ConnectionRefused {
        /// The address that was dialled.
        addr: String,
        /// What the system or the peer said.
        reason: String,
    },
    /// Connecting (or a QUIC handshake) did not complete within the configured timeout.
    #[error("connecting to {addr} timed out after {after:?}")]
    TimedOut {
        /// The address that was dialled.
        addr: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection ended without a clean close: the peer dropped its end without closing, the
    /// process died, the QUIC connection was lost, or the connection was cut.
    #[error("connection lost: {reason}")]
    ConnectionLost {
        /// What was observed.
        reason: String,
    },
    /// The peer or the network reset the connection (TCP RST, broken pipe, QUIC stream reset).
    #[error("connection reset: {reason}")]
    ConnectionReset {
        /// What was observed.
        reason: String,
    },
    /// The local side was used after it was closed.
    #[error("transport is closed")]
    Closed,
    /// A frame is larger than the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Size of the offending frame in bytes (as announced by its length prefix on receive).
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// Something else is already bound to the address.
    #[error("address {addr} is already in use")]
    AddressInUse {
        /// The address that was asked for.
        addr: String,
    },
    /// The configuration cannot be used (for example QUIC without a server certificate).
    #[error("invalid transport configuration: {reason}")]
    InvalidConfig {
        /// What is missing or wrong.
        reason: String,
    },
    /// A certificate or key could not be loaded or generated.
    #[error("certificate: {reason}")]
    Certificate {
        /// What went wrong.
        reason: String,
    },
    /// The TLS configuration was rejected by rustls.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A QUIC connection failed for a reason that is not a plain loss (handshake or protocol
    /// failure, for example a certificate the peer refused).
    #[error("QUIC: {0}")]
    Quic(#[from] quinn::ConnectionError),
    /// Any other I/O error.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

impl TransportError {
    /// True for the errors that mean the connection ended abruptly
    /// ([`ConnectionLost`](Self::ConnectionLost), [`ConnectionReset`](Self::ConnectionReset)).
    pub fn is_abrupt(&self) -> bool {
        matches!(
            self,
            Self::ConnectionLost { .. } | Self::ConnectionReset { .. }
        )
    }

    pub(crate) fn lost(reason: impl Into<String>) -> Self {
        Self::ConnectionLost {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_address(addr: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidAddress {
            addr: addr.into(),
            reason: reason.into(),
        }
    }

    /// Classifies an I/O error seen on an established connection.
    pub(crate) fn from_stream_io(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::ConnectionReset {
                reason: describe(&err),
            },
            io::ErrorKind::UnexpectedEof | io::ErrorKind::NotConnected => Self::ConnectionLost {
                reason: describe(&err),
            },
            _ => Self::Io(err),
        }
    }

    /// Classifies an I/O error seen while connecting to `addr`.
    pub(crate) fn from_connect_io(addr: &str, err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => Self::ConnectionRefused {
                addr: addr.to_owned(),
                reason: err.to_string(),
            },
            _ => Self::from_stream_io(err),
        }
    }

    /// Classifies an I/O error seen while binding `addr`.
    pub(crate) fn from_bind_io(addr: &str, err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::AddrInUse => Self::AddressInUse {
                addr: addr.to_owned(),
            },
            _ => Self::Io(err),
        }
    }
}

/// An error and its sources, `outer: inner: innermost`.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified() {
        let reset = TransportError::from_stream_io(io::ErrorKind::ConnectionReset.into());
        assert!(matches!(reset, TransportError::ConnectionReset { .. }));
        assert!(reset.is_abrupt());
        let eof = TransportError::from_stream_io(io::ErrorKind::UnexpectedEof.into());
        assert!(matches!(eof, TransportError::ConnectionLost { .. }));
        let other = TransportError::from_stream_io(io::ErrorKind::PermissionDenied.into());
        assert!(matches!(other, TransportError::Io(_)));
        assert!(!other.is_abrupt());
        let refused =
            TransportError::from_connect_io("tcp://x:1", io::ErrorKind::ConnectionRefused.into());
        assert!(matches!(refused, TransportError::ConnectionRefused { .. }));
        let in_use = TransportError::from_bind_io("tcp://x:1", io::ErrorKind::AddrInUse.into());
        assert!(matches!(in_use, TransportError::AddressInUse { .. }));
    }
}
