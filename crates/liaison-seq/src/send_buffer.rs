//! `SendBuffer`: the bounded retransmit buffer, holding the contiguous run of frames from the
//! oldest unacknowledged one to the newest.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::SeqError;

/// Frames numbered `front..next`, bounded in frames and bytes.
///
/// The run is contiguous: acknowledgements and evictions remove from the front, `push` adds
/// at the back. `u64::MAX` is never assigned, so `next` always fits.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    frames: VecDeque<Bytes>,
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
        self.frames.push_back(payload);
        Ok(seq)
    }

    /// Forgets the oldest frame; returns its number.
    pub(crate) fn evict_front(&mut self) -> Option<u64> {
        let payload = self.frames.pop_front()?;
        self.bytes -= payload.len();
        let seq = self.front;
        self.front += 1;
        Some(seq)
    }

    /// Drops every frame numbered below `seq` (they are acknowledged).
    pub(crate) fn release_below(&mut self, seq: u64) {
        while self.front < seq && self.evict_front().is_some() {}
    }

    /// The payload of frame `seq`, if held.
    pub(crate) fn get(&self, seq: u64) -> Option<&Bytes> {
        let index = usize::try_from(seq.checked_sub(self.front)?).ok()?;
        self.frames.get(index)
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
        buf.release_below(7);
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
    fn numbers_run_out_before_overflowing() {
        let mut buf = SendBuffer::new(u64::MAX - 2, 8, 100);
        assert_eq!(buf.push(payload(1)), Ok(u64::MAX - 2));
        assert_eq!(buf.push(payload(1)), Err(SeqError::SequenceExhausted));
        assert_eq!(buf.next(), u64::MAX - 1);
    }
}
