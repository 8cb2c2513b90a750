//! `SendSide`: the sending direction: numbering, cumulative acks (and the round-trip
//! samples they give), retransmission on `Need-Seq` (smallest first) and on timeout, holding
//! new frames back while a `Need-Seq` is outstanding, and bowing out (`Ignore-Seq`) when
//! asked for a frame no longer held.

use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_wire::RangeSet;

use crate::config::{Config, Overflow};
use crate::send_buffer::SendBuffer;
use crate::SeqError;

/// What the sending direction wants on the wire next.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A data frame, new or retransmitted.
    Data {
        seq: u64,
        payload: Bytes,
        retransmission: bool,
    },
    /// The bow-out: every frame below `next` that the peer lacks will never come.
    IgnoreSeq { next: u64 },
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AckOutcome {
    /// It acknowledged something new.
    pub(crate) progress: bool,
    /// A writer blocked by a full buffer may try again.
    pub(crate) writable: bool,
    /// A round-trip sample: the time since the newest frame it newly acknowledged was sent,
    /// when that frame was sent once and after every retransmission of the others it newly
    /// acknowledged (Karn's rule).
    pub(crate) rtt_sample: Option<Duration>,
}

/// State of the sending direction.
#[derive(Debug)]
pub(crate) struct SendSide {
    buf: SendBuffer,
    overflow: Overflow,
    /// The peer has every frame below this number (one past its cumulative ack).
    acked: u64,
    /// First number never transmitted. Frames forgotten before their first transmission
    /// count as transmitted and lost, so `buf.front() <= next_unsent <= buf.next()`. A
    /// resume moves it back to the peer's number, to send the rest again.
    next_unsent: u64,
    /// First number never transmitted on any connection: what went out before a resume
    /// still counts as sent for the peer's acks and `Need-Seq`s, which may name it before
    /// it goes out again. `next_unsent <= sent_high <= buf.next()`.
    sent_high: u64,
    /// Frames to transmit again, smallest first.
    retransmit: RangeSet,
    /// Frames a `Need-Seq` asked for, not yet acknowledged.
    requested: RangeSet,
    /// New frames wait while `acked < hold_until` (a `Need-Seq` or bow-out is outstanding).
    hold_until: u64,
    /// The bow-out in force until the peer acknowledges `next`.
    ignore_next: Option<u64>,
    /// The bow-out should be (re)transmitted.
    ignore_due: bool,
    /// Every number below this was already reported in an `Event::BowedOut`.
    reported_gone: u64,
    /// Consecutive retransmission timeouts without progress.
    rto_backoff: u32,
    /// `send` refused a message for lack of room; the next progress emits `Writable`.
    blocked: bool,
}

impl SendSide {
    pub(crate) fn new(start: u64, config: &Config) -> Self {
        Self {
            buf: SendBuffer::new(start, config.send_max_frames, config.send_max_bytes),
            overflow: config.overflow,
            acked: start,
            next_unsent: start,
            sent_high: start,
            retransmit: RangeSet::new(),
            requested: RangeSet::new(),
            hold_until: start,
            ignore_next: None,
            ignore_due: false,
            reported_gone: start,
            rto_backoff: 0,
            blocked: false,
        }
    }

    /// Number the next message gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.buf.next()
    }

    /// Frames and bytes held in the retransmit buffer.
    pub(crate) fn buffered(&self) -> (usize, usize) {
        (self.buf.frames(), self.buf.bytes())
    }

    pub(crate) fn rto_backoff(&self) -> u32 {
        self.rto_backoff
    }

    /// Whether new frames are held back for a `Need-Seq` (or a bow-out): the ack this side
    /// waits for is one the peer sends at once, on the gap it closes or the duplicate.
    pub(crate) fn awaits_prompt_ack(&self) -> bool {
        self.acked < self.hold_until
    }

    /// Whether something sent waits for an acknowledgement (data or a bow-out).
    pub(crate) fn outstanding(&self) -> bool {
        self.acked < self.next_unsent || self.ignore_next.is_some()
    }

    /// Whether every message handed to `send` is acknowledged.
    pub(crate) fn is_flushed(&self) -> bool {
        self.acked == self.buf.next() && self.ignore_next.is_none()
    }

    fn exhausted(&self) -> bool {
        self.buf.next() >= u64::MAX - 1
    }

    /// Whether `send` would accept a payload of `len` bytes now.
    pub(crate) fn can_send(&self, len: usize) -> bool {
        len <= self.buf.max_bytes()
            && !self.exhausted()
            && (self.overflow == Overflow::DropOldest || self.buf.has_room(len))
    }

    /// Numbers and buffers a message.
    pub(crate) fn send(&mut self, payload: Bytes) -> Result<u64, SeqError> {
        let len = payload.len();
        if len > self.buf.max_bytes() {
            return Err(SeqError::PayloadTooLarge {
                len,
                max: self.buf.max_bytes(),
            });
        }
        if self.exhausted() {
            return Err(SeqError::SequenceExhausted);
        }
        match self.overflow {
            Overflow::Backpressure => {
                if !self.buf.has_room(len) {
                    self.blocked = true;
                    let (frames, bytes) = self.buffered();
                    return Err(SeqError::BufferFull { frames, bytes });
                }
            }
            Overflow::DropOldest => {
                while !self.buf.has_room(len) {
                    let Some(seq) = self.buf.evict_front() else {
                        break;
                    };
                    tracing::debug!(seq, "retransmit buffer full: forgot the oldest frame");
                }
            }
        }
        let seq = self.buf.push(payload)?;
        self.next_unsent = self.next_unsent.max(self.buf.front());
        self.sent_high = self.sent_high.max(self.next_unsent);
        Ok(seq)
    }

    /// Refuses an acknowledgement of frames never sent. `ack` is inclusive (docs/PROTOCOL.md
    /// §8.1): every frame up to and including it arrived.
    pub(crate) fn check_ack(&self, ack: Option<u64>) -> Result<(), SeqError> {
        match ack {
            Some(ack) if ack >= self.sent_high => Err(SeqError::AckOfUnsent {
                ack,
                next: self.sent_high,
            }),
            _ => Ok(()),
        }
    }

    /// Applies a cumulative acknowledgement (already checked) of every frame up to and
    /// including `ack`, received at `now`.
    pub(crate) fn on_ack(&mut self, now: Instant, ack: u64) -> AckOutcome {
        // `ack < sent_high <= u64::MAX`, checked above.
        let below = ack + 1;
        if below <= self.acked {
            return AckOutcome::default();
        }
        tracing::trace!(ack, "acknowledged");
        // Frames forgotten unacknowledged (`DropOldest`) may have been sent twice: no sample.
        let all_held = self.acked >= self.buf.front();
        self.acked = below;
        // After a resume the peer may acknowledge frames sent before it and not since: they
        // need not go again, the rest still does. (Such an ack waited for a frame sent again
        // after them, so it gives no sample.)
        self.next_unsent = self.next_unsent.max(below);
        let released = self.buf.release_below(below);
        let rtt_sample = released.rtt_sample(now).filter(|_| all_held);
        self.retransmit.remove_range(0..=ack);
        self.requested.remove_range(0..=ack);
        if self.ignore_next.is_some_and(|next| below >= next) {
            self.ignore_next = None;
            self.ignore_due = false;
        }
        self.rto_backoff = 0;
        AckOutcome {
            progress: true,
            writable: std::mem::take(&mut self.blocked),
            rtt_sample,
        }
    }

    /// Refuses a `Need-Seq` with too many ranges or naming frames never sent.
    pub(crate) fn check_need(&self, ranges: &RangeSet, max_ranges: usize) -> Result<(), SeqError> {
        if ranges.range_count() > max_ranges {
            return Err(SeqError::TooManyRanges {
                count: ranges.range_count(),
                max: max_ranges,
            });
        }
        match ranges.last() {
            Some(seq) if seq >= self.sent_high => Err(SeqError::NeedSeqNotSent {
                seq,
                next: self.sent_high,
            }),
            _ => Ok(()),
        }
    }

    /// Schedules the frames a `Need-Seq` (already checked) asks for and holds new frames
    /// back until they are acknowledged. When some are no longer held, bows out and returns
    /// the unacknowledged numbers the bow-out covers that were not reported before.
    pub(crate) fn on_need(&mut self, ranges: &RangeSet) -> Option<RangeSet> {
        let front = self.buf.front();
        let mut gone = RangeSet::new();
        for range in ranges.ranges() {
            let (start, end) = range.into_inner();
            // Below `acked` the peer has them already: a stale request.
            let start = start.max(self.acked);
            if start > end {
                continue;
            }
            if start < front {
                gone.insert_range(start..=end.min(front - 1));
            }
            let held = start.max(front);
            if held <= end {
                self.retransmit.insert_range(held..=end);
                self.requested.insert_range(held..=end);
                self.hold_until = self.hold_until.max(end.saturating_add(1));
            }
        }
        if gone.is_empty() {
            return None;
        }
        // docs/PROTOCOL.md §8.2, §8.3: a sender that no longer holds a requested frame bows
        // out; everything the peer lacks below the oldest frame still held is abandoned.
        tracing::debug!(missing = %gone, next = front, "asked for forgotten frames: bowing out");
        self.ignore_next = Some(self.ignore_next.map_or(front, |n| n.max(front)));
        self.ignore_due = true;
        self.hold_until = self.hold_until.max(front);
        // Report every unacknowledged number the bow-out covers, once.
        let from = self.acked.max(self.reported_gone);
        self.reported_gone = self.reported_gone.max(front);
        (from < front).then(|| RangeSet::from_iter([from..=front - 1]))
    }

    /// Carries on over a new connection (docs/PROTOCOL.md §10): the peer received every frame
    /// below `peer_next`. Those are released; every frame sent after them is sent again,
    /// in order, as if never sent (their first transmission stays recorded, so no
    /// round-trip sample comes from them). Outstanding `Need-Seq` requests and holds are
    /// forgotten: the retransmission covers them.
    pub(crate) fn resume(&mut self, now: Instant, peer_next: u64) -> Result<AckOutcome, SeqError> {
        let held = self.acked.max(self.buf.front());
        if peer_next > self.sent_high || peer_next < held {
            return Err(SeqError::ResumeMismatch {
                peer_next,
                held,
                next: self.sent_high,
            });
        }
        let outcome = match peer_next.checked_sub(1) {
            Some(ack) if peer_next > self.acked => self.on_ack(now, ack),
            _ => AckOutcome::default(),
        };
        self.next_unsent = self.acked;
        self.retransmit = RangeSet::new();
        self.requested = RangeSet::new();
        self.hold_until = self.acked;
        self.ignore_next = None;
        self.ignore_due = false;
        self.rto_backoff = 0;
        Ok(AckOutcome {
            rtt_sample: None,
            ..outcome
        })
    }

    /// The retransmission timer fired: send the oldest unacknowledged frame again, and the
    /// newest too so the peer learns how far the loss goes; repeat a pending bow-out. While
    /// new frames are held back for a `Need-Seq`, its answer is presumed lost: every frame
    /// asked for and not yet acknowledged goes again.
    pub(crate) fn on_rto(&mut self) {
        if self.ignore_next.is_some() {
            self.ignore_due = true;
        }
        let oldest = self.acked.max(self.buf.front());
        if oldest < self.next_unsent {
            self.retransmit.insert(oldest);
            self.retransmit.insert(self.next_unsent - 1);
        }
        if self.awaits_prompt_ack() {
            self.retransmit.extend(self.requested.ranges());
        }
        self.rto_backoff = self.rto_backoff.saturating_add(1);
        tracing::debug!(oldest, backoff = self.rto_backoff, "retransmission timeout");
    }

    /// The next thing to transmit at `now`: a bow-out, then retransmissions from the
    /// smallest number up, then new frames unless held back.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Outgoing> {
        if std::mem::take(&mut self.ignore_due) {
            if let Some(next) = self.ignore_next {
                return Some(Outgoing::IgnoreSeq { next });
            }
        }
        while let Some(seq) = self.retransmit.first() {
            self.retransmit.remove(seq);
            if seq < self.acked {
                continue;
            }
            // A frame forgotten since it was scheduled is skipped: if the peer still lacks
            // it, its next Need-Seq gets the bow-out.
            if let Some(payload) = self.buf.get(seq).cloned() {
                self.buf.on_transmit(seq, now);
                return Some(Outgoing::Data {
                    seq,
                    payload,
                    retransmission: true,
                });
            }
        }
        // docs/PROTOCOL.md §8.2: no new frames until the requested ones are acknowledged.
        if self.acked < self.hold_until || self.next_unsent >= self.buf.next() {
            return None;
        }
        let seq = self.next_unsent;
        let payload = self.buf.get(seq)?.clone();
        self.buf.on_transmit(seq, now);
        self.next_unsent += 1;
        self.sent_high = self.sent_high.max(self.next_unsent);
        Some(Outgoing::Data {
            seq,
            payload,
            retransmission: false,
        })
    }
}
