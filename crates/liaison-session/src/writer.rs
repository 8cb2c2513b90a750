//! The transport's sending half as the session task drives it: idle, or writing one batch
//! of frames.
//!
//! The session task writes each batch itself: it polls the write once as soon as the batch
//! starts, and when the transport takes it at once (the common case: calls, and a bulk
//! transfer while the socket has room) it completes on the spot, with no hand-over to
//! another task. Otherwise the session task waits for the rest among its other waits, so a
//! slow peer stalls the write, never the task (pings, timers and aborts keep working, and
//! the user's `send` waits).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use liaison_transport::{FrameSender, TransportError};
use liaison_wire::Frame;

/// Most frames one batch takes; each batch is fed frame by frame and flushed once.
pub(crate) const WRITE_BATCH: usize = 64;

/// A batch written: the sender back, the emptied buffer for the next batch, and how it went.
struct Written {
    sender: Box<dyn FrameSender>,
    frames: Vec<Frame>,
    result: Result<(), TransportError>,
}

type WriteFuture = Pin<Box<dyn Future<Output = Written> + Send>>;

enum State {
    Idle(Box<dyn FrameSender>),
    Busy(WriteFuture),
    /// While a batch is being set up.
    Gone,
}

/// The sending half of a connection, with at most one batch of frames in progress.
pub(crate) struct Writer {
    state: State,
    /// The buffer the next batch is gathered in (kept across batches).
    spare: Vec<Frame>,
}

impl Writer {
    pub(crate) fn new(sender: Box<dyn FrameSender>) -> Self {
        Self {
            state: State::Idle(sender),
            spare: Vec::with_capacity(WRITE_BATCH),
        }
    }

    /// Whether a batch is being written.
    pub(crate) fn is_busy(&self) -> bool {
        matches!(self.state, State::Busy(_))
    }

    /// Starts a batch with the frames `fill` pushes (at most [`WRITE_BATCH`] wanted) and
    /// polls it once. Returns the batch's result if it completed at once; `None` if it is
    /// still being written (see [`written`](Self::written)), if a batch was already under
    /// way, or if `fill` gave nothing.
    pub(crate) fn write(
        &mut self,
        fill: impl FnOnce(&mut Vec<Frame>),
    ) -> Option<Result<(), TransportError>> {
        let sender = match std::mem::replace(&mut self.state, State::Gone) {
            State::Idle(sender) => sender,
            other => {
                self.state = other;
                return None;
            }
        };
        let mut frames = std::mem::take(&mut self.spare);
        fill(&mut frames);
        if frames.is_empty() {
            self.spare = frames;
            self.state = State::Idle(sender);
            return None;
        }
        self.state = State::Busy(Box::pin(write_batch(sender, frames)));
        // A waker that does nothing: if the write is not done, the session task polls it
        // again through `written`, with its own waker, before it sleeps.
        match self.poll_written(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }

    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let State::Busy(future) = &mut self.state else {
            return Poll::Pending;
        };
        let Written {
            sender,
            frames,
            result,
        } = ready!(future.as_mut().poll(cx));
        self.spare = frames;
        self.state = State::Idle(sender);
        Poll::Ready(result)
    }

    /// Waits for the batch under way to be written; never completes while idle.
    pub(crate) async fn written(&mut self) -> Result<(), TransportError> {
        poll_fn(|cx| self.poll_written(cx)).await
    }

    /// Finishes the batch under way, then closes the sending half gracefully.
    pub(crate) async fn close(mut self) -> Result<(), TransportError> {
        if self.is_busy() {
            self.written().await?;
        }
        match &mut self.state {
            State::Idle(sender) => sender.close().await,
            State::Busy(_) | State::Gone => Ok(()),
        }
    }
}

/// Feeds every frame of the batch, then flushes once.
async fn write_batch(mut sender: Box<dyn FrameSender>, mut frames: Vec<Frame>) -> Written {
    let mut result = Ok(());
    for frame in frames.drain(..) {
        result = sender
            .feed_parts(&frame.encode_header(), frame.payload)
            .await;
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = sender.flush().await;
    }
    frames.clear();
    Written {
        sender,
        frames,
        result,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use liaison_transport::memory::pair;
    use liaison_transport::{FrameReceiver, Transport};
    use liaison_wire::{Frame, Limits};

    use super::Writer;

    /// Frames of `size`-byte payloads on exchanges 1, 2, …
    fn frames(count: u64, size: usize) -> Vec<Frame> {
        (1..=count)
            .map(|id| Frame::data(id, Bytes::from(vec![0x5a; size])))
            .collect()
    }

    /// A writer on one end of a memory connection with room for `capacity` frames, and the
    /// receiver of the other end.
    fn connected(capacity: usize) -> (Writer, Box<dyn FrameReceiver>) {
        let (a, b) = pair(capacity, 1 << 20);
        let (sender, _) = Box::new(a).split();
        let (_, receiver) = Box::new(b).split();
        (Writer::new(sender), receiver)
    }

    async fn receive(receiver: &mut dyn FrameReceiver, count: u64) -> Vec<u64> {
        let mut ids = Vec::new();
        for _ in 0..count {
            let bytes = receiver.recv().await.expect("recv").expect("a frame");
            let frame = Frame::decode(bytes, &Limits::DEFAULT).expect("decode");
            ids.push(frame.exchange);
        }
        ids
    }

    #[tokio::test]
    async fn a_small_batch_the_transport_takes_completes_on_the_spot() {
        let (mut writer, mut receiver) = connected(64);
        let result = writer.write(|batch| batch.extend(frames(3, 16)));
        assert!(matches!(result, Some(Ok(()))), "{result:?}");
        assert!(!writer.is_busy());
        assert_eq!(receive(receiver.as_mut(), 3).await, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_batch_the_transport_cannot_take_yet_finishes_when_the_peer_reads() {
        // Room for one frame only: the second waits for the reader.
        let (mut writer, mut receiver) = connected(1);
        assert!(writer.write(|batch| batch.extend(frames(3, 16))).is_none());
        assert!(writer.is_busy());
        // A second batch waits for the first.
        assert!(writer.write(|batch| batch.extend(frames(1, 16))).is_none());
        let (ids, written) = tokio::join!(receive(receiver.as_mut(), 3), writer.written());
        assert_eq!(ids, [1, 2, 3]);
        written.expect("written");
        assert!(!writer.is_busy());
    }

    #[tokio::test]
    async fn a_large_batch_the_transport_takes_completes_on_the_spot_too() {
        let (mut writer, mut receiver) = connected(64);
        let result = writer.write(|batch| batch.extend(frames(2, 256 * 1024)));
        assert!(matches!(result, Some(Ok(()))), "{result:?}");
        assert_eq!(receive(receiver.as_mut(), 2).await, [1, 2]);
    }

    #[tokio::test]
    async fn a_write_to_a_peer_that_is_gone_fails() {
        let (a, b) = pair(64, 1 << 20);
        let (sender, _) = Box::new(a).split();
        drop(b);
        let mut writer = Writer::new(sender);
        let result = writer.write(|batch| batch.extend(frames(1, 16)));
        assert!(matches!(result, Some(Err(_))), "{result:?}");
        assert!(
            writer.write(|_| {}).is_none(),
            "an empty batch writes nothing"
        );
    }
}
