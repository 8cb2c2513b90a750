//! `Config`: the sequencer's limits (buffer bounds, ranges per `Need-Seq`) and timings
//! (ack delay, retransmission timeout).

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
}

impl Default for Config {
    /// 256 frames and 1 MiB each way, backpressure, 4096 numbers of receive window, 64
    /// ranges per `Need-Seq`, acks after 25 ms or 8 frames, retransmission after 200 ms
    /// doubling up to 5 s.
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
        }
    }
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

    /// Retransmission timeout: the first wait (at least 1 ms) and the cap of its doubling.
    /// The same timeout paces repeated `Need-Seq` for a gap that persists.
    #[must_use]
    pub fn with_rto(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_rto = initial.max(Duration::from_millis(1));
        self.max_rto = max.max(self.initial_rto);
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
            .with_rto(Duration::ZERO, Duration::ZERO);
        assert_eq!((c.send_max_frames, c.send_max_bytes), (1, 1));
        assert_eq!((c.recv_max_frames, c.recv_max_bytes), (1, 1));
        assert_eq!((c.recv_window, c.max_need_ranges, c.ack_every), (1, 1, 1));
        assert_eq!(c.initial_rto, Duration::from_millis(1));
        assert_eq!(c.max_rto, Duration::from_millis(1));
    }
}
