//! Frames over any byte stream: the sender, receiver and transport shared by TCP, Unix sockets and QUIC streams.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::codec::{FrameCodec, StreamItem};
use crate::error::TransportError;
use crate::transport::{FrameReceiver, FrameSender, Transport, TransportInfo};

/// Bytes buffered by the writer before `feed` writes to the stream on its own.
const WRITE_BATCH: usize = 64 * 1024;

/// Initial size of the read buffer.
const READ_BUFFER: usize = 64 * 1024;

fn classify(err: TransportError) -> TransportError {
    match err {
        TransportError::Io(io) => TransportError::from_stream_io(io),
        other => other,
    }
}

/// Writes frames to a byte stream through a buffer, flushed once per batch.
pub(crate) struct FramedSender<W> {
    inner: FramedWrite<W, FrameCodec>,
    codec: FrameCodec,
    closed: bool,
    label: String,
}

impl<W: AsyncWrite + Unpin> FramedSender<W> {
    pub(crate) fn new(write: W, max_frame: usize, label: String) -> Self {
        let codec = FrameCodec::new(max_frame);
        let mut inner = FramedWrite::new(write, codec);
        inner.set_backpressure_boundary(WRITE_BATCH);
        Self {
            inner,
            codec,
            closed: false,
            label,
        }
    }

    /// The underlying stream.
    pub(crate) fn get_ref(&self) -> &W {
        self.inner.get_ref()
    }
}

#[async_trait]
impl<W: AsyncWrite + Send + Unpin> FrameSender for FramedSender<W> {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        self.codec.check(frame.len())?;
        self.inner
            .feed(StreamItem::Data(frame))
            .await
            .map_err(classify)
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        SinkExt::flush(&mut self.inner).await.map_err(classify)
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        tracing::debug!(conn = %self.label, "closing the sending direction");
        self.inner.feed(StreamItem::End).await.map_err(classify)?;
        // Flushes, then shuts the write side down (TCP FIN, QUIC stream FIN).
        SinkExt::close(&mut self.inner).await.map_err(classify)
    }
}

/// Reads frames from a byte stream.
pub(crate) struct FramedReceiver<R> {
    inner: FramedRead<R, FrameCodec>,
    state: ReceiveState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReceiveState {
    Open,
    /// The end-of-stream marker arrived.
    Ended,
    /// The stream failed; it cannot be read past the failure.
    Failed,
}

impl<R: AsyncRead + Unpin> FramedReceiver<R> {
    pub(crate) fn new(read: R, max_frame: usize) -> Self {
        Self {
            inner: FramedRead::with_capacity(read, FrameCodec::new(max_frame), READ_BUFFER),
            state: ReceiveState::Open,
        }
    }
}

#[async_trait]
impl<R: AsyncRead + Send + Unpin> FrameReceiver for FramedReceiver<R> {
    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self.state {
            ReceiveState::Open => {}
            ReceiveState::Ended => return Ok(None),
            ReceiveState::Failed => {
                return Err(TransportError::lost("the connection failed earlier"));
            }
        }
        // `FramedRead` keeps partial frames in its own buffer, so dropping this future between
        // polls loses nothing: the method is cancel-safe.
        match self.inner.next().await {
            Some(Ok(StreamItem::Data(frame))) => Ok(Some(frame)),
            Some(Ok(StreamItem::End)) => {
                self.state = ReceiveState::Ended;
                Ok(None)
            }
            Some(Err(err)) => {
                self.state = ReceiveState::Failed;
                Err(classify(err))
            }
            None => {
                self.state = ReceiveState::Failed;
                Err(TransportError::lost(
                    "the peer ended the connection without closing it",
                ))
            }
        }
    }
}

/// A connection over a read half and a write half of a byte stream.
pub(crate) struct FramedTransport<R, W> {
    info: TransportInfo,
    sender: FramedSender<W>,
    receiver: FramedReceiver<R>,
}

impl<R, W> FramedTransport<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub(crate) fn new(read: R, write: W, info: TransportInfo) -> Self {
        let max_frame = info.properties.max_frame;
        let label = format!("{} -> {}", info.local, info.peer);
        Self {
            sender: FramedSender::new(write, max_frame, label),
            receiver: FramedReceiver::new(read, max_frame),
            info,
        }
    }
}

impl<R, W> Transport for FramedTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    fn info(&self) -> &TransportInfo {
        &self.info
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        (Box::new(self.sender), Box::new(self.receiver))
    }
}
