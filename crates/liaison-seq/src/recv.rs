//! `RecvSide`: the receiving direction: reassembly (ordered: a bounded reorder buffer;
//! unordered: a bounded set of numbers seen ahead), duplicates, gap detection and the
//! `Need-Seq` it calls for (and the round-trip sample its answer gives), the abandoned
//! numbers of an `Ignore-Seq`, and when to ack.

use std::collections::{BTreeMap, VecDeque};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_wire::RangeSet;

use crate::config::Config;
use crate::{Event, Mode, SeqError};

/// What became of a received data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The next expected frame: delivered, with whatever it unblocked. `filled_gap` when
    /// frames ahead of it were waiting (a hole closed, the sender wants to know at once).
    Delivered { filled_gap: bool },
    /// Ahead of the next expected number: buffered (ordered) or delivered (unordered).
    Ahead,
    /// Received before: dropped.
    Duplicate,
    /// No room, or beyond the receive window: dropped unread, the sender sends it again.
    Dropped,
}

/// A first `Need-Seq` in flight, timed: the first frame of its smallest range to arrive
/// gives a round-trip sample (the sender retransmits at once, smallest first).
#[derive(Debug, Clone)]
struct Probe {
    sent: Instant,
    asked: RangeInclusive<u64>,
}

/// Most first `Need-Seq`s timed at once.
const MAX_PROBES: usize = 16;

/// State of the receiving direction.
#[derive(Debug)]
pub(crate) struct RecvSide {
    mode: Mode,
    /// Every frame below this number was delivered (or abandoned by the sender).
    next_expected: u64,
    /// The first number of this direction: nothing below it is ever acknowledged.
    start: u64,
    /// Ordered mode: frames received ahead of `next_expected`.
    reorder: BTreeMap<u64, Bytes>,
    reorder_bytes: usize,
    /// Unordered mode: numbers received (and delivered) ahead of `next_expected`.
    seen: RangeSet,
    /// Delivered messages the application has not taken yet; they count against the bounds.
    ready_frames: usize,
    ready_bytes: usize,
    max_frames: usize,
    max_bytes: usize,
    window: u64,
    max_need_ranges: usize,
    ack_every: u32,
    /// Numbers asked for since the gap opened.
    nacked: RangeSet,
    /// Numbers to ask for in the next `Need-Seq`.
    pending_need: RangeSet,
    /// Consecutive `Need-Seq` repeats without progress.
    nack_backoff: u32,
    /// The first `Need-Seq`s being timed, oldest first.
    probes: VecDeque<Probe>,
    /// `pending_need` holds a repeat: what it asks for was asked before.
    repeat_pending: bool,
    /// In-order frames received since the last ack went out.
    unacked: u32,
    /// An ack should go out now.
    ack_due: bool,
}

impl RecvSide {
    pub(crate) fn new(start: u64, mode: Mode, config: &Config) -> Self {
        Self {
            mode,
            next_expected: start,
            start,
            reorder: BTreeMap::new(),
            reorder_bytes: 0,
            seen: RangeSet::new(),
            ready_frames: 0,
            ready_bytes: 0,
            max_frames: config.recv_max_frames,
            max_bytes: config.recv_max_bytes,
            window: config.recv_window,
            max_need_ranges: config.max_need_ranges,
            ack_every: config.ack_every,
            nacked: RangeSet::new(),
            pending_need: RangeSet::new(),
            nack_backoff: 0,
            probes: VecDeque::new(),
            repeat_pending: false,
            unacked: 0,
            ack_due: false,
        }
    }

    /// Starts again from `start`; delivered messages not yet taken stay counted.
    pub(crate) fn restart(&mut self, start: u64, config: &Config) {
        let (ready_frames, ready_bytes) = (self.ready_frames, self.ready_bytes);
        *self = Self {
            ready_frames,
            ready_bytes,
            ..Self::new(start, self.mode, config)
        };
    }

    pub(crate) fn next_expected(&self) -> u64 {
        self.next_expected
    }

    /// The cumulative ack (docs/PROTOCOL.md §8.1): the highest number up to which every
    /// frame was received (delivered, or abandoned by the sender); `None` before the first.
    pub(crate) fn ack(&self) -> Option<u64> {
        (self.next_expected > self.start).then(|| self.next_expected - 1)
    }

    pub(crate) fn nack_backoff(&self) -> u32 {
        self.nack_backoff
    }

    /// Frames and bytes held: reorder buffer plus delivered messages not yet taken.
    pub(crate) fn buffered(&self) -> (usize, usize) {
        (
            self.reorder.len() + self.ready_frames,
            self.reorder_bytes + self.ready_bytes,
        )
    }

    fn has_room(&self, len: usize) -> bool {
        let (frames, bytes) = self.buffered();
        frames < self.max_frames && bytes.checked_add(len).is_some_and(|b| b <= self.max_bytes)
    }

    /// Refuses a frame that could never fit the receive buffer.
    pub(crate) fn check_frame(&self, len: usize) -> Result<(), SeqError> {
        if len > self.max_bytes {
            return Err(SeqError::FrameTooLarge {
                len,
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    fn deliver(&mut self, seq: u64, payload: Bytes, events: &mut VecDeque<Event>) {
        self.ready_frames += 1;
        self.ready_bytes += payload.len();
        events.push_back(Event::Deliver { seq, payload });
    }

    /// The application took a delivered message of `len` bytes.
    pub(crate) fn on_taken(&mut self, len: usize) {
        self.ready_frames = self.ready_frames.saturating_sub(1);
        self.ready_bytes = self.ready_bytes.saturating_sub(len);
    }

    /// Takes a data frame (its size already checked), delivering what it makes deliverable.
    pub(crate) fn on_data(
        &mut self,
        seq: u64,
        payload: Bytes,
        events: &mut VecDeque<Event>,
    ) -> Arrival {
        let duplicate = seq < self.next_expected
            || match self.mode {
                Mode::Ordered => self.reorder.contains_key(&seq),
                Mode::Unordered => self.seen.contains(seq),
            };
        if duplicate {
            return Arrival::Duplicate;
        }
        // `u64::MAX` is never assigned by a sender; refusing it keeps `seq + 1` in range.
        if seq == u64::MAX || seq >= self.next_expected.saturating_add(self.window) {
            tracing::debug!(
                seq,
                next = self.next_expected,
                "frame beyond the receive window dropped"
            );
            return Arrival::Dropped;
        }
        if seq == self.next_expected {
            // Frames held for reordering give way to the one that lets delivery go on; only
            // delivered messages the application has not taken can keep it out.
            while !self.has_room(payload.len()) {
                let Some((&high, _)) = self.reorder.last_key_value() else {
                    break;
                };
                if let Some(dropped) = self.reorder.remove(&high) {
                    self.reorder_bytes -= dropped.len();
                }
                tracing::debug!(
                    seq = high,
                    "receive buffer full: dropped a frame held ahead"
                );
            }
        }
        if !self.has_room(payload.len()) {
            tracing::debug!(seq, "receive buffer full: frame dropped");
            return Arrival::Dropped;
        }
        if seq == self.next_expected {
            let filled_gap = self.has_ahead();
            self.deliver(seq, payload, events);
            self.next_expected = seq + 1;
            self.drain(events);
            return Arrival::Delivered { filled_gap };
        }
        match self.mode {
            Mode::Ordered => {
                self.reorder_bytes += payload.len();
                self.reorder.insert(seq, payload);
            }
            Mode::Unordered => {
                self.seen.insert(seq);
                if self.seen.range_count() > self.max_frames {
                    self.seen.remove(seq);
                    tracing::debug!(seq, "too many gaps tracked: frame dropped");
                    return Arrival::Dropped;
                }
                self.deliver(seq, payload, events);
            }
        }
        Arrival::Ahead
    }

    /// Moves `next_expected` past everything already received right after it.
    fn drain(&mut self, events: &mut VecDeque<Event>) {
        match self.mode {
            Mode::Ordered => {
                while let Some(payload) = self.reorder.remove(&self.next_expected) {
                    self.reorder_bytes -= payload.len();
                    let seq = self.next_expected;
                    self.deliver(seq, payload, events);
                    self.next_expected = seq + 1;
                }
            }
            Mode::Unordered => {
                let first = self.seen.ranges().next();
                if let Some(first) = first.filter(|r| *r.start() == self.next_expected) {
                    let end = *first.end();
                    self.seen.remove_range(first);
                    // `end < u64::MAX`: that number is never accepted.
                    self.next_expected = end + 1;
                }
            }
        }
    }

    /// Whether anything was received ahead of a gap.
    fn has_ahead(&self) -> bool {
        match self.mode {
            Mode::Ordered => !self.reorder.is_empty(),
            Mode::Unordered => !self.seen.is_empty(),
        }
    }

    /// The numbers missing below the highest received, smallest first, at most
    /// `max_need_ranges` ranges.
    fn missing(&self) -> RangeSet {
        let have: Box<dyn Iterator<Item = (u64, u64)> + '_> = match self.mode {
            Mode::Ordered => Box::new(self.reorder.keys().map(|&k| (k, k))),
            Mode::Unordered => Box::new(self.seen.ranges().map(|r| r.into_inner())),
        };
        let mut missing = RangeSet::new();
        let mut cursor = self.next_expected;
        for (start, end) in have {
            if missing.range_count() >= self.max_need_ranges {
                break;
            }
            if start > cursor {
                missing.insert_range(cursor..=start - 1);
            }
            cursor = end.saturating_add(1);
        }
        missing
    }

    /// A frame arrived ahead of a gap. docs/PROTOCOL.md §8.2: ask at once for what is
    /// missing, but only once per gap: while a request is outstanding (`nack_armed`) only
    /// newly revealed holes are asked for. Returns whether to start the repeat timer.
    pub(crate) fn on_ahead(&mut self, nack_armed: bool) -> bool {
        let missing = self.missing();
        if !nack_armed {
            self.pending_need.extend(missing.ranges());
            self.nacked = missing;
            return true;
        }
        let mut new = missing;
        for range in self.nacked.ranges() {
            new.remove_range(range);
        }
        self.nacked.extend(new.ranges());
        self.pending_need.extend(new.ranges());
        false
    }

    /// The repeat timer fired: ask again for everything still missing. Returns whether the
    /// gap persists (restart the timer).
    pub(crate) fn on_nack_timer(&mut self) -> bool {
        let missing = self.missing();
        if missing.is_empty() {
            self.nacked = RangeSet::new();
            self.nack_backoff = 0;
            return false;
        }
        self.nack_backoff = self.nack_backoff.saturating_add(1);
        tracing::debug!(%missing, backoff = self.nack_backoff, "gap persists: asking again");
        self.repeat_pending = true;
        self.pending_need.extend(missing.ranges());
        self.nacked = missing;
        true
    }

    /// `next_expected` moved: forget requests below it. Returns whether no gap is left
    /// (stop the repeat timer).
    pub(crate) fn after_advance(&mut self) -> bool {
        self.nack_backoff = 0;
        if !self.has_ahead() {
            self.nacked = RangeSet::new();
            self.pending_need = RangeSet::new();
            self.repeat_pending = false;
            return true;
        }
        if let Some(below) = self.next_expected.checked_sub(1) {
            self.nacked.remove_range(0..=below);
            self.pending_need.remove_range(0..=below);
        }
        false
    }

    /// The `Need-Seq` to send at `now`, if any (at most `max_need_ranges` ranges).
    ///
    /// A first request (new holes only) is timed; a repeat stops all timing, since a frame
    /// arriving then may answer either request (Karn's rule).
    pub(crate) fn take_need(&mut self, now: Instant) -> Option<RangeSet> {
        if self.pending_need.is_empty() {
            return None;
        }
        let pending = std::mem::take(&mut self.pending_need);
        let need: RangeSet = pending.ranges().take(self.max_need_ranges).collect();
        if std::mem::take(&mut self.repeat_pending) {
            self.probes.clear();
        } else if let Some(asked) = need.ranges().next() {
            if self.probes.len() == MAX_PROBES {
                self.probes.pop_front();
            }
            self.probes.push_back(Probe { sent: now, asked });
        }
        Some(need)
    }

    /// Frame `seq` arrived at `now`: the round-trip sample it gives, if it is the first
    /// answer to a timed `Need-Seq`. The sender answers in order, so older requests still
    /// unanswered were lost (or their answers were): they are no longer timed, lest a late
    /// retransmission for another cause pass for their answer.
    pub(crate) fn probe_sample(&mut self, seq: u64, now: Instant) -> Option<Duration> {
        let answered = self
            .probes
            .iter()
            .position(|probe| probe.asked.contains(&seq))?;
        let probe = self.probes.drain(..=answered).next_back()?;
        Some(now.saturating_duration_since(probe.sent))
    }

    /// The sender bowed out: nothing it has not sent below `next` will come. Reports the
    /// abandoned numbers (before delivering what was buffered past them) and moves on.
    pub(crate) fn on_ignore(
        &mut self,
        next: u64,
        events: &mut VecDeque<Event>,
    ) -> Option<RangeSet> {
        self.ack_due = true;
        self.probes.clear();
        if next <= self.next_expected {
            return None;
        }
        let mut abandoned = RangeSet::new();
        abandoned.insert_range(self.next_expected..=next - 1);
        match self.mode {
            Mode::Ordered => {
                for &seq in self.reorder.range(..next).map(|(seq, _)| seq) {
                    abandoned.remove(seq);
                }
            }
            Mode::Unordered => {
                for range in self.seen.ranges() {
                    abandoned.remove_range(range);
                }
                self.seen.remove_range(0..=next - 1);
            }
        }
        tracing::debug!(%abandoned, next, "peer bowed out: sequence abandoned");
        if !abandoned.is_empty() {
            events.push_back(Event::SequenceAbandoned {
                ranges: abandoned.clone(),
            });
        }
        if self.mode == Mode::Ordered {
            let above = self.reorder.split_off(&next);
            for (seq, payload) in std::mem::replace(&mut self.reorder, above) {
                self.reorder_bytes -= payload.len();
                self.deliver(seq, payload, events);
            }
        }
        self.next_expected = next;
        self.drain(events);
        Some(abandoned)
    }

    /// Notes an arrival for the ack policy. Returns whether to start the ack-delay timer.
    pub(crate) fn note_arrival(&mut self, arrival: Arrival) -> bool {
        match arrival {
            // A duplicate means our ack was lost; a closed hole releases a waiting sender.
            Arrival::Duplicate | Arrival::Delivered { filled_gap: true } => {
                self.ack_due = true;
                false
            }
            Arrival::Delivered { filled_gap: false } | Arrival::Ahead => {
                self.unacked = self.unacked.saturating_add(1);
                if self.unacked >= self.ack_every {
                    self.ack_due = true;
                    return false;
                }
                true
            }
            Arrival::Dropped => false,
        }
    }

    /// The ack delay passed: ack what is waiting.
    pub(crate) fn on_ack_delay(&mut self) {
        if self.unacked > 0 {
            self.ack_due = true;
        }
    }

    /// An ack (standalone, or on data or `Need-Seq`) went out.
    pub(crate) fn on_ack_sent(&mut self) {
        self.unacked = 0;
        self.ack_due = false;
    }

    /// The standalone ack to send now, if one is due and there is anything to acknowledge.
    pub(crate) fn take_ack_due(&mut self) -> Option<u64> {
        if std::mem::take(&mut self.ack_due) {
            self.ack()
        } else {
            None
        }
    }
}
