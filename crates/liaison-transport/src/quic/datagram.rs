//! Datagram mode: one frame per QUIC datagram, unreliable and unordered.

use async_trait::async_trait;
use bytes::Bytes;
use quinn::{Connection, ConnectionError, SendDatagramError, VarInt};
use rustls::pki_types::CertificateDer;

use super::{connection_lost, CLOSE_GRACEFUL};
use crate::error::TransportError;
use crate::transport::{FrameReceiver, FrameSender, Properties, Transport, TransportInfo};

/// A datagram-mode QUIC connection.
pub(crate) struct QuicDatagramTransport {
    info: TransportInfo,
    conn: Connection,
}

fn no_datagrams() -> TransportError {
    TransportError::InvalidConfig {
        reason: "the QUIC peer does not accept datagrams".into(),
    }
}

impl QuicDatagramTransport {
    pub(crate) fn new(
        conn: Connection,
        local: String,
        peer: String,
        certs: Option<Vec<CertificateDer<'static>>>,
    ) -> Result<Self, TransportError> {
        let max_frame = conn.max_datagram_size().ok_or_else(no_datagrams)?;
        Ok(Self {
            info: TransportInfo {
                properties: Properties {
                    reliable: false,
                    ordered: false,
                    max_frame,
                },
                local,
                peer,
                tls_peer_certificates: certs,
            },
            conn,
        })
    }
}

impl Transport for QuicDatagramTransport {
    fn info(&self) -> &TransportInfo {
        &self.info
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        (
            Box::new(DatagramSender {
                conn: self.conn.clone(),
                closed: false,
            }),
            Box::new(DatagramReceiver {
                conn: self.conn,
                ended: false,
            }),
        )
    }
}

/// Sends each frame as one datagram; waits while quinn's datagram send buffer is full.
struct DatagramSender {
    conn: Connection,
    closed: bool,
}

#[async_trait]
impl FrameSender for DatagramSender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        let too_large = |conn: &Connection, size| TransportError::FrameTooLarge {
            size,
            max: conn.max_datagram_size().unwrap_or(0),
        };
        let size = frame.len();
        match self.conn.max_datagram_size() {
            Some(max) if size > max => return Err(too_large(&self.conn, size)),
            Some(_) => {}
            None => {
                return Err(match self.conn.close_reason() {
                    Some(err) => connection_lost(&err),
                    None => no_datagrams(),
                })
            }
        }
        self.conn
            .send_datagram_wait(frame)
            .await
            .map_err(|err| match err {
                SendDatagramError::TooLarge => too_large(&self.conn, size),
                SendDatagramError::ConnectionLost(err) => connection_lost(&err),
                SendDatagramError::UnsupportedByPeer | SendDatagramError::Disabled => {
                    no_datagrams()
                }
            })
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        // quinn transmits queued datagrams as soon as congestion control allows.
        if self.closed {
            return Err(TransportError::Closed);
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        if !self.closed {
            self.closed = true;
            tracing::debug!(peer = %self.conn.remote_address(), "closing a quic datagram connection");
            self.conn.close(VarInt::from_u32(CLOSE_GRACEFUL), b"closed");
        }
        Ok(())
    }
}

/// Receives datagrams until the connection ends.
struct DatagramReceiver {
    conn: Connection,
    ended: bool,
}

#[async_trait]
impl FrameReceiver for DatagramReceiver {
    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        if self.ended {
            return Ok(None);
        }
        // `read_datagram` takes a datagram out of quinn's buffer only when it completes, so this
        // method is cancel-safe. Datagrams buffered before the connection ended are still
        // returned.
        match self.conn.read_datagram().await {
            Ok(frame) => Ok(Some(frame)),
            Err(ConnectionError::ApplicationClosed(close))
                if close.error_code == VarInt::from_u32(CLOSE_GRACEFUL) =>
            {
                self.ended = true;
                Ok(None)
            }
            Err(ConnectionError::LocallyClosed) => {
                // Only a graceful `close` of this end closes the connection locally.
                self.ended = true;
                Ok(None)
            }
            Err(err) => Err(connection_lost(&err)),
        }
    }
}
