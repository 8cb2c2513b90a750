//! Fault injection around any transport: seeded drop, duplicate, reorder, corrupt, delay and cut.
//!
//! [`FaultyTransport`] wraps one end of a connection and misbehaves on its *sending* side, the
//! way a lossy link would; its receiving side passes frames through untouched. Every decision
//! comes from a [`StdRng`] seeded with [`FaultConfig::seed`], so a failing case replays exactly
//! when the same frames are sent with the same seed.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), liaison_transport::TransportError> {
//! use bytes::Bytes;
//! use liaison_transport::fault::{FaultConfig, FaultyTransport};
//! use liaison_transport::{memory, Transport};
//!
//! let (a, b) = memory::pair(64, 1024);
//! let a = FaultyTransport::new(Box::new(a), FaultConfig::default().with_seed(7).with_cut_after(2));
//! let handle = a.handle();
//! let (mut a_tx, _a_rx) = Box::new(a).split();
//! let (_b_tx, mut b_rx) = Box::new(b).split();
//! a_tx.send(Bytes::from_static(b"one")).await?;
//! a_tx.send(Bytes::from_static(b"two")).await?;
//! assert!(a_tx.send(Bytes::from_static(b"three")).await.is_err());
//! assert_eq!(b_rx.recv().await?, Some(Bytes::from_static(b"one")));
//! assert_eq!(b_rx.recv().await?, Some(Bytes::from_static(b"two")));
//! assert!(b_rx.recv().await.unwrap_err().is_abrupt());
//! assert!(handle.stats().cut);
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::error::TransportError;
use crate::transport::{FrameReceiver, FrameSender, Transport, TransportInfo};

/// Which faults to inject, and how often. Probabilities are per frame, clamped to `0.0..=1.0`
/// (NaN counts as `0.0`). The default injects nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct FaultConfig {
    /// Seed of the random decisions.
    pub seed: u64,
    /// Probability that a frame is silently dropped.
    pub drop: f64,
    /// Probability that a frame is sent twice.
    pub duplicate: f64,
    /// Probability that a frame is held back and sent after the next one. A held frame is
    /// released by the next frame sent or by `close`, not by `flush`.
    pub reorder: f64,
    /// Probability that one random byte of a frame is flipped (empty frames are left alone).
    pub corrupt: f64,
    /// Delay before each frame is sent, on the tokio clock (so paused time drives it). The
    /// sender waits out the delay: it models a slow link.
    pub delay: Option<Duration>,
    /// Cut the connection abruptly once this many frames were sent: the frames up to the N-th
    /// reach the peer, then both ends see [`TransportError::ConnectionLost`].
    pub cut_after: Option<u64>,
}

impl FaultConfig {
    /// Sets [`seed`](Self::seed).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`drop`](Self::drop).
    #[must_use]
    pub fn with_drop(mut self, p: f64) -> Self {
        self.drop = p;
        self
    }

    /// Sets [`duplicate`](Self::duplicate).
    #[must_use]
    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets [`reorder`](Self::reorder).
    #[must_use]
    pub fn with_reorder(mut self, p: f64) -> Self {
        self.reorder = p;
        self
    }

    /// Sets [`corrupt`](Self::corrupt).
    #[must_use]
    pub fn with_corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }

    /// Sets [`delay`](Self::delay).
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sets [`cut_after`](Self::cut_after).
    #[must_use]
    pub fn with_cut_after(mut self, frames: u64) -> Self {
        self.cut_after = Some(frames);
        self
    }

    /// The probabilities, clamped.
    fn clamped(mut self) -> Self {
        let clamp = |p: f64| if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.drop = clamp(self.drop);
        self.duplicate = clamp(self.duplicate);
        self.reorder = clamp(self.reorder);
        self.corrupt = clamp(self.corrupt);
        self
    }
}

/// What was injected so far (a snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FaultStats {
    /// Frames handed to the sender.
    pub frames: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Frames sent twice.
    pub duplicated: u64,
    /// Frames held back and sent after the next one.
    pub reordered: u64,
    /// Frames with a flipped byte.
    pub corrupted: u64,
    /// Frames delayed.
    pub delayed: u64,
    /// Whether the connection was cut.
    pub cut: bool,
}

#[derive(Debug, Default)]
struct Counters {
    frames: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    corrupted: AtomicU64,
    delayed: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// State shared by the two halves and the handles.
struct Shared {
    counters: Counters,
    cut_flag: AtomicBool,
    cut: CancellationToken,
    /// The inner sender, parked here between calls so that a cut can drop it at once.
    sender: Mutex<Option<Box<dyn FrameSender>>>,
}

impl Shared {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Box<dyn FrameSender>>> {
        // The slot holds an `Option` that is only taken or replaced: it is consistent even if a
        // holder panicked.
        self.sender.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cuts the connection: drops the inner sender (the peer sees the stream end without a
    /// close) and wakes the receiving half, which drops the inner receiver.
    fn cut(&self) {
        if self.cut_flag.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!("fault injection: cutting the connection");
        self.cut.cancel();
        drop(self.slot().take());
    }

    fn is_cut(&self) -> bool {
        self.cut_flag.load(Ordering::Acquire)
    }

    fn take_sender(&self) -> Result<Box<dyn FrameSender>, TransportError> {
        if self.is_cut() {
            return Err(cut_error());
        }
        self.slot().take().ok_or_else(cut_error)
    }

    fn put_sender(&self, sender: Box<dyn FrameSender>) {
        let mut slot = self.slot();
        if !self.is_cut() {
            *slot = Some(sender);
        }
    }
}

fn cut_error() -> TransportError {
    TransportError::lost("the connection was cut by fault injection")
}

/// Observes and controls a [`FaultyTransport`] after it was split.
#[derive(Clone)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

impl FaultHandle {
    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        FaultStats {
            frames: get(&c.frames),
            dropped: get(&c.dropped),
            duplicated: get(&c.duplicated),
            reordered: get(&c.reordered),
            corrupted: get(&c.corrupted),
            delayed: get(&c.delayed),
            cut: self.shared.is_cut(),
        }
    }

    /// Cuts the connection now, as [`FaultConfig::cut_after`] would.
    pub fn cut(&self) {
        self.shared.cut();
    }
}

/// A transport that injects faults on its sending side; see the [module docs](self).
pub struct FaultyTransport {
    info: TransportInfo,
    sender: FaultySender,
    receiver: FaultyReceiver,
}

impl std::fmt::Debug for FaultyTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyTransport")
            .field("info", &self.info)
            .field("config", &self.sender.config)
            .finish()
    }
}

impl FaultyTransport {
    /// Wraps `inner`. Its properties are weakened to match the faults: not reliable with drop,
    /// duplicate or corrupt, not ordered with reorder.
    pub fn new(inner: Box<dyn Transport>, config: FaultConfig) -> Self {
        let config = config.clamped();
        let mut info = inner.info().clone();
        if config.drop > 0.0 || config.duplicate > 0.0 || config.corrupt > 0.0 {
            info.properties.reliable = false;
        }
        if config.reorder > 0.0 {
            info.properties.ordered = false;
        }
        let (sender, receiver) = inner.split();
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            cut_flag: AtomicBool::new(false),
            cut: CancellationToken::new(),
            sender: Mutex::new(Some(sender)),
        });
        if config.cut_after == Some(0) {
            shared.cut();
        }
        Self {
            info,
            sender: FaultySender {
                shared: shared.clone(),
                rng: StdRng::seed_from_u64(config.seed),
                config,
                held: None,
                sent: 0,
                closed: false,
                flushed_by_cut: false,
            },
            receiver: FaultyReceiver {
                inner: Some(receiver),
                shared,
            },
        }
    }

    /// Wraps `inner` and boxes the result.
    pub fn wrap(inner: Box<dyn Transport>, config: FaultConfig) -> Box<dyn Transport> {
        Box::new(Self::new(inner, config))
    }

    /// A handle to read the counters and cut the connection, valid after [`Transport::split`].
    pub fn handle(&self) -> FaultHandle {
        FaultHandle {
            shared: self.sender.shared.clone(),
        }
    }
}

impl Transport for FaultyTransport {
    fn info(&self) -> &TransportInfo {
        &self.info
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        (Box::new(self.sender), Box::new(self.receiver))
    }
}

/// A frame held back for reordering, and whether it is to be duplicated.
struct Held {
    frame: Bytes,
    duplicate: bool,
}

struct FaultySender {
    shared: Arc<Shared>,
    rng: StdRng,
    config: FaultConfig,
    held: Option<Held>,
    sent: u64,
    closed: bool,
    /// The last `feed` cut the connection after flushing everything: the `flush` that follows
    /// (as in `send`) succeeds once.
    flushed_by_cut: bool,
}

impl FaultySender {
    fn flip_random_byte(&mut self, frame: &Bytes) -> Bytes {
        let mut bytes = BytesMut::from(&frame[..]);
        let at = self.rng.gen_range(0..bytes.len());
        bytes[at] ^= self.rng.gen_range(1..=u8::MAX);
        bytes.freeze()
    }

    /// Draws the faults of one frame and forwards what survives to `inner`.
    async fn inject(
        &mut self,
        inner: &mut Box<dyn FrameSender>,
        frame: Bytes,
    ) -> Result<(), TransportError> {
        // The draws happen in a fixed order for every frame, so a seed replays exactly.
        let drop = self.rng.gen_bool(self.config.drop);
        let corrupt = self.rng.gen_bool(self.config.corrupt);
        let duplicate = self.rng.gen_bool(self.config.duplicate);
        let reorder = self.rng.gen_bool(self.config.reorder);
        if let Some(delay) = self.config.delay {
            bump(&self.shared.counters.delayed);
            tokio::time::sleep(delay).await;
        }
        if drop {
            bump(&self.shared.counters.dropped);
            return Ok(());
        }
        let frame = if corrupt && !frame.is_empty() {
            bump(&self.shared.counters.corrupted);
            self.flip_random_byte(&frame)
        } else {
            frame
        };
        if duplicate {
            bump(&self.shared.counters.duplicated);
        }
        if reorder && self.held.is_none() {
            bump(&self.shared.counters.reordered);
            self.held = Some(Held { frame, duplicate });
            return Ok(());
        }
        forward(inner, frame, duplicate).await?;
        if let Some(held) = self.held.take() {
            forward(inner, held.frame, held.duplicate).await?;
        }
        Ok(())
    }
}

async fn forward(
    inner: &mut Box<dyn FrameSender>,
    frame: Bytes,
    duplicate: bool,
) -> Result<(), TransportError> {
    if duplicate {
        inner.feed(frame.clone()).await?;
    }
    inner.feed(frame).await
}

#[async_trait]
impl FrameSender for FaultySender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        self.flushed_by_cut = false;
        let mut inner = self.shared.take_sender()?;
        self.sent += 1;
        bump(&self.shared.counters.frames);
        let mut result = self.inject(&mut inner, frame).await;
        if result.is_ok() && self.config.cut_after == Some(self.sent) {
            // Everything up to the N-th frame reaches the peer before the cut.
            result = inner.flush().await;
            self.flushed_by_cut = result.is_ok();
            self.shared.cut();
        }
        self.shared.put_sender(inner);
        result
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        if std::mem::take(&mut self.flushed_by_cut) {
            return Ok(());
        }
        let mut inner = self.shared.take_sender()?;
        let result = inner.flush().await;
        self.shared.put_sender(inner);
        result
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        if self.closed {
            return Ok(());
        }
        let mut inner = self.shared.take_sender()?;
        self.closed = true;
        let mut result = Ok(());
        if let Some(held) = self.held.take() {
            result = forward(&mut inner, held.frame, held.duplicate).await;
        }
        if result.is_ok() {
            result = inner.close().await;
        }
        self.shared.put_sender(inner);
        result
    }
}

impl Drop for FaultySender {
    fn drop(&mut self) {
        // The inner sender goes with this half, as it would without the wrapper.
        drop(self.shared.slot().take());
    }
}

struct FaultyReceiver {
    /// `None` once the connection was cut.
    inner: Option<Box<dyn FrameReceiver>>,
    shared: Arc<Shared>,
}

#[async_trait]
impl FrameReceiver for FaultyReceiver {
    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        if self.shared.is_cut() {
            self.inner = None;
        }
        let Some(inner) = self.inner.as_mut() else {
            return Err(cut_error());
        };
        // Both branches are cancel-safe, so this method is too.
        let received = tokio::select! {
            biased;
            () = self.shared.cut.cancelled() => None,
            received = inner.recv() => Some(received),
        };
        match received {
            Some(received) => received,
            None => {
                self.inner = None;
                Err(cut_error())
            }
        }
    }
}
