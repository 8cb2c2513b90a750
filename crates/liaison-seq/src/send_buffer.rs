//! `SendBuffer`: the bounded retransmit buffer, holding the contiguous run of frames from the
//! oldest unacknowledged one to the newest, with when each was first transmitted and whether
//! it was transmitted again (for round-trip samples).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::SeqError;

/// One frame held.
#[derive(Debug)]
struct Slot {
    payload: Bytes,
    /// When it was first transmitted.
    first_sent: Option<Instant>,
    /// When it was last transmitted again, if it was.
    resent: Option<Instant>,
}

/// What [`SendBuffer::release_below`] released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Released {
    /// When the newest frame released was first transmitted.
    pub(crate) newest_sent: Option<Instant>,
    /// Whether the newest frame released was transmitted more than once.
    pub(crate) newest_resent: bool,
    /// The latest retransmission of any frame released.
    pub(crate) last_resent: Option<Instant>,
}

impl Released {
    /// Karn's rule for a cumulative ack, at `now`: the time since the newest frame it
    /// acknowledged was sent, if that frame was sent once and after every retransmission
    /// of the others. Otherwise the ack may answer a retransmission, or have waited for
    /// one to fill a gap below the frame (a frame held past a gap looks old).
    pub(crate) fn rtt_sample(&self, now: Instant) -> Option<Duration> {
        let sent = self.newest_sent.filter(|_| !self.newest_resent)?;
        if self.last_resent.is_some_and(|resent| resent > sent) {
            return None;
        }
        Some(now.saturating_duration_since(sent))
    }
}

/// Frames numbered `front..next`, bounded in frames and bytes.
///
/// The run is contiguous: acknowledgements and evictions remove from the front, `push` adds
/// at the back. `u64::MAX` is never assigned, so `next` always fits.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    frames: VecDeque<Slot>,
    /// Number of `frames[0]` (equal to `next` when empty).
    front: u64,
    /// Number the next pushed frame gets.
    next: u64,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

impl SendBuffer {
    pub(crate) fn new(start: u64, max_frames: usize, max_bytes: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            front: start,
            next: start,
            bytes: 0,
            max_frames,
            max_bytes,
        }
    }

    /// Number of the oldest frame held (or `next` when none is).
    pub(crate) fn front(&self) -> u64 {
        self.front
    }

    /// Number the next frame gets.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    pub(crate) fn frames(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Whether a payload of `len` bytes fits without removing anything.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.frames.len() < self.max_frames
            && self
                .bytes
                .checked_add(len)
                .is_some_and(|b| b <= self.max_bytes)
    }

    /// Appends a frame (the caller made room) and returns its number.
    pub(crate) fn push(&mut self, payload: Bytes) -> Result<u64, SeqError> {
        let seq = self.next;
        self.next = seq
            .checked_add(1)
            .filter(|&n| n < u64::MAX)
            .ok_or(SeqError::SequenceExhausted)?;
        self.bytes += payload.len();
        self.frames.push_back(Slot {
            payload,
            first_sent: None,
            resent: None,
        });
        Ok(seq)
    }

    fn pop_front(&mut self) -> Option<Slot> {
        let slot = self.frames.pop_front()?;
        self.bytes -= slot.payload.len();
        self.front += 1;
        Some(slot)
    }

    /// Forgets the oldest frame; returns its number.
    pub(crate) fn evict_front(&mut self) -> Option<u64> {
        let seq = self.front;
        self.pop_front().map(|_| seq)
    }

    /// Drops every frame numbered below `seq` (they are acknowledged); says when the newest
    /// of them was first sent and whether any was sent again.
    pub(crate) fn release_below(&mut self, seq: u64) -> Released {
        let mut released = Released::default();
        while self.front < seq {
            let Some(slot) = self.pop_front() else {
                break;
            };
            released.newest_sent = slot.first_sent;
            released.newest_resent = slot.resent.is_some();
            released.last_resent = released.last_resent.max(slot.resent);
        }
        released
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let index = usize::try_from(seq.checked_sub(self.front)?).ok()?;
        self.frames.get(index)
    }

    /// The payload of frame `seq`, if held.
    pub(crate) fn get(&self, seq: u64) -> Option<&Bytes> {
        self.slot(seq).map(|slot| &slot.payload)
    }

    /// Frame `seq` (held) is transmitted at `now`: the first time, or again.
    pub(crate) fn on_transmit(&mut self, seq: u64, now: Instant) {
        let Some(index) = seq
            .checked_sub(self.front)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if let Some(slot) = self.frames.get_mut(index) {
            match slot.first_sent {
                None => slot.first_sent = Some(now),
                Some(_) => slot.resent = Some(now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(len: usize) -> Bytes {
        Bytes::from(vec![7; len])
    }

    #[test]
    fn bounds_in_frames_and_bytes() {
        let mut buf = SendBuffer::new(0, 2, 10);
        assert!(buf.has_room(10));
        assert!(!buf.has_room(11));
        assert_eq!(buf.push(payload(6)), Ok(0));
        assert!(!buf.has_room(5));
        assert_eq!(buf.push(payload(4)), Ok(1));
        assert!(!buf.has_room(0), "two frames is the limit");
        assert_eq!((buf.frames(), buf.bytes()), (2, 10));
    }

    #[test]
    fn release_and_evict_keep_the_run_contiguous() {
        let mut buf = SendBuffer::new(5, 8, 100);
        for _ in 0..4 {
            buf.push(payload(1)).expect("room");
        }
        assert_eq!((buf.front(), buf.next()), (5, 9));
        assert_eq!(
            buf.release_below(7),
            Released::default(),
            "never transmitted"
        );
        assert_eq!(buf.front(), 7);
        assert!(buf.get(6).is_none() && buf.get(7).is_some() && buf.get(9).is_none());
        assert_eq!(buf.evict_front(), Some(7));
        buf.release_below(100);
        assert_eq!(
            (buf.front(), buf.next(), buf.frames(), buf.bytes()),
            (9, 9, 0, 0)
        );
        assert_eq!(buf.evict_front(), None);
    }

    #[test]
    fn released_frames_sample_the_round_trip_by_karns_rule() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let at = |n: u64| t0 + ms(n);
        let mut buf = SendBuffer::new(0, 16, 100);
        for _ in 0..8 {
            buf.push(payload(1)).expect("room");
        }
        // (frame, sent at ms): 1 and 3 are sent twice, 5 too (after 6 was sent), 7 never.
        let sends = [
            (0, 0),
            (1, 0),
            (1, 5),
            (2, 6),
            (3, 2),
            (3, 8),
            (4, 9),
            (5, 3),
            (6, 4),
            (5, 7),
        ];
        for (seq, sent) in sends {
            buf.on_transmit(seq, at(sent));
        }
        buf.on_transmit(99, at(4)); // not held: ignored
        assert_eq!(
            buf.release_below(0).rtt_sample(at(20)),
            None,
            "nothing released"
        );
        // The newest released (1) was sent twice.
        assert_eq!(buf.release_below(2).rtt_sample(at(20)), None);
        // The newest (4) was sent once, after the retransmission of 3 at 8 ms.
        assert_eq!(buf.release_below(5).rtt_sample(at(20)), Some(ms(11)));
        // The newest (6) was sent once, but before 5 was sent again: its ack may have
        // waited for that retransmission.
        assert_eq!(buf.release_below(7).rtt_sample(at(20)), None);
        assert_eq!(buf.release_below(8).rtt_sample(at(20)), None, "never sent");
    }

    #[test]
    fn a_frame_held_past_a_retransmitted_gap_gives_no_sample() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut buf = SendBuffer::new(0, 8, 100);
        for _ in 0..3 {
            buf.push(payload(1)).expect("room");
        }
        for seq in 0..3 {
            buf.on_transmit(seq, t0);
        }
        // 0 was lost and sent again at 40 ms; the ack of 2 waited for it.
        buf.on_transmit(0, t0 + ms(40));
        assert_eq!(buf.release_below(3).rtt_sample(t0 + ms(50)), None);
    }

    #[test]
    fn numbers_run_out_before_overflowing() {
        let mut buf = SendBuffer::new(u64::MAX - 2, 8, 100);
        assert_eq!(buf.push(payload(1)), Ok(u64::MAX - 2));
        assert_eq!(buf.push(payload(1)), Err(SeqError::SequenceExhausted));
        assert_eq!(buf.next(), u64::MAX - 1);
    }
}
