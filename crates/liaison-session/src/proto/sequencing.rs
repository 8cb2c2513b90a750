//! `Sequencing`: a `liaison-seq` [`Sequencer`] mapped onto frames (docs/SESSION.md §7,
//! PROTOCOL.md §8): which frames are numbered, how acks, `NeedSeq` and the bow-out travel,
//! and how delivered messages become frames again.
//!
//! Outgoing, the sequencer holds each frame's payload (no copy) and a side table the
//! frame's kind, flags and exchange, numbered like the retransmit buffer; `seq` and `ack`
//! are written into the header when the frame is transmitted. Incoming, the sequencer holds
//! the received frame's whole encoding (no copy), whose header is read again on delivery.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_seq::{Event as SeqEvent, Mode, SeqError, Sequencer, Transmit};
use liaison_wire::{Flags, Frame, FrameKind, Limits, RangeSet, HEADER_LEN};

use super::Event;
use crate::{NegotiatedConfig, RetransmitConfig, SessionError};

/// Largest reorder window, in sequence numbers, beyond the buffers' own bounds.
const MIN_RECV_WINDOW: u64 = 4096;

/// Header fields of a frame in the retransmit buffer; the payload is the sequencer's.
#[derive(Debug, Clone, Copy)]
struct Meta {
    kind: FrameKind,
    flags: Flags,
    exchange: u64,
}

/// What an incoming frame was to the sequencing.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A sequencing frame, handled (numbered data, `Ack`, `NeedSeq`).
    Consumed,
    /// The peer's bow-out (`Bye` with `IGNORE_SEQ`), handled: the session ends.
    BowOut,
    /// Not a sequencing frame: the session handles it as without sequencing.
    Other(Frame),
}

/// Why sequencing ends the session.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The peer bowed out; these of its numbers will never arrive.
    Abandoned(RangeSet),
    /// This side bows out: send `Bye` with `IGNORE_SEQ` and `next` in `seq`, end with
    /// `ranges` given up.
    BowOut { next: u64, ranges: RangeSet },
}

/// One session's sequencing, both directions.
#[derive(Debug)]
pub(crate) struct Sequencing {
    sequencer: Sequencer,
    /// Header fields of the frames in the retransmit buffer, `sent_front` first.
    sent: VecDeque<Meta>,
    sent_front: u64,
    /// A frame the retransmit buffer had no room for; sent on [`SeqEvent::Writable`].
    blocked: Option<Frame>,
    /// Ranges of this side's bow-out, until the `Ignore-Seq` goes out.
    bowed_out: Option<RangeSet>,
    /// Most ranges a `NeedSeq` this side sends may hold (the control frame must fit the
    /// transport).
    max_need_out: usize,
    /// Decoding limits of a delivered frame's header (already checked on arrival).
    limits: Limits,
}

/// Whether frames of `kind` are numbered: every exchange kind (PROTOCOL.md §8).
pub(crate) fn is_sequenced(kind: FrameKind) -> bool {
    kind.is_exchange()
}

/// `bytes` as `usize`, saturating.
fn to_usize(bytes: u32) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

impl Sequencing {
    /// Sequencing in `mode` for a session established with `negotiated`, decoding with
    /// `limits` and sending under `send_limits` (the transport's bound).
    ///
    /// docs/SESSION.md §7.6: the retransmit buffer holds `send_buffer` frames, the reorder
    /// buffer `receive_buffer` frames; each holds at most `max_buffer_bytes`, but always one
    /// largest frame. A `NeedSeq` accepted may hold `limits.max_ranges` ranges; one sent, as
    /// many as fit a control frame under `send_limits`.
    pub(crate) fn new(
        mode: Mode,
        negotiated: &NegotiatedConfig,
        retransmit: &RetransmitConfig,
        limits: &Limits,
        send_limits: &Limits,
    ) -> Self {
        let largest = to_usize(limits.max_any_payload());
        let per_frame = to_usize(negotiated.limits.max_frame_payload);
        let send_frames = to_usize(negotiated.limits.send_buffer);
        let recv_frames = to_usize(negotiated.limits.receive_buffer);
        let send_bytes = send_frames
            .saturating_mul(per_frame)
            .min(retransmit.max_buffer_bytes)
            .max(largest);
        // Received frames are held with their header.
        let recv_bytes = recv_frames
            .saturating_mul(per_frame.saturating_add(HEADER_LEN))
            .min(retransmit.max_buffer_bytes)
            .max(largest.saturating_add(HEADER_LEN));
        let window = u64::try_from(send_frames.max(recv_frames))
            .unwrap_or(u64::MAX)
            .saturating_mul(2)
            .max(MIN_RECV_WINDOW);
        let config = liaison_seq::Config::default()
            .with_send_buffer(send_frames, send_bytes)
            .with_overflow(retransmit.overflow)
            .with_recv_buffer(recv_frames, recv_bytes)
            .with_recv_window(window)
            .with_max_need_ranges(limits.max_ranges)
            .with_ack_delay(retransmit.ack_delay)
            .with_rto(retransmit.initial_rto, retransmit.max_rto)
            .with_min_rto(retransmit.min_rto);
        let room = to_usize(send_limits.max_control_payload).saturating_sub(4) / 16;
        Self {
            sequencer: Sequencer::new(mode, config),
            sent: VecDeque::new(),
            sent_front: 0,
            blocked: None,
            bowed_out: None,
            max_need_out: room.clamp(1, limits.max_ranges.max(1)),
            limits: Limits {
                max_frame_payload: u32::MAX,
                max_control_payload: u32::MAX,
                ..*limits
            },
        }
    }

    /// The sequencer, for inspection.
    pub(crate) fn sequencer(&self) -> &Sequencer {
        &self.sequencer
    }

    /// Seeds the round-trip estimate (with the handshake's).
    pub(crate) fn add_rtt_sample(&mut self, sample: Duration) {
        self.sequencer.add_rtt_sample(sample);
    }

    /// Whether a frame can be sent now without waiting for acknowledgements.
    pub(crate) fn is_writable(&self) -> bool {
        self.blocked.is_none()
    }

    /// Frames handed to the sequencing and not acknowledged by the peer: in the
    /// retransmit buffer (sent or not yet) or held back for room.
    pub(crate) fn unacknowledged(&self) -> u64 {
        let held = self.sequencer.buffered().send_frames + usize::from(self.blocked.is_some());
        u64::try_from(held).unwrap_or(u64::MAX)
    }

    /// Whether every frame sent is acknowledged by the peer.
    pub(crate) fn is_flushed(&self) -> bool {
        self.blocked.is_none() && self.sequencer.is_flushed()
    }

    /// Numbers and buffers an exchange frame. A frame the buffer has no room for is held
    /// until acks make room; a second one then is refused.
    pub(crate) fn send(&mut self, mut frame: Frame) -> Result<(), SessionError> {
        if self.blocked.is_some() {
            return Err(SessionError::SendBufferFull);
        }
        // The session writes `seq` and `ack` itself.
        frame.flags.remove(Flags::SEQ | Flags::ACK);
        frame.seq = 0;
        frame.ack = 0;
        match self.sequencer.send(frame.payload.clone()) {
            Ok(seq) => {
                self.record(seq, &frame);
                Ok(())
            }
            Err(SeqError::BufferFull { .. }) => {
                self.blocked = Some(frame);
                Ok(())
            }
            Err(e) => Err(SessionError::InvalidFrame(e.to_string())),
        }
    }

    fn record(&mut self, seq: u64, frame: &Frame) {
        if self.sent.is_empty() {
            self.sent_front = seq;
        }
        self.sent.push_back(Meta {
            kind: frame.kind,
            flags: frame.flags,
            exchange: frame.exchange,
        });
        self.prune();
    }

    /// Forgets the header fields of frames the retransmit buffer no longer holds
    /// (acknowledged, or forgotten with `DropOldest`).
    fn prune(&mut self) {
        let held = u64::try_from(self.sequencer.buffered().send_frames).unwrap_or(u64::MAX);
        let front = self.sequencer.next_send_seq().saturating_sub(held);
        while self.sent_front < front && self.sent.pop_front().is_some() {
            self.sent_front += 1;
        }
    }

    /// Takes a frame from the peer. `raw` is its encoding if at hand (it is kept instead of
    /// encoding the frame again). `Err` is a protocol violation, with its detail.
    pub(crate) fn handle(
        &mut self,
        now: Instant,
        frame: Frame,
        raw: Option<Bytes>,
    ) -> Result<Incoming, String> {
        let message = match frame.kind {
            kind if is_sequenced(kind) => {
                let Some(seq) = frame.sequence() else {
                    return Err(format!("{kind} frame without a sequence number"));
                };
                let ack = frame.acknowledgement();
                Transmit::Data {
                    seq,
                    ack,
                    payload: raw.unwrap_or_else(|| frame.to_bytes()),
                }
            }
            FrameKind::Ack => match frame.acknowledgement() {
                Some(ack) => Transmit::Ack { ack },
                None => return Err("Ack frame without an ack".into()),
            },
            FrameKind::NeedSeq => {
                // PROTOCOL.md §8.2: at most `max_ranges` ranges, checked before building.
                let ranges = RangeSet::decode(&frame.payload, self.limits.max_ranges)
                    .map_err(|e| format!("malformed NeedSeq: {e}"))?;
                Transmit::NeedSeq {
                    ranges,
                    ack: frame.acknowledgement(),
                }
            }
            FrameKind::Bye if frame.flags.contains(Flags::IGNORE_SEQ) => {
                // PROTOCOL.md §8.3: the bow-out carries the sender's next number in `seq`.
                let Some(next) = frame.sequence() else {
                    return Err("Ignore-Seq without a sequence number".into());
                };
                self.sequencer
                    .handle(now, Transmit::IgnoreSeq { next })
                    .map_err(|e| e.to_string())?;
                return Ok(Incoming::BowOut);
            }
            _ => return Ok(Incoming::Other(frame)),
        };
        self.sequencer
            .handle(now, message)
            .map_err(|e| e.to_string())?;
        self.prune();
        Ok(Incoming::Consumed)
    }

    /// Carries on over a new connection: the peer received every frame below `peer_next`
    /// (docs/PROTOCOL.md §10.1). `Err` says why that cannot be honoured.
    pub(crate) fn resume(&mut self, now: Instant, peer_next: u64) -> Result<(), String> {
        self.sequencer
            .resume(now, peer_next)
            .map_err(|e| e.to_string())?;
        self.prune();
        Ok(())
    }

    /// Fires the sequencer's timers due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.sequencer.handle_timeout(now);
    }

    /// The sequencer's next deadline.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.sequencer.poll_timeout()
    }

    /// Drains the sequencer: deliveries become [`Event::Frame`]s in `events`, messages for
    /// the peer become frames in `out`. Returns why the session must end, if it must; then
    /// nothing after the cause is delivered.
    pub(crate) fn pump(
        &mut self,
        now: Instant,
        out: &mut VecDeque<Frame>,
        events: &mut VecDeque<Event>,
    ) -> Option<Ending> {
        while let Some(event) = self.sequencer.poll_event() {
            match event {
                SeqEvent::Deliver { seq, payload } => match self.delivered(payload) {
                    Some(frame) => events.push_back(Event::Frame(frame)),
                    None => tracing::warn!(seq, "delivered frame no longer decodes"),
                },
                SeqEvent::SequenceAbandoned { ranges } => {
                    tracing::debug!(%ranges, "peer bowed out: sequence abandoned");
                    return Some(Ending::Abandoned(ranges));
                }
                SeqEvent::BowedOut { ranges } => {
                    let mut all = self.bowed_out.take().unwrap_or_default();
                    all.extend(ranges.ranges());
                    self.bowed_out = Some(all);
                }
                SeqEvent::Writable => self.unblock(),
                _ => {}
            }
        }
        while let Some(message) = self.sequencer.poll_transmit(now) {
            match message {
                Transmit::Data { seq, ack, payload } => {
                    let Some(meta) = seq
                        .checked_sub(self.sent_front)
                        .and_then(|i| usize::try_from(i).ok())
                        .and_then(|i| self.sent.get(i).copied())
                    else {
                        tracing::warn!(seq, "no header for a buffered frame");
                        continue;
                    };
                    let mut frame = Frame {
                        kind: meta.kind,
                        flags: meta.flags,
                        exchange: meta.exchange,
                        seq: 0,
                        ack: 0,
                        payload,
                    }
                    .with_seq(seq);
                    if let Some(ack) = ack {
                        frame = frame.with_ack(ack);
                    }
                    out.push_back(frame);
                }
                Transmit::Ack { ack } => out.push_back(Frame::ack(ack)),
                Transmit::NeedSeq { ranges, ack } => {
                    // The smallest gaps first: the rest is asked for again once they fill.
                    let ranges = if ranges.range_count() > self.max_need_out {
                        ranges.ranges().take(self.max_need_out).collect()
                    } else {
                        ranges
                    };
                    let mut frame = Frame::need_seq(&ranges);
                    if let Some(ack) = ack {
                        frame = frame.with_ack(ack);
                    }
                    out.push_back(frame);
                }
                Transmit::IgnoreSeq { next } => {
                    let ranges = self.bowed_out.take().unwrap_or_default();
                    return Some(Ending::BowOut { next, ranges });
                }
                _ => {}
            }
        }
        None
    }

    /// The retransmit buffer has room again: hand it the blocked frame.
    fn unblock(&mut self) {
        if let Some(frame) = self.blocked.take() {
            if let Err(e) = self.send(frame) {
                tracing::debug!(error = %e, "blocked frame refused");
            }
        }
    }

    /// A delivered frame, from its encoding, as the peer's layers above sent it: `seq` and
    /// `ack` belong to the sequencing.
    fn delivered(&self, raw: Bytes) -> Option<Frame> {
        let mut frame = Frame::decode(raw, &self.limits).ok()?;
        frame.flags.remove(Flags::SEQ | Flags::ACK);
        frame.seq = 0;
        frame.ack = 0;
        Some(frame)
    }
}
