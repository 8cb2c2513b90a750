//! Frames over any byte stream: the sender, receiver and transport shared by TCP, Unix sockets and QUIC streams.
//!
//! **Writing.** A [`FramedSender`] keeps a [`WriteQueue`]: length prefixes and small frames are
//! copied into one coalescing buffer, while a frame body of [`COPY_MAX`] bytes or more is queued
//! as the [`Bytes`] it arrived in and written from where it lies: with one vectored write over
//! TCP and Unix sockets, and handed to quinn as a chunk over QUIC. A large frame is thus never
//! copied by the transport. The queue is written out when it holds [`WRITE_BATCH`] bytes and on
//! [`flush`](FrameSender::flush).
//!
//! **Reading.** A [`FramedReceiver`] reads into a buffer sized for a few frames and hands out
//! each frame as a zero-copy slice of it; see [`FramedReceiver::make_room`].

use std::collections::VecDeque;
use std::future::{poll_fn, Future as _};
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::codec::{FrameCodec, StreamItem};
use crate::error::TransportError;
use crate::transport::{FrameReceiver, FrameSender, Transport, TransportInfo};

/// Bytes queued by the writer before `feed` writes to the stream on its own.
///
/// A large batch goes out in few system calls. A TCP write costs mostly per call (each
/// pushes what it wrote through the stack, over loopback up to the reader), not per byte:
/// 64 KiB messages written one per call moved half the bytes per second, and per CPU
/// second, that 512 KiB writes do (`liaison-bench --only bulk-tcp`). Frame bodies are not
/// copied to get there (see [`WriteQueue`]), and a flush writes whatever is queued.
const WRITE_BATCH: usize = 512 * 1024;

/// Frame bodies shorter than this are copied into the coalescing buffer; longer ones are
/// queued as they are and written without a copy.
pub(crate) const COPY_MAX: usize = 4 * 1024;

/// Most chunks one vectored write takes.
const MAX_WRITE_SLICES: usize = 64;

/// Smallest read buffer frames are carved out of.
const READ_BUFFER: usize = 64 * 1024;

/// A fresh read buffer has room for this many frames as long as the last one seen...
const FRAMES_PER_BUFFER: usize = 4;

/// ...up to this size.
const MAX_READ_BUFFER: usize = 1024 * 1024;

/// Replaced read buffers kept for reuse, when frames are large.
const SPARE_BUFFERS: usize = 2;

/// Least free room a read is given when the next frame's length is not known yet.
const MIN_READ: usize = 8 * 1024;

fn stream_error(err: io::Error) -> TransportError {
    TransportError::from_stream_io(err)
}

/// Bytes waiting to be written, in order: whole chunks, then the coalescing buffer.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    /// Chunks ready to be written.
    chunks: VecDeque<Bytes>,
    /// Small pieces (length prefixes, small frames) gathered after the last chunk.
    tail: BytesMut,
    /// Bytes in `chunks` and `tail`.
    len: usize,
}

impl WriteQueue {
    /// Bytes queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `bytes` by copying them.
    pub(crate) fn put_slice(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends `bytes`: copied if short, queued as they are otherwise.
    pub(crate) fn put_bytes(&mut self, bytes: Bytes) {
        if bytes.len() < COPY_MAX {
            self.put_slice(&bytes);
            return;
        }
        self.seal();
        self.len += bytes.len();
        self.chunks.push_back(bytes);
    }

    /// Moves the coalescing buffer into the chunks, so that every queued byte is writable.
    fn seal(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
    }

    /// The queued chunks, as many as fit in `slices`; returns how many were filled.
    fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }

    /// Drops the first `written` bytes.
    fn advance(&mut self, mut written: usize) {
        self.len -= written;
        while written > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.chunks.pop_front();
        }
    }
}

/// A byte stream a [`FramedSender`] writes its queue to.
pub(crate) trait WriteChunks: Send + Unpin {
    /// Writes some of the queue's sealed chunks (at least one byte) and removes what was
    /// written from the queue.
    fn poll_write_queue(
        &mut self,
        cx: &mut Context<'_>,
        queue: &mut WriteQueue,
    ) -> Poll<io::Result<()>>;

    /// Flushes what the stream itself buffers.
    fn poll_flush_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Ends the sending direction of the stream.
    fn poll_shutdown_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// An [`AsyncWrite`] stream (TCP, Unix sockets), written with vectored writes when it supports
/// them.
#[derive(Debug)]
pub(crate) struct Stream<W>(pub(crate) W);

impl<W: AsyncWrite + Send + Unpin> WriteChunks for Stream<W> {
    fn poll_write_queue(
        &mut self,
        cx: &mut Context<'_>,
        queue: &mut WriteQueue,
    ) -> Poll<io::Result<()>> {
        let stream = Pin::new(&mut self.0);
        let written = if stream.is_write_vectored() {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let filled = queue.io_slices(&mut slices);
            ready!(stream.poll_write_vectored(cx, &slices[..filled]))?
        } else {
            let front = queue.chunks.front().map_or(&[][..], |chunk| &chunk[..]);
            ready!(stream.poll_write(cx, front))?
        };
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        queue.advance(written);
        Poll::Ready(Ok(()))
    }

    fn poll_flush_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A QUIC send stream takes the queued chunks as they are: quinn keeps the [`Bytes`] until they
/// are acknowledged instead of copying them.
impl WriteChunks for quinn::SendStream {
    fn poll_write_queue(
        &mut self,
        cx: &mut Context<'_>,
        queue: &mut WriteQueue,
    ) -> Poll<io::Result<()>> {
        let chunks = queue.chunks.make_contiguous();
        // `write_chunks` is cancel-safe (nothing is written unless it resolves), so a fresh
        // future per poll is sound; quinn's own `poll_write` does the same.
        let written = ready!(pin!(self.write_chunks(chunks)).poll(cx)).map_err(io::Error::from)?;
        // quinn emptied the chunks it wrote whole and split the one it wrote in part.
        queue.chunks.drain(..written.chunks);
        queue.len -= written.bytes;
        Poll::Ready(Ok(()))
    }

    fn poll_flush_stream(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown_stream(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.finish().map_err(io::Error::from))
    }
}

/// Writes frames to a byte stream through a [`WriteQueue`], flushed once per batch.
pub(crate) struct FramedSender<W> {
    stream: W,
    queue: WriteQueue,
    codec: FrameCodec,
    closed: bool,
    label: String,
}

impl<W: WriteChunks> FramedSender<W> {
    pub(crate) fn new(stream: W, max_frame: usize, label: String) -> Self {
        Self {
            stream,
            queue: WriteQueue::default(),
            codec: FrameCodec::new(max_frame),
            closed: false,
            label,
        }
    }

    /// The underlying stream.
    pub(crate) fn get_ref(&self) -> &W {
        &self.stream
    }

    /// Writes until at most `keep` bytes are queued.
    async fn write_down_to(&mut self, keep: usize) -> Result<(), TransportError> {
        if self.queue.len() <= keep {
            return Ok(());
        }
        self.queue.seal();
        let Self { stream, queue, .. } = self;
        poll_fn(|cx| {
            while queue.len() > keep {
                ready!(stream.poll_write_queue(cx, queue))?;
            }
            Poll::Ready(Ok::<(), io::Error>(()))
        })
        .await
        .map_err(stream_error)
    }

    /// Queues `head` then `body` as one frame, writing first if the queue is full.
    async fn queue_frame(&mut self, head: &[u8], body: Bytes) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        let prefix = self.codec.prefix(head.len() + body.len())?;
        self.write_down_to(WRITE_BATCH - 1).await?;
        self.queue.put_slice(&prefix);
        self.queue.put_slice(head);
        self.queue.put_bytes(body);
        Ok(())
    }

    async fn flush_all(&mut self) -> Result<(), TransportError> {
        self.write_down_to(0).await?;
        let stream = &mut self.stream;
        poll_fn(|cx| stream.poll_flush_stream(cx))
            .await
            .map_err(stream_error)
    }
}

#[async_trait]
impl<W: WriteChunks> FrameSender for FramedSender<W> {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.queue_frame(&[], frame).await
    }

    async fn feed_parts(&mut self, head: &[u8], body: Bytes) -> Result<(), TransportError> {
        self.queue_frame(head, body).await
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        self.flush_all().await
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        tracing::debug!(conn = %self.label, "closing the sending direction");
        self.queue.put_slice(&FrameCodec::end_marker());
        self.flush_all().await?;
        // Shuts the write side down (TCP FIN, QUIC stream FIN).
        let stream = &mut self.stream;
        poll_fn(|cx| stream.poll_shutdown_stream(cx))
            .await
            .map_err(stream_error)
    }
}

/// Reads frames from a byte stream.
pub(crate) struct FramedReceiver<R> {
    read: R,
    buf: BytesMut,
    codec: FrameCodec,
    state: ReceiveState,
    /// Stream bytes of the last frame whose length was read.
    last_frame: usize,
    /// Buffers replaced earlier, kept to be reused once the frames carved out of them are
    /// dropped (at most [`SPARE_BUFFERS`]).
    spares: Vec<BytesMut>,
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
            read,
            buf: BytesMut::new(),
            codec: FrameCodec::new(max_frame),
            state: ReceiveState::Open,
            last_frame: 0,
            spares: Vec::new(),
        }
    }

    /// Makes room for the next read: the rest of the current frame when its length is known
    /// (the codec checked it against the limit), else at least [`MIN_READ`] bytes.
    ///
    /// A buffer that runs out of room is replaced by one with room for
    /// [`FRAMES_PER_BUFFER`] frames of the size of the last one (between [`READ_BUFFER`] and
    /// [`MAX_READ_BUFFER`], or the current frame if larger), so a stream of large frames
    /// moves the bytes of a partial frame into a new buffer once every few frames, not for
    /// every frame, and a stream of small frames keeps a small buffer.
    ///
    /// The replacement is, in order of preference: the same buffer, if every frame carved out
    /// of it was dropped already; a spare buffer (one replaced earlier) whose frames were all
    /// dropped; a new allocation. Reusing memory spares the page faults of touching fresh
    /// memory, which cost more than the copy itself on a stream of large frames.
    fn make_room(&mut self) {
        let len = self.buf.len();
        let wanted = match self.codec.frame_len(&self.buf) {
            Some(total) => {
                self.last_frame = total;
                total.saturating_sub(len).max(1)
            }
            None => MIN_READ,
        };
        if self.buf.capacity() - len >= wanted {
            return;
        }
        let size = self
            .last_frame
            .saturating_mul(FRAMES_PER_BUFFER)
            .clamp(READ_BUFFER, MAX_READ_BUFFER);
        let additional = wanted.max(size.saturating_sub(len));
        // Unique again (every frame dropped): the bytes of the partial frame move to the front.
        if self.buf.try_reclaim(additional) {
            return;
        }
        let reused = self
            .spares
            .iter_mut()
            .position(|spare| spare.try_reclaim(len + additional));
        let mut fresh = match reused {
            Some(index) => self.spares.swap_remove(index),
            None => BytesMut::with_capacity(len + additional),
        };
        fresh.extend_from_slice(&self.buf);
        let mut replaced = std::mem::replace(&mut self.buf, fresh);
        replaced.clear();
        // Spares are kept for large frames only: small ones share a buffer by the dozen.
        if size > READ_BUFFER && self.spares.len() < SPARE_BUFFERS {
            self.spares.push(replaced);
        }
    }

    /// Reads once into the buffer; `Ok(0)` at the end of the stream. Cancel-safe: bytes
    /// read are in the buffer before the future resolves.
    async fn fill(&mut self) -> io::Result<usize> {
        self.make_room();
        self.read.read_buf(&mut self.buf).await
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
        // Partial frames stay in `self.buf` between calls, and `fill` is cancel-safe, so
        // dropping this future between polls loses nothing: the method is cancel-safe.
        loop {
            let decoded = match self.codec.decode(&mut self.buf) {
                Ok(Some(item)) => Ok(Some(item)),
                Ok(None) => match self.fill().await {
                    Ok(0) => self.codec.decode_eof(&mut self.buf).and_then(|item| {
                        item.map(Some).ok_or_else(|| {
                            TransportError::lost("the peer ended the connection without closing it")
                        })
                    }),
                    Ok(_) => Ok(None),
                    Err(err) => Err(stream_error(err)),
                },
                Err(err) => Err(err),
            };
            match decoded {
                Ok(None) => {}
                Ok(Some(StreamItem::Data(frame))) => return Ok(Some(frame)),
                Ok(Some(StreamItem::End)) => {
                    self.state = ReceiveState::Ended;
                    return Ok(None);
                }
                Err(err) => {
                    self.state = ReceiveState::Failed;
                    return Err(err);
                }
            }
        }
    }
}

/// A connection over a read half and a write half of a byte stream.
pub(crate) struct FramedTransport<R, W> {
    info: TransportInfo,
    sender: FramedSender<Stream<W>>,
    receiver: FramedReceiver<R>,
}

impl<R, W> FramedTransport<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    pub(crate) fn new(read: R, write: W, info: TransportInfo) -> Self {
        let max_frame = info.properties.max_frame;
        let label = format!("{} -> {}", info.local, info.peer);
        Self {
            sender: FramedSender::new(Stream(write), max_frame, label),
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

#[cfg(test)]
mod tests {
    use std::io::IoSlice;

    use proptest::prelude::*;

    use super::*;

    /// A writer that takes at most `step` bytes per call, with or without vectored writes,
    /// and keeps everything written, and how much each call took.
    #[derive(Default)]
    struct Trickle {
        written: Vec<u8>,
        step: usize,
        vectored: bool,
        calls: Vec<usize>,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            self.calls.push(n);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.step;
            for buf in bufs {
                let n = buf.len().min(left);
                self.written.extend_from_slice(&buf[..n]);
                left -= n;
            }
            let n = self.step - left;
            self.calls.push(n);
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Frame `i` of a test: a head of up to 40 bytes and a body of `len` bytes.
    fn parts(i: usize, len: usize) -> (Vec<u8>, Bytes) {
        let byte = |x: usize| x.to_le_bytes()[0];
        let head = (0..i % 41).map(|b| byte(b * 7 + i)).collect();
        let body = (0..len).map(|b| byte(b * 13 + i)).collect::<Vec<_>>();
        (head, Bytes::from(body))
    }

    fn joined(i: usize, len: usize) -> Bytes {
        let (mut head, body) = parts(i, len);
        head.extend_from_slice(&body);
        Bytes::from(head)
    }

    /// Frame sizes on both sides of [`COPY_MAX`].
    fn sizes() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(
            prop_oneof![0usize..64, (COPY_MAX - 2)..(COPY_MAX + 2), 0usize..70_000],
            0..24,
        )
    }

    #[test]
    fn queue_advances_across_chunks() {
        let mut queue = WriteQueue::default();
        queue.put_slice(b"ab");
        queue.put_bytes(Bytes::from(vec![b'x'; COPY_MAX]));
        queue.put_slice(b"cd");
        queue.put_bytes(Bytes::from_static(b"ef"));
        queue.seal();
        assert_eq!(queue.len(), 2 + COPY_MAX + 4);
        // The short pieces around the large body are coalesced; the body is its own chunk.
        assert_eq!(queue.chunks.len(), 3);
        queue.advance(3);
        assert_eq!(queue.chunks.front().map(Bytes::len), Some(COPY_MAX - 1));
        queue.advance(COPY_MAX);
        assert_eq!(queue.chunks.front().map(|c| &c[..]), Some(&b"def"[..]));
        queue.advance(3);
        assert_eq!((queue.len(), queue.chunks.len()), (0, 0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever the write sizes the stream accepts, vectored or not, the bytes written are
        /// the length-prefixed frames, head then body, and then the end marker.
        #[test]
        fn writes_are_the_encoded_frames(
            sizes in sizes(),
            step in 1usize..20_000,
            vectored in any::<bool>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let stream = Stream(Trickle { step, vectored, ..Trickle::default() });
            let mut sender = FramedSender::new(stream, 1 << 20, "test".into());
            runtime.block_on(async {
                for (i, len) in sizes.iter().enumerate() {
                    let (head, body) = parts(i, *len);
                    if i % 2 == 0 {
                        sender.feed_parts(&head, body).await.unwrap();
                    } else {
                        sender.feed(joined(i, *len)).await.unwrap();
                    }
                }
                sender.close().await.unwrap();
            });
            let codec = FrameCodec::new(1 << 20);
            let mut wire = BytesMut::from(&sender.get_ref().0.written[..]);
            for (i, len) in sizes.iter().enumerate() {
                let item = codec.decode(&mut wire).unwrap();
                prop_assert_eq!(item, Some(StreamItem::Data(joined(i, *len))));
            }
            prop_assert_eq!(codec.decode(&mut wire).unwrap(), Some(StreamItem::End));
            prop_assert!(wire.is_empty());
        }

        /// Frames sent through a narrow pipe arrive whole and in order.
        #[test]
        fn frames_survive_a_narrow_pipe(sizes in sizes(), pipe in 1usize..9_000) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let (a, b) = tokio::io::duplex(pipe);
                let mut sender = FramedSender::new(Stream(a), 1 << 20, "test".into());
                let mut receiver = FramedReceiver::new(b, 1 << 20);
                let send = async {
                    for (i, len) in sizes.iter().enumerate() {
                        let (head, body) = parts(i, *len);
                        sender.feed_parts(&head, body).await.unwrap();
                    }
                    sender.close().await.unwrap();
                };
                let receive = async {
                    let mut got = Vec::new();
                    while let Some(frame) = receiver.recv().await.unwrap() {
                        got.push(frame);
                    }
                    got
                };
                let ((), got) = tokio::join!(send, receive);
                let expected: Vec<Bytes> =
                    sizes.iter().enumerate().map(|(i, len)| joined(i, *len)).collect();
                prop_assert_eq!(got, expected);
                Ok(())
            })?;
        }
    }

    /// A bulk transfer's frames go out several per write: 16 messages of 64 KiB, fed then
    /// flushed, take a few vectored writes (two, of [`WRITE_BATCH`] bytes), not one each.
    #[tokio::test]
    async fn large_frames_go_out_several_per_write() {
        const COUNT: usize = 16;
        const LEN: usize = 64 * 1024;
        let stream = Stream(Trickle {
            step: usize::MAX,
            vectored: true,
            ..Trickle::default()
        });
        let mut sender = FramedSender::new(stream, 1 << 20, "test".into());
        for i in 0..COUNT {
            let (head, body) = parts(i, LEN);
            sender.feed_parts(&head, body).await.unwrap();
        }
        sender.flush().await.unwrap();
        let calls = &sender.get_ref().0.calls;
        // At least four messages per write (all but the flush's last), in few writes.
        assert!(calls.len() <= COUNT / 4, "{calls:?}");
        let (_, full) = calls.split_last().expect("written");
        assert!(full.iter().all(|&n| n >= 4 * LEN), "{calls:?}");
        assert_eq!(
            calls.iter().sum::<usize>(),
            sender.get_ref().0.written.len()
        );
    }

    /// Large frames, most dropped at once and some kept: the read buffers are reused once
    /// their frames are gone, and a frame still held is never written over.
    #[tokio::test]
    async fn reused_buffers_never_overwrite_held_frames() {
        const COUNT: usize = 60;
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut sender = FramedSender::new(Stream(a), 1 << 20, "test".into());
        let mut receiver = FramedReceiver::new(b, 1 << 20);
        let len = |i: usize| 30_000 + (i % 7) * 5_000;
        let send = async {
            for i in 0..COUNT {
                let (head, body) = parts(i, len(i));
                sender.feed_parts(&head, body).await.unwrap();
            }
            sender.close().await.unwrap();
        };
        let receive = async {
            let mut held = Vec::new();
            for i in 0..COUNT {
                let frame = receiver.recv().await.unwrap().expect("a frame");
                assert_eq!(frame, joined(i, len(i)), "frame {i}");
                if i % 9 == 0 {
                    held.push((i, frame));
                }
            }
            assert_eq!(receiver.recv().await.unwrap(), None);
            held
        };
        let ((), held) = tokio::join!(send, receive);
        for (i, frame) in held {
            assert_eq!(frame, joined(i, len(i)), "held frame {i}");
        }
    }

    /// A stream cut in the middle of a frame is a lost connection, not a clean end.
    #[tokio::test]
    async fn cut_in_a_frame_is_lost() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&10u32.to_be_bytes());
        wire.extend_from_slice(b"12345");
        let mut receiver = FramedReceiver::new(&wire[..], 1024);
        let err = receiver.recv().await.unwrap_err();
        assert!(err.is_abrupt(), "{err:?}");
        assert!(receiver.recv().await.unwrap_err().is_abrupt());
    }
}
