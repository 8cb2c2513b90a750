//! Stream mode: frames on one bidirectional QUIC stream, opened by the client.

use async_trait::async_trait;
use bytes::Bytes;
use quinn::{Connection, RecvStream, SendStream, VarInt};
use rustls::pki_types::CertificateDer;

use super::{connection_lost, CLOSE_PROTOCOL_ERROR, STREAM_PREAMBLE};
use crate::error::TransportError;
use crate::framed::{FramedReceiver, FramedSender};
use crate::transport::{FrameReceiver, FrameSender, Properties, Transport, TransportInfo};

/// A stream-mode QUIC connection.
pub(crate) struct QuicStreamTransport {
    info: TransportInfo,
    sender: QuicStreamSender,
    receiver: FramedReceiver<RecvStream>,
}

impl QuicStreamTransport {
    /// Client side: opens the stream and writes the preamble.
    pub(crate) async fn open(
        conn: Connection,
        local: String,
        peer: String,
        certs: Option<Vec<CertificateDer<'static>>>,
        max_frame: usize,
    ) -> Result<Self, TransportError> {
        let (mut send, recv) = conn.open_bi().await.map_err(|e| connection_lost(&e))?;
        send.write_all(STREAM_PREAMBLE)
            .await
            .map_err(|e| TransportError::from_stream_io(e.into()))?;
        Ok(Self::new(conn, send, recv, local, peer, certs, max_frame))
    }

    /// Server side: accepts the client's stream and checks the preamble.
    pub(crate) async fn accept(
        conn: Connection,
        local: String,
        peer: String,
        certs: Option<Vec<CertificateDer<'static>>>,
        max_frame: usize,
    ) -> Result<Self, TransportError> {
        let (send, mut recv) = conn.accept_bi().await.map_err(|e| connection_lost(&e))?;
        let mut preamble = [0u8; STREAM_PREAMBLE.len()];
        recv.read_exact(&mut preamble)
            .await
            .map_err(|err| match err {
                quinn::ReadExactError::FinishedEarly(_) => {
                    TransportError::lost("the stream ended before the preamble")
                }
                quinn::ReadExactError::ReadError(err) => TransportError::from_stream_io(err.into()),
            })?;
        if &preamble != STREAM_PREAMBLE {
            conn.close(
                VarInt::from_u32(CLOSE_PROTOCOL_ERROR),
                b"bad stream preamble",
            );
            return Err(TransportError::lost(
                "the client sent a bad stream preamble",
            ));
        }
        Ok(Self::new(conn, send, recv, local, peer, certs, max_frame))
    }

    fn new(
        conn: Connection,
        send: SendStream,
        recv: RecvStream,
        local: String,
        peer: String,
        certs: Option<Vec<CertificateDer<'static>>>,
        max_frame: usize,
    ) -> Self {
        let max_frame = max_frame.min(crate::MAX_STREAM_FRAME);
        let label = format!("{local} -> {peer}");
        Self {
            info: TransportInfo {
                properties: Properties {
                    reliable: true,
                    ordered: true,
                    max_frame,
                },
                local,
                peer,
                tls_peer_certificates: certs,
            },
            sender: QuicStreamSender {
                framed: FramedSender::new(send, max_frame, label),
                conn,
            },
            receiver: FramedReceiver::new(recv, max_frame),
        }
    }
}

impl Transport for QuicStreamTransport {
    fn info(&self) -> &TransportInfo {
        &self.info
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        (Box::new(self.sender), Box::new(self.receiver))
    }
}

/// The sending half: the framed stream, plus the connection to report why it ended.
struct QuicStreamSender {
    framed: FramedSender<SendStream>,
    conn: Connection,
}

impl QuicStreamSender {
    /// Prefers the connection's own error (why it ended) over the stream's generic one.
    fn explain(&self, err: TransportError) -> TransportError {
        match self.conn.close_reason() {
            Some(reason) if err.is_abrupt() => connection_lost(&reason),
            _ => err,
        }
    }
}

#[async_trait]
impl FrameSender for QuicStreamSender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        match self.framed.feed(frame).await {
            Ok(()) => Ok(()),
            Err(err) => Err(self.explain(err)),
        }
    }

    async fn feed_parts(&mut self, head: &[u8], body: Bytes) -> Result<(), TransportError> {
        match self.framed.feed_parts(head, body).await {
            Ok(()) => Ok(()),
            Err(err) => Err(self.explain(err)),
        }
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        match self.framed.flush().await {
            Ok(()) => Ok(()),
            Err(err) => Err(self.explain(err)),
        }
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        if let Err(err) = self.framed.close().await {
            return Err(self.explain(err));
        }
        // Wait until the peer acknowledged every byte, so that dropping the connection right
        // after `close` cannot cut off the end of the stream.
        match self.framed.get_ref().stopped().await {
            Ok(None) => Ok(()),
            Ok(Some(code)) => Err(TransportError::ConnectionReset {
                reason: format!("the peer stopped reading (code {code})"),
            }),
            Err(quinn::StoppedError::ConnectionLost(err)) => Err(connection_lost(&err)),
            Err(err) => Err(TransportError::lost(err.to_string())),
        }
    }
}
