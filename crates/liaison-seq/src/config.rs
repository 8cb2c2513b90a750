//! `Config`: the sequencer's limits (buffer bounds, ranges per `Need-Seq`) and timings
//! (ack delay, the bounds of the retransmission timeout and of the round-trip estimate it
//! derives from).

use std::time::Duration;

/// What [`Sequencer::send`](crate::Sequencer::send) does when the retransmit buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Refuse the message with [`SeqError::BufferFull`](crate::SeqError::BufferFull): the
    /// caller waits for [`Event::Writable`](crate::Event::Writable). Nothing is ever lost.
    #[default]
    Backpressure,
    /// Accept the message and forget the oldest unacknowledged frame. If the peer later asks
    /// for a forgotten frame, this side bows out (`Ignore-Seq`) and the peer reports
    /// [`Event::SequenceAbandoned`](crate::Event::SequenceAbandoned).
    DropOldest,
}

/// Limits and timings of one [`Sequencer`](crate::Sequencer).
///
/// Built from [`Config::default`] with `with_*` methods; each clamps nonsensical values
/// (zero sizes, a zero timeout) to the smallest workable one.
///
/// # Timers
///
/// The sequencer estimates the round-trip time (RFC 6298 / RFC 9002 style, see
/// [`RttEstimate`](crate::RttEstimate)) and derives its timers from it:
///
/// - the **retransmission timeout** (tail loss: no ack for what was sent) is
///   `max(min_rto, smoothed_rtt + max(4 × rttvar, granularity) + max_ack_delay)`, doubled on
///   each consecutive expiry and reset by an ack that acknowledges something new, capped at
///   `max_rto`. While new frames are held back for a `Need-Seq`, the ack awaited is one the
///   peer sends at once (a closed gap, a duplicate), so `max_ack_delay` is left out;
/// - the **`Need-Seq` repeat interval** (a gap persists: the `Need-Seq` or the retransmission
///   was lost) is `max(min_rto, smoothed_rtt + max(4 × rttvar, granularity))`, doubled on each
///   repeat without progress, capped at `max_rto`: the peer answers a `Need-Seq` at once;
/// - before the first round-trip sample both are `initial_rto` (doubling likewise).
///
/// ```
/// use std::time::Duration;
/// use liaison_seq::{Config, Overflow};
///
/// let config = Config::default()
///     .with_send_buffer(64, 256 * 1024)
///     .with_overflow(Overflow::Backpressure)
///     .with_ack_delay(Duration::from_millis(10));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) send_max_frames: usize,
    pub(crate) send_max_bytes: usize,
    pub(crate) overflow: Overflow,
    pub(crate) recv_max_frames: usize,
    pub(crate) recv_max_bytes: usize,
    pub(crate) recv_window: u64,
    pub(crate) max_need_ranges: usize,
    pub(crate) ack_delay: Duration,
    pub(crate) ack_every: u32,
    pub(crate) initial_rto: Duration,
    pub(crate) max_rto: Duration,
    pub(crate) min_rto: Duration,
    pub(crate) granularity: Duration,
    /// The peer's ack delay when known; `None`: the same as `ack_delay`.
    pub(crate) max_ack_delay: Option<Duration>,
}

impl Default for Config {
    /// 256 frames and 1 MiB each way, backpressure, 4096 numbers of receive window, 64
    /// ranges per `Need-Seq`, acks after 25 ms or 8 frames; retransmission after 200 ms until
    /// the first round-trip sample, then derived from the estimate with a floor of
    /// [`DEFAULT_MIN_RTO`](Self::DEFAULT_MIN_RTO) (1 ms) and a granularity of 1 ms, doubling
    /// up to 5 s; the peer's ack delay taken to be this side's.
    fn default() -> Self {
        Self {
            send_max_frames: 256,
            send_max_bytes: 1 << 20,
            overflow: Overflow::Backpressure,
            recv_max_frames: 256,
            recv_max_bytes: 1 << 20,
            recv_window: 4096,
            max_need_ranges: 64,
            ack_delay: Duration::from_millis(25),
            ack_every: 8,
            initial_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(5),
            min_rto: Self::DEFAULT_MIN_RTO,
            granularity: Duration::from_millis(1),
            max_ack_delay: None,
        }
    }
}

impl Config {
    /// The default floor of the retransmission timeout and of the `Need-Seq` repeat
    /// interval: 1 ms.
    ///
    /// Far below TCP's customary 200 ms (or RFC 6298's 1 s), because a spurious timeout is
    /// cheap here: it resends two frames (the peer acks the duplicate at once), or the frames
    /// of one `Need-Seq`, and nothing else slows down (there is no congestion window to
    /// collapse), while every timeout that fires on a real loss stalls the session for its
    /// whole length. Not below 1 ms: timers of common runtimes (tokio's among them) tick in
    /// milliseconds, so a shorter one would not fire sooner, and jitter below that is what
    /// `rttvar` and the granularity margin absorb.
    pub const DEFAULT_MIN_RTO: Duration = Duration::from_millis(1);
}

impl Config {
    /// Bounds the retransmit buffer: frames sent (or waiting to be sent) and not yet
    /// acknowledged. At least one frame and one byte.
    #[must_use]
    pub fn with_send_buffer(mut self, max_frames: usize, max_bytes: usize) -> Self {
        self.send_max_frames = max_frames.max(1);
        self.send_max_bytes = max_bytes.max(1);
        self
    }

    /// What happens when the retransmit buffer is full.
    #[must_use]
    pub fn with_overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Bounds the receive side: frames held for reordering plus delivered messages not yet
    /// taken with [`poll_event`](crate::Sequencer::poll_event). At least one frame and one
    /// byte; a frame larger than `max_bytes` is a protocol error, so this must be at least
    /// the peer's largest payload.
    #[must_use]
    pub fn with_recv_buffer(mut self, max_frames: usize, max_bytes: usize) -> Self {
        self.recv_max_frames = max_frames.max(1);
        self.recv_max_bytes = max_bytes.max(1);
        self
    }

    /// Frames numbered `window` or more past the next expected number are dropped unread
    /// (the sender retransmits them later). At least 1.
    #[must_use]
    pub fn with_recv_window(mut self, window: u64) -> Self {
        self.recv_window = window.max(1);
        self
    }

    /// Most ranges in one `Need-Seq`, sent or accepted. At least 1.
    #[must_use]
    pub fn with_max_need_ranges(mut self, max: usize) -> Self {
        self.max_need_ranges = max.max(1);
        self
    }

    /// How long received frames wait for outgoing data to carry their acknowledgement
    /// before a standalone ack is sent.
    #[must_use]
    pub fn with_ack_delay(mut self, delay: Duration) -> Self {
        self.ack_delay = delay;
        self
    }

    /// Acknowledge at once after this many unacknowledged in-order frames. At least 1.
    #[must_use]
    pub fn with_ack_every(mut self, frames: u32) -> Self {
        self.ack_every = frames.max(1);
        self
    }

    /// Retransmission timeout: the wait before the first round-trip sample (at least 1 ms)
    /// and the cap of its doubling. The same bounds pace repeated `Need-Seq` for a gap that
    /// persists.
    #[must_use]
    pub fn with_rto(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_rto = initial.max(Duration::from_millis(1));
        self.max_rto = max.max(self.initial_rto);
        self
    }

    /// The floor of the timeouts derived from the round-trip estimate (at least 100 µs; see
    /// [`DEFAULT_MIN_RTO`](Self::DEFAULT_MIN_RTO)). `max_rto` still caps them.
    #[must_use]
    pub fn with_min_rto(mut self, min: Duration) -> Self {
        self.min_rto = min.max(Duration::from_micros(100));
        self
    }

    /// The clock granularity: the least margin a timeout leaves above the smoothed
    /// round-trip time, however steady the samples (1 ms by default, like RFC 9002's
    /// `kGranularity`).
    #[must_use]
    pub fn with_timer_granularity(mut self, granularity: Duration) -> Self {
        self.granularity = granularity;
        self
    }

    /// The longest the peer may delay an ack (its ack delay), added to the retransmission
    /// timeout. Unless set, the peer is taken to use this side's own
    /// [`with_ack_delay`](Self::with_ack_delay): both ends of a session normally share one
    /// configuration, and the wire does not carry it.
    #[must_use]
    pub fn with_max_ack_delay(mut self, delay: Duration) -> Self {
        self.max_ack_delay = Some(delay);
        self
    }
}

impl Config {
    /// The retransmit buffer's bounds: `(max_frames, max_bytes)`.
    pub fn send_buffer(&self) -> (usize, usize) {
        (self.send_max_frames, self.send_max_bytes)
    }

    /// The receive side's bounds: `(max_frames, max_bytes)`.
    pub fn recv_buffer(&self) -> (usize, usize) {
        (self.recv_max_frames, self.recv_max_bytes)
    }

    /// The retransmission timeout's bounds: `(initial, min, max)`; `initial` is used until
    /// the first round-trip sample.
    pub fn rto_bounds(&self) -> (Duration, Duration, Duration) {
        (self.initial_rto, self.min_rto, self.max_rto)
    }

    /// The longest the peer may delay an ack, as the retransmission timeout allows for it.
    pub fn max_ack_delay(&self) -> Duration {
        self.max_ack_delay.unwrap_or(self.ack_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_clamp_to_workable_values() {
        let c = Config::default()
            .with_send_buffer(0, 0)
            .with_recv_buffer(0, 0)
            .with_recv_window(0)
            .with_max_need_ranges(0)
            .with_ack_every(0)
            .with_rto(Duration::ZERO, Duration::ZERO)
            .with_min_rto(Duration::ZERO);
        assert_eq!((c.send_max_frames, c.send_max_bytes), (1, 1));
        assert_eq!((c.recv_max_frames, c.recv_max_bytes), (1, 1));
        assert_eq!((c.recv_window, c.max_need_ranges, c.ack_every), (1, 1, 1));
        assert_eq!(c.initial_rto, Duration::from_millis(1));
        assert_eq!(c.max_rto, Duration::from_millis(1));
        assert_eq!(c.min_rto, Duration::from_micros(100));
    }

    #[test]
    fn the_peer_ack_delay_defaults_to_the_local_one() {
        let ms = Duration::from_millis;
        let c = Config::default().with_ack_delay(ms(10));
        assert_eq!(c.max_ack_delay(), ms(10));
        assert_eq!(c.with_max_ack_delay(ms(40)).max_ack_delay(), ms(40));
        assert_eq!(
            Config::default().rto_bounds(),
            (ms(200), Config::DEFAULT_MIN_RTO, Duration::from_secs(5))
        );
    }
}
