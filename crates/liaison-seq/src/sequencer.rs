//! `Sequencer`: one session's sequencing in both directions, driven by messages, timer ticks
//! and sends, with no I/O and no clock of its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::Config;
use crate::recv::{Arrival, RecvSide};
use crate::rtt::RttEstimator;
use crate::send::{Outgoing, SendSide};
use crate::timer::{Timer, Timers};
use crate::{Buffered, Event, Mode, RttEstimate, SeqError, Transmit};

/// Sequencing of one session, both directions: numbers outgoing messages, acknowledges,
/// detects gaps and asks for them (`Need-Seq`), retransmits, reorders or deduplicates, and
/// bows out (`Ignore-Seq`) when it cannot comply.
///
/// Sans-IO: it sends nothing and reads no clock. A driver feeds it and drains it, in this
/// order, every time something happens:
///
/// 1. **Inputs**: [`handle`](Self::handle) for each message from the peer,
///    [`handle_timeout`](Self::handle_timeout) when the deadline of `poll_timeout` has
///    passed, [`send`](Self::send) for the application's messages (on
///    [`SeqError::BufferFull`] wait for [`Event::Writable`]).
/// 2. **Transmit**: call [`poll_transmit`](Self::poll_transmit) until it returns `None`,
///    sending each message (if the transport is not ready, hold the message and stop
///    polling; nothing is lost by polling later).
/// 3. **Events**: call [`poll_event`](Self::poll_event) until it returns `None`; deliveries
///    count against the receive buffer until taken.
/// 4. **Timer**: sleep until [`poll_timeout`](Self::poll_timeout) (or the next input).
///
/// Every input may make new transmits, events and deadlines, so the driver loops through all
/// four steps after each.
///
/// The timers derive from a round-trip estimate ([`rtt`](Self::rtt)) sampled from acks and
/// from the answers to `Need-Seq`; [`Config`]'s docs give the formulas.
///
/// ```text
///  sender                                 receiver
///  send(m) -> seq n
///  Data{n} ------------------ lost
///  Data{n+1} ---------------------------> ahead of n: buffered (ordered), NeedSeq{n} at once
///            <--------------------------- NeedSeq{n, ack: n-1}
///  retransmit n, hold new frames
///  Data{n} -----------------------------> delivers n, n+1; ack at once (hole closed)
///            <--------------------------- Ack{n+1}
///  release n, n+1; send new frames again
///
///  asked for a frame no longer held (Overflow::DropOldest only):
///  IgnoreSeq{oldest held} --------------> SequenceAbandoned{missing below it}; Ack
/// ```
#[derive(Debug)]
pub struct Sequencer {
    mode: Mode,
    config: Config,
    send: SendSide,
    recv: RecvSide,
    rtt: RttEstimator,
    timers: Timers,
    events: VecDeque<Event>,
}

impl Sequencer {
    /// A sequencer whose both directions start at 0.
    pub fn new(mode: Mode, config: Config) -> Self {
        Self::with_start(mode, config, 0, 0)
    }

    /// A sequencer with negotiated first numbers: `send_start` for the messages it sends,
    /// `recv_start` for those it receives.
    pub fn with_start(mode: Mode, config: Config, send_start: u64, recv_start: u64) -> Self {
        Self {
            send: SendSide::new(send_start, &config),
            recv: RecvSide::new(recv_start, mode, &config),
            rtt: RttEstimator::default(),
            mode,
            config,
            timers: Timers::default(),
            events: VecDeque::new(),
        }
    }

    /// The session mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The limits and timings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The number the next message sent gets.
    pub fn next_send_seq(&self) -> u64 {
        self.send.next_seq()
    }

    /// Every received number below this one was delivered (or abandoned by the peer).
    pub fn next_recv_seq(&self) -> u64 {
        self.recv.next_expected()
    }

    /// What the buffers hold now.
    pub fn buffered(&self) -> Buffered {
        let (send_frames, send_bytes) = self.send.buffered();
        let (recv_frames, recv_bytes) = self.recv.buffered();
        Buffered {
            send_frames,
            send_bytes,
            recv_frames,
            recv_bytes,
        }
    }

    /// The round-trip estimate, once there is a sample: from an ack whose newest newly
    /// acknowledged frame was sent once, after every retransmission of the others it
    /// covers, from the first frame to answer a first (not repeated) `Need-Seq`, or one
    /// given with [`add_rtt_sample`](Self::add_rtt_sample).
    pub fn rtt(&self) -> Option<RttEstimate> {
        self.rtt.estimate()
    }

    /// Takes a round-trip sample measured outside the sequencer on the same link (a
    /// session's handshake), so that its first timeouts derive from the link rather than
    /// from `initial_rto`. The sample must be unambiguous (an answer to a message sent
    /// once).
    pub fn add_rtt_sample(&mut self, sample: Duration) {
        self.rtt.on_sample(sample, "outside");
    }

    /// The retransmission timeout in force now, backoff included: the wait from the last
    /// transmission or progress before the oldest unacknowledged frame is sent again.
    pub fn rto(&self) -> Duration {
        self.rtt.rto(
            &self.config,
            self.send.awaits_prompt_ack(),
            self.send.rto_backoff(),
        )
    }

    /// Whether every message sent so far is acknowledged by the peer.
    pub fn is_flushed(&self) -> bool {
        self.send.is_flushed()
    }

    /// Whether [`send`](Self::send) would accept a payload of `len` bytes now.
    pub fn can_send(&self, len: usize) -> bool {
        self.send.can_send(len)
    }

    /// Queues a message; returns its sequence number. It goes out through
    /// [`poll_transmit`](Self::poll_transmit) and stays in the retransmit buffer until
    /// acknowledged.
    ///
    /// # Errors
    ///
    /// [`SeqError::BufferFull`] when the retransmit buffer is full (with
    /// [`Overflow::Backpressure`](crate::Overflow::Backpressure)): wait for
    /// [`Event::Writable`]. [`SeqError::PayloadTooLarge`] when the payload exceeds the whole
    /// buffer, [`SeqError::SequenceExhausted`] after 2^64 - 2 messages.
    pub fn send(&mut self, payload: Bytes) -> Result<u64, SeqError> {
        let seq = self.send.send(payload)?;
        tracing::trace!(seq, "queued");
        Ok(seq)
    }

    /// Takes a message from the peer.
    ///
    /// # Errors
    ///
    /// A peer protocol violation ([`SeqError::is_peer_violation`]): an ack or a `Need-Seq`
    /// for frames never sent, too many ranges, a frame larger than the receive buffer. The
    /// message is then ignored as a whole; the session layer closes the session.
    pub fn handle(&mut self, now: Instant, message: Transmit) -> Result<(), SeqError> {
        match message {
            Transmit::Data { seq, ack, payload } => {
                self.send.check_ack(ack)?;
                self.recv.check_frame(payload.len())?;
                if let Some(ack) = ack {
                    self.apply_ack(now, ack);
                }
                self.on_data(now, seq, payload);
            }
            Transmit::Ack { ack } => {
                self.send.check_ack(Some(ack))?;
                self.apply_ack(now, ack);
            }
            Transmit::NeedSeq { ranges, ack } => {
                self.send.check_ack(ack)?;
                self.send.check_need(&ranges, self.config.max_need_ranges)?;
                if let Some(ack) = ack {
                    self.apply_ack(now, ack);
                }
                tracing::debug!(%ranges, "peer needs frames again");
                if let Some(ranges) = self.send.on_need(&ranges) {
                    self.events.push_back(Event::BowedOut { ranges });
                }
                // The timer now waits for the answer to these retransmissions, which the
                // peer acks at once.
                if self.send.outstanding() {
                    self.timers.set_after(Timer::Rto, now, self.rto());
                }
            }
            Transmit::IgnoreSeq { next } => {
                if self.recv.on_ignore(next, &mut self.events).is_some()
                    && self.recv.after_advance()
                {
                    self.timers.stop(Timer::Nack);
                }
            }
        }
        Ok(())
    }

    fn on_data(&mut self, now: Instant, seq: u64, payload: Bytes) {
        if let Some(sample) = self.recv.probe_sample(seq, now) {
            self.rtt.on_sample(sample, "Need-Seq answer");
            // A repeat armed before this estimate (say with the initial timeout) need not
            // wait longer than the estimate now says.
            self.timers
                .advance_to(Timer::Nack, now, self.nack_interval());
        }
        let arrival = self.recv.on_data(seq, payload, &mut self.events);
        tracing::trace!(seq, ?arrival, "data");
        match arrival {
            Arrival::Ahead => {
                if self.recv.on_ahead(self.timers.is_armed(Timer::Nack)) {
                    self.timers
                        .set_after(Timer::Nack, now, self.nack_interval());
                }
            }
            Arrival::Delivered { .. } => {
                if self.recv.after_advance() {
                    self.timers.stop(Timer::Nack);
                } else {
                    // A gap is left: it is asked for again if it persists one interval from
                    // this progress (a later hole may have been asked for only just now).
                    self.timers
                        .set_after(Timer::Nack, now, self.nack_interval());
                }
            }
            Arrival::Duplicate | Arrival::Dropped => {}
        }
        if self.recv.note_arrival(arrival) && !self.timers.is_armed(Timer::AckDelay) {
            self.timers
                .set_after(Timer::AckDelay, now, self.config.ack_delay);
        }
    }

    fn apply_ack(&mut self, now: Instant, ack: u64) {
        let outcome = self.send.on_ack(now, ack);
        if let Some(sample) = outcome.rtt_sample {
            self.rtt.on_sample(sample, "ack");
        }
        if outcome.progress {
            if self.send.outstanding() {
                self.timers.set_after(Timer::Rto, now, self.rto());
            } else {
                self.timers.stop(Timer::Rto);
            }
        }
        if outcome.writable {
            self.events.push_back(Event::Writable);
        }
    }

    fn nack_interval(&self) -> Duration {
        self.rtt
            .nack_interval(&self.config, self.recv.nack_backoff())
    }

    /// Fires every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.take_expired(now) {
            match timer {
                Timer::AckDelay => self.recv.on_ack_delay(),
                Timer::Nack => {
                    if self.recv.on_nack_timer() {
                        let wait = self.nack_interval();
                        tracing::debug!(?wait, rtt = ?self.rtt.estimate(), "next Need-Seq repeat");
                        self.timers.set_after(Timer::Nack, now, wait);
                    }
                }
                Timer::Rto => {
                    if self.send.outstanding() {
                        self.send.on_rto();
                        let wait = self.rto();
                        tracing::debug!(?wait, rtt = ?self.rtt.estimate(), "next retransmission timeout");
                        self.timers.set_after(Timer::Rto, now, wait);
                    }
                }
            }
        }
    }

    /// The next message for the peer: a `Need-Seq`, then the bow-out, then data
    /// (retransmissions smallest first, then new frames), then a standalone ack.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(ranges) = self.recv.take_need(now) {
            self.ack_sent();
            return Some(Transmit::NeedSeq {
                ranges,
                ack: self.recv.ack(),
            });
        }
        if let Some(outgoing) = self.send.poll(now) {
            if !self.timers.is_armed(Timer::Rto) {
                self.timers.set_after(Timer::Rto, now, self.rto());
            }
            return Some(match outgoing {
                Outgoing::IgnoreSeq { next } => Transmit::IgnoreSeq { next },
                Outgoing::Data {
                    seq,
                    payload,
                    retransmission,
                } => {
                    let ack = self.recv.ack();
                    if ack.is_some() {
                        self.ack_sent();
                    }
                    tracing::trace!(seq, ?ack, retransmission, "transmit");
                    Transmit::Data { seq, ack, payload }
                }
            });
        }
        let ack = self.recv.take_ack_due()?;
        self.ack_sent();
        Some(Transmit::Ack { ack })
    }

    fn ack_sent(&mut self) {
        self.recv.on_ack_sent();
        self.timers.stop(Timer::AckDelay);
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::Deliver { payload, .. } = &event {
            self.recv.on_taken(payload.len());
        }
        Some(event)
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Carries the session on over a new connection, after the old one was lost
    /// (docs/PROTOCOL.md §10): the peer states that it received every frame below
    /// `peer_next` (its [`next_recv_seq`](Self::next_recv_seq)). Frames below it are
    /// released from the retransmit buffer; every later frame goes out again, in order,
    /// before new ones. The receiving direction is unchanged: the peer does the same with
    /// this side's `next_recv_seq`, and duplicates are dropped as always.
    ///
    /// # Errors
    ///
    /// [`SeqError::ResumeMismatch`] when `peer_next` was never sent, or is below the frames
    /// this side still holds (then it cannot give the peer what it lacks). Nothing changes.
    pub fn resume(&mut self, now: Instant, peer_next: u64) -> Result<(), SeqError> {
        let outcome = self.send.resume(now, peer_next)?;
        tracing::debug!(peer_next, next = self.send.next_seq(), "resuming");
        self.timers.stop(Timer::Rto);
        if outcome.writable {
            self.events.push_back(Event::Writable);
        }
        Ok(())
    }

    /// Starts both directions again from 0, as after a re-registration: unacknowledged and
    /// unsent messages are dropped, buffered out-of-order frames too, timers stop. Events not
    /// yet taken stay, and so does the round-trip estimate (the path is the same). The
    /// session layer must keep frames from before the reset apart (they carry numbers of the
    /// old sequence).
    pub fn reset(&mut self) {
        tracing::debug!("sequence reset to 0");
        self.send = SendSide::new(0, &self.config);
        self.recv.restart(0, &self.config);
        self.timers = Timers::default();
    }
}
