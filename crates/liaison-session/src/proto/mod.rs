//! The sans-IO session core: [`Connection`], the state machine of one session from the
//! first frame to the last, with no sockets, no tasks and no clock. In an ordered or
//! unordered session it drives a `liaison-seq` sequencer over the exchange frames
//! (docs/SESSION.md §7).
//!
//! The [`Session`](crate::Session) driver wraps it; tests and other drivers can use it
//! directly.

mod handshake;
mod sequencing;
mod timer;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_seq::{ClientModePolicy, Sequencer};
use liaison_transport::Properties;
use liaison_wire::{Frame, FrameKind, Limits, RangeSet, HEADER_LEN};

pub use handshake::Established;
use handshake::{Ctx, Failure, Handshake, Step};
use sequencing::{Ending, Incoming, Sequencing};
use timer::{Timer, TimerTable};

use crate::auth::{Authenticator, Role};
use crate::messages::{self, Bye, ReasonCode, Reject};
use crate::{
    ClientConfig, HandshakeFailure, Origin, RetransmitConfig, RootCapability, SequencingMode,
    ServerConfig, SessionConfig, SessionError, TerminationReason,
};

/// Checks a frame of the layers above before it is queued: session kinds (handshake,
/// `Bye`, `Ping`, `Pong`, and in a sequenced session `Ack` and `NeedSeq`) are refused, and
/// so is anything the peer would refuse under `limits`.
pub(crate) fn check_outgoing(
    frame: &Frame,
    limits: &Limits,
    sequenced: bool,
) -> Result<(), SessionError> {
    if frame.kind.is_handshake()
        || matches!(
            frame.kind,
            FrameKind::Bye | FrameKind::Ping | FrameKind::Pong
        )
        || (sequenced && matches!(frame.kind, FrameKind::Ack | FrameKind::NeedSeq))
    {
        return Err(SessionError::InvalidFrame(format!(
            "{} frames belong to the session layer",
            frame.kind
        )));
    }
    frame
        .validate(limits)
        .map_err(|e| SessionError::InvalidFrame(e.to_string()))
}

/// The payload room of a transport whose largest frame is `max_frame` bytes.
pub(crate) fn transport_room(max_frame: usize) -> u32 {
    u32::try_from(max_frame.saturating_sub(HEADER_LEN)).unwrap_or(u32::MAX)
}

/// `limits` with both payload bounds within `room` (what the transport carries): the
/// limits outgoing frames are checked against.
pub(crate) fn within_room(limits: Limits, room: u32) -> Limits {
    Limits {
        max_frame_payload: limits.max_frame_payload.min(room),
        max_control_payload: limits.max_control_payload.min(room),
        ..limits
    }
}

/// `initial * 2^attempt`, capped at `max`.
fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

/// Over a lossy transport, a last `Bye` or `Reject` is sent this many more times.
const FAREWELL_REPEATS: u32 = 3;

/// Handshake frames remembered to recognise repeats (a handshake has a handful).
const MAX_REMEMBERED_HANDSHAKE: usize = 16;

/// The last frame of an ended session, repeated over a lossy transport (docs/SESSION.md
/// §7.6) until the transport ends or the repeats run out.
#[derive(Debug)]
struct Farewell {
    frame: Frame,
    left: u32,
    attempt: u32,
    /// Its timer runs (it starts when the copy in the queue is handed out).
    armed: bool,
}

/// Above this many queued frames, a `Ping` gets no `Pong`.
const MAX_QUEUED_PONGS: usize = 64;

/// What the core tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed. Emitted once, before any [`Frame`](Self::Frame).
    Established(Box<Established>),
    /// A frame for the layers above: `Data`, `Exchange*`, `Resume*`, and without
    /// sequencing `Ack` and `NeedSeq`. In a sequenced session exchange frames come exactly
    /// once, in sequence order (ordered) or as they arrive (unordered), without `SEQ` /
    /// `ACK`.
    Frame(Frame),
    /// The session ended. Emitted exactly once; nothing follows it.
    Terminated(TerminationReason),
}

/// Settings of one connection, from a [`ClientConfig`] or a [`ServerConfig`].
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) session: SessionConfig,
    /// Client: the mode asked for.
    pub(crate) sequencing: SequencingMode,
    /// Server: the modes accepted.
    pub(crate) sequencing_modes: Vec<SequencingMode>,
    pub(crate) root: Option<RootCapability>,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    /// Client: what to do when the server sets another mode.
    pub(crate) mode_policy: ClientModePolicy,
    /// Whether the transport delivers every frame (docs/SESSION.md §7.6).
    pub(crate) reliable: bool,
}

enum State {
    /// `None` only while a frame is being handled.
    Handshake(Option<Handshake>),
    Established(Box<Established>),
    Terminated(TerminationReason),
}

/// One session's protocol state machine (docs/SESSION.md), sans I/O.
///
/// # Driving it
///
/// Inputs: [`handle_bytes`](Self::handle_bytes) (or [`handle_frame`](Self::handle_frame))
/// for what the transport delivered, [`handle_timeout`](Self::handle_timeout) when the
/// deadline of [`poll_timeout`](Self::poll_timeout) passes,
/// [`handle_transport_closed`](Self::handle_transport_closed) /
/// [`handle_transport_error`](Self::handle_transport_error) when the transport ends, and the
/// user commands [`send`](Self::send), [`close`](Self::close), [`abort`](Self::abort),
/// [`cancel`](Self::cancel).
///
/// Right after construction a driver tells the core what its transport guarantees with
/// [`set_transport_properties`](Self::set_transport_properties) (without it the transport
/// is taken as reliable and ordered, with no frame size bound).
///
/// After every input a driver:
/// 1. sends every frame [`poll_transmit`](Self::poll_transmit) yields (one flush per batch),
/// 2. delivers every [`poll_event`](Self::poll_event),
/// 3. arms its timer for [`poll_timeout`](Self::poll_timeout),
/// 4. stops once [`is_drained`](Self::is_drained): terminated with nothing left to send.
///
/// It calls [`send`](Self::send) only while [`is_writable`](Self::is_writable): in a
/// sequenced session a full retransmit buffer holds one frame back, and refuses the next.
///
/// In a sequenced session (docs/SESSION.md §7) the core numbers exchange frames, acks,
/// asks for gaps, retransmits, and delivers each frame exactly once; a graceful
/// [`close`](Self::close) first waits until the peer acknowledged every frame.
///
/// Time only comes in as the `now` arguments; randomness (nonces, the session id) only
/// from the RNG given at construction.
///
/// ```text
///   Handshake ──(config answered)──▶ Established ──(Bye, close, abort, cancel,
///       │                                │         violation, idle timeout,
///       └──(Reject, failure, deadline)───┴──────── transport end)──▶ Terminated
/// ```
pub struct Connection {
    role: Role,
    settings: Settings,
    state: State,
    timers: TimerTable,
    transmits: VecDeque<Frame>,
    events: VecDeque<Event>,
    rng: Box<dyn rand::RngCore + Send>,
    tls: Option<Vec<Bytes>>,
    limits: Limits,
    receive_paused: bool,
    pings_sent: u64,
    /// Payload room of the transport's largest frame.
    room: u32,
    /// Outgoing frames are checked against these: `limits` within `room`.
    send_limits: Limits,
    /// The transport may lose, duplicate or reorder frames (docs/SESSION.md §7.6).
    lossy: bool,
    /// Handshake: the frames this side sent after the peer's last message (its flight).
    flight: Vec<Frame>,
    /// Handshake frames received from the peer, to recognise repeats (lossy transports).
    peer_handshake: Vec<Frame>,
    /// Client handshake retransmissions since the last progress.
    flight_attempt: u32,
    farewell: Option<Farewell>,
    sequencing: Option<Sequencing>,
    /// `send` queued sequenced frames that `poll_transmit` has yet to number.
    seq_dirty: bool,
    /// A graceful close waiting until the peer acknowledged every sequenced frame.
    closing: Option<TerminationReason>,
    /// Server: the mode requested and the other one set, when they differ.
    mode_offer: Option<(SequencingMode, SequencingMode)>,
}

/// Where the connection stands, without borrowing it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Established,
    Terminated,
}

impl Connection {
    /// A client connection; queues `Hello` at once. `tls_peer_certificates` is the
    /// transport's verified peer chain (DER, leaf first), if any.
    pub fn client(
        config: &ClientConfig,
        tls_peer_certificates: Option<Vec<Bytes>>,
        rng: Box<dyn rand::RngCore + Send>,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let settings = Settings {
            session: config.session.clone(),
            sequencing: config.sequencing,
            sequencing_modes: Vec::new(),
            root: None,
            authenticator: Arc::clone(&config.authenticator),
            mode_policy: config.mode_policy,
            reliable: true,
        };
        let mut conn = Self::new(Role::Client, settings, tls_peer_certificates, rng, now)?;
        let mut ctx = Ctx {
            role: Role::Client,
            settings: &conn.settings,
            rng: &mut *conn.rng,
            tls: conn.tls.as_deref(),
            out: &mut conn.transmits,
        };
        match Handshake::client(&mut ctx) {
            Ok(handshake) => {
                conn.state = State::Handshake(Some(handshake));
                conn.flight = conn.transmits.iter().cloned().collect();
            }
            Err(failure) => conn.fail(failure),
        }
        Ok(conn)
    }

    /// A server connection, waiting for the client's `Hello`.
    pub fn server(
        config: &ServerConfig,
        tls_peer_certificates: Option<Vec<Bytes>>,
        rng: Box<dyn rand::RngCore + Send>,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let settings = Settings {
            session: config.session.clone(),
            sequencing: SequencingMode::None,
            sequencing_modes: config.sequencing_modes.clone(),
            root: config.root.clone(),
            authenticator: Arc::clone(&config.authenticator),
            mode_policy: ClientModePolicy::Fail,
            reliable: true,
        };
        let mut conn = Self::new(Role::Server, settings, tls_peer_certificates, rng, now)?;
        conn.state = State::Handshake(Some(Handshake::server()));
        Ok(conn)
    }

    fn new(
        role: Role,
        settings: Settings,
        tls: Option<Vec<Bytes>>,
        rng: Box<dyn rand::RngCore + Send>,
        now: Instant,
    ) -> Result<Self, SessionError> {
        settings.session.validate()?;
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + settings.session.handshake_timeout);
        let limits = Limits {
            max_frame_payload: settings.session.limits.max_frame_payload,
            ..Limits::DEFAULT
        };
        Ok(Self {
            role,
            settings,
            state: State::Handshake(None),
            timers,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng,
            tls,
            limits,
            receive_paused: false,
            pings_sent: 0,
            room: u32::MAX,
            send_limits: limits,
            lossy: false,
            flight: Vec::new(),
            peer_handshake: Vec::new(),
            flight_attempt: 0,
            farewell: None,
            sequencing: None,
            seq_dirty: false,
            closing: None,
            mode_offer: None,
        })
    }

    /// Tells the core what its transport guarantees; call it right after construction.
    ///
    /// The largest payload this side announces is bounded by the transport's largest frame
    /// (less the 32-byte header). A transport that may lose, duplicate or reorder frames
    /// (not `reliable`, or not `ordered`) makes the handshake robust: the client repeats
    /// its last handshake flight on a backed-off timer until the server answers, the server
    /// answers a repeated message again, repeated frames are otherwise ignored, and a last
    /// `Bye` or `Reject` is repeated a few times (docs/SESSION.md §7.6).
    ///
    /// # Errors
    ///
    /// [`SessionError::InvalidConfig`] for a client asking for no sequencing over a
    /// transport that is not reliable (docs/SESSION.md §4.1: ask for `ordered` or
    /// `unordered`), or for a transport whose frames cannot carry a payload.
    pub fn set_transport_properties(
        &mut self,
        now: Instant,
        properties: &Properties,
    ) -> Result<(), SessionError> {
        if self.role == Role::Client
            && !properties.reliable
            && !self.settings.sequencing.is_sequenced()
        {
            return Err(SessionError::InvalidConfig(
                "sequencing mode none needs a reliable transport: ask for ordered or unordered"
                    .into(),
            ));
        }
        let room = transport_room(properties.max_frame);
        let limits = &mut self.settings.session.limits;
        limits.max_frame_payload = limits.max_frame_payload.min(room);
        if limits.max_frame_payload == 0 {
            return Err(SessionError::InvalidConfig(format!(
                "the transport's frames of {} bytes cannot carry a payload",
                properties.max_frame
            )));
        }
        self.settings.reliable = properties.reliable;
        self.lossy = !(properties.reliable && properties.ordered);
        self.room = room;
        if !self.is_established() {
            self.limits.max_frame_payload = self.limits.max_frame_payload.min(room);
        }
        self.send_limits = within_room(self.limits, room);
        if self.lossy
            && self.role == Role::Client
            && self.phase() == Phase::Handshake
            && !self.flight.is_empty()
        {
            self.flight_attempt = 0;
            self.timers.set(Timer::Flight, now + self.rto(0));
        }
        Ok(())
    }

    fn retransmit_config(&self) -> &RetransmitConfig {
        &self.settings.session.retransmit
    }

    fn rto(&self, attempt: u32) -> Duration {
        let config = self.retransmit_config();
        backoff(config.initial_rto, config.max_rto, attempt)
    }

    fn phase(&self) -> Phase {
        match self.state {
            State::Handshake(_) => Phase::Handshake,
            State::Established(_) => Phase::Established,
            State::Terminated(_) => Phase::Terminated,
        }
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits incoming frames are decoded with: the local ones during the handshake,
    /// the negotiated ones after.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the handshake completed and the session has not ended.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// Whether the session has ended.
    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated(_))
    }

    /// Whether a frame may wait in [`poll_transmit`](Self::poll_transmit) (which may then
    /// still return `None`, after numbering what [`send`](Self::send) queued).
    pub fn has_transmit(&self) -> bool {
        !self.transmits.is_empty() || (self.seq_dirty && self.sequencing.is_some())
    }

    /// Whether [`send`](Self::send) takes a frame now. Only a sequenced session with a
    /// full retransmit buffer says no (with [`Overflow::Backpressure`]): one frame is held
    /// back until the peer's acknowledgements make room.
    ///
    /// [`Overflow::Backpressure`]: crate::Overflow::Backpressure
    pub fn is_writable(&self) -> bool {
        self.sequencing.as_ref().is_none_or(Sequencing::is_writable)
    }

    /// The sequencer of a sequenced session, while established (for inspection: buffer
    /// levels, next numbers).
    pub fn sequencer(&self) -> Option<&Sequencer> {
        self.sequencing.as_ref().map(Sequencing::sequencer)
    }

    /// Whether the session has ended and every last frame (`Bye`, `Reject`) was handed
    /// out, including the repeats a lossy transport calls for.
    pub fn is_drained(&self) -> bool {
        self.is_terminated() && self.transmits.is_empty() && self.farewell.is_none()
    }

    /// Why the session ended, once it has.
    pub fn termination_reason(&self) -> Option<&TerminationReason> {
        match &self.state {
            State::Terminated(reason) => Some(reason),
            _ => None,
        }
    }

    /// What the handshake settled, while established.
    pub fn established(&self) -> Option<&Established> {
        match &self.state {
            State::Established(established) => Some(established),
            _ => None,
        }
    }

    /// Handles one message from the transport: decodes it with [`limits`](Self::limits)
    /// and handles the frame. Undecodable bytes are a protocol violation.
    pub fn handle_bytes(&mut self, now: Instant, bytes: Bytes) {
        if self.is_terminated() {
            return;
        }
        // A sequenced session keeps the frame's encoding (no copy) until it is delivered.
        let raw = self.sequencing.is_some().then(|| bytes.clone());
        match Frame::decode(bytes, &self.limits) {
            Ok(frame) => self.handle_frame_raw(now, frame, raw),
            Err(e) if self.is_awaiting_hello() => {
                self.fail(Failure::not_a_peer(format!("first frame undecodable: {e}")));
            }
            Err(e) => self.violation(format!("malformed frame: {e}")),
        }
    }

    fn is_awaiting_hello(&self) -> bool {
        matches!(self.state, State::Handshake(Some(Handshake::ExpectHello)))
    }

    /// Handles one decoded frame from the peer.
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) {
        self.handle_frame_raw(now, frame, None);
    }

    fn handle_frame_raw(&mut self, now: Instant, frame: Frame, raw: Option<Bytes>) {
        tracing::trace!(role = ?self.role, ?frame, "received");
        match self.phase() {
            Phase::Terminated => {}
            Phase::Handshake => self.handle_handshake(now, frame),
            Phase::Established => {
                let idle = self.established().map(|e| e.config.idle_timeout);
                if let (Some(idle), false) = (idle, self.receive_paused) {
                    self.timers.set(Timer::Idle, now + idle);
                }
                self.handle_established(now, frame, raw);
            }
        }
    }

    fn handle_handshake(&mut self, now: Instant, frame: Frame) {
        if self.lossy {
            if self.is_repeat(&frame) {
                return;
            }
            // docs/SESSION.md §7.6: the server is established once it answered; its first
            // frames may overtake the answer, or come while the answer is lost. The
            // sequencing retransmits them (without sequencing they stay violations).
            if self.role == Role::Client
                && self.settings.sequencing.is_sequenced()
                && !frame.kind.is_handshake()
                && frame.kind != FrameKind::Bye
            {
                tracing::trace!(kind = %frame.kind, "frame before the configuration answer ignored");
                return;
            }
        }
        let State::Handshake(slot) = &mut self.state else {
            return;
        };
        let Some(handshake) = slot.take() else {
            return;
        };
        let before = self.transmits.len();
        let peer_frame = self.lossy.then(|| frame.clone());
        let mut ctx = Ctx {
            role: self.role,
            settings: &self.settings,
            rng: &mut *self.rng,
            tls: self.tls.as_deref(),
            out: &mut self.transmits,
        };
        match handshake.handle(&mut ctx, frame) {
            Ok(Step::Continue(next)) => {
                self.state = State::Handshake(Some(next));
                self.new_flight(now, before, peer_frame);
            }
            Ok(Step::Established(established)) => {
                self.new_flight(now, before, peer_frame);
                self.establish(now, established);
            }
            Err(failure) => self.fail(failure),
        }
    }

    /// Over a lossy transport: whether `frame` repeats a handshake frame already handled.
    /// The server answers a repeat of the client's last message again (its answer may have
    /// been lost); any other repeat is ignored. Only the client retransmits on a timer, so
    /// repeats never bounce back and forth.
    fn is_repeat(&mut self, frame: &Frame) -> bool {
        if !frame.kind.is_handshake() {
            return false;
        }
        let Some(at) = self.peer_handshake.iter().rposition(|seen| seen == frame) else {
            return false;
        };
        if self.role == Role::Server && at + 1 == self.peer_handshake.len() {
            tracing::debug!(kind = %frame.kind, "repeated handshake message: answering again");
            self.transmits.extend(self.flight.iter().cloned());
        } else {
            tracing::trace!(kind = %frame.kind, "repeated handshake frame ignored");
        }
        true
    }

    /// Records the frames queued since `before` as this side's flight, in answer to
    /// `peer_frame`; the client's timer repeats it until the server answers.
    fn new_flight(&mut self, now: Instant, before: usize, peer_frame: Option<Frame>) {
        let Some(peer_frame) = peer_frame else {
            return;
        };
        if self.peer_handshake.len() < MAX_REMEMBERED_HANDSHAKE {
            self.peer_handshake.push(peer_frame);
        }
        self.flight = self.transmits.iter().skip(before).cloned().collect();
        self.flight_attempt = 0;
        if self.role == Role::Client && !self.flight.is_empty() {
            self.timers.set(Timer::Flight, now + self.rto(0));
        } else {
            self.timers.stop(Timer::Flight);
        }
    }

    /// docs/SESSION.md §6 and §7: what an established session does with each frame kind.
    fn handle_established(&mut self, now: Instant, frame: Frame, raw: Option<Bytes>) {
        let frame = match self.sequencing.as_mut() {
            None => frame,
            Some(sequencing) => match sequencing.handle(now, frame, raw) {
                Ok(Incoming::Consumed) => {
                    self.pump(now);
                    return;
                }
                Ok(Incoming::BowOut) => {
                    self.on_peer_bow_out(now);
                    return;
                }
                Ok(Incoming::Other(frame)) => frame,
                Err(detail) => {
                    self.violation(detail);
                    return;
                }
            },
        };
        match frame.kind {
            FrameKind::Ping => {
                // A peer that pings faster than this side can send gets fewer answers,
                // not an unbounded queue.
                if self.transmits.len() < MAX_QUEUED_PONGS {
                    self.transmits
                        .push_back(Frame::control(FrameKind::Pong, frame.payload));
                }
            }
            FrameKind::Pong => {}
            FrameKind::Bye => match messages::decode::<Bye>(&frame.payload) {
                Ok(bye) => {
                    self.transmits.clear();
                    let reason = match self.mode_offer {
                        // docs/SESSION.md §4.1: the client's NACK of the mode set.
                        Some((requested, offered))
                            if ReasonCode::from(bye.code) == ReasonCode::ModeRejected =>
                        {
                            TerminationReason::HandshakeFailed(HandshakeFailure::ModeRejected {
                                origin: Origin::Remote,
                                requested,
                                offered,
                            })
                        }
                        _ => bye.to_reason(),
                    };
                    self.terminate(reason);
                }
                Err(e) => self.violation(format!("malformed Bye: {e}")),
            },
            kind if kind.is_handshake() => {
                if !(self.lossy && self.is_repeat(&frame)) {
                    self.violation(format!("{kind} frame after the handshake"));
                }
            }
            _ => self.events.push_back(Event::Frame(frame)),
        }
    }

    /// Drains the sequencer into frames to send and frames to deliver; ends the session if
    /// sequencing says so, and completes a pending graceful close once every frame is
    /// acknowledged.
    fn pump(&mut self, now: Instant) {
        self.seq_dirty = false;
        let Some(sequencing) = self.sequencing.as_mut() else {
            return;
        };
        match sequencing.pump(now, &mut self.transmits, &mut self.events) {
            None => {}
            Some(Ending::Abandoned(ranges)) => {
                // PROTOCOL.md §8.3: the peer said Bye; nothing is sent back.
                self.transmits.clear();
                self.terminate(TerminationReason::SequenceAbandoned { ranges });
                return;
            }
            Some(Ending::BowOut { next, ranges }) => {
                self.bow_out(next, ranges);
                return;
            }
        }
        if self.closing.is_some() && sequencing.is_flushed() {
            if let Some(reason) = self.closing.take() {
                self.end(reason, true);
            }
        }
    }

    /// docs/SESSION.md §7.5: the peer bowed out. What it gave up and this side lacked is
    /// reported (by the sequencer's `SequenceAbandoned`); if nothing was missing, the frames
    /// up to its last number are delivered and the session ends all the same.
    fn on_peer_bow_out(&mut self, now: Instant) {
        self.pump(now);
        if !self.is_terminated() {
            self.transmits.clear();
            self.terminate(TerminationReason::SequenceAbandoned {
                ranges: RangeSet::new(),
            });
        }
    }

    /// docs/SESSION.md §7.5, PROTOCOL.md §8.3: this side no longer holds frames the peer
    /// asked for. It sends `Bye` with `IGNORE_SEQ` and its oldest held number in `seq`, and
    /// ends.
    fn bow_out(&mut self, next: u64, ranges: RangeSet) {
        tracing::debug!(role = ?self.role, next, %ranges, "bowing out of sequencing");
        self.transmits.clear();
        let bye = Bye::new(
            ReasonCode::SequenceAbandoned,
            &format!("Ignore-Seq: * (frames {ranges} are no longer held)"),
        );
        match messages::encode(&bye) {
            Ok(payload) => self
                .transmits
                .push_back(Frame::bye(payload, true).with_seq(next)),
            Err(e) => tracing::warn!(error = %e, "cannot encode the bow-out"),
        }
        self.terminate(TerminationReason::BowedOut { ranges });
        self.arm_farewell();
    }

    fn establish(&mut self, now: Instant, established: Box<Established>) {
        let config = &established.config;
        tracing::debug!(
            role = ?self.role,
            session = %config.session_id,
            peer = %established.peer_identity,
            "session established"
        );
        self.limits.max_frame_payload = config.limits.max_frame_payload;
        self.send_limits = within_room(self.limits, self.room);
        if let Some(mode) = config.sequencing.to_seq_mode() {
            self.sequencing = Some(Sequencing::new(
                mode,
                config,
                &self.settings.session.retransmit,
                &self.limits,
                &self.send_limits,
            ));
        }
        if established.requested_sequencing != config.sequencing {
            self.mode_offer = Some((established.requested_sequencing, config.sequencing));
        }
        self.timers.stop(Timer::Handshake);
        self.timers.stop(Timer::Flight);
        self.timers.set(Timer::Idle, now + config.idle_timeout);
        self.timers
            .set(Timer::Keepalive, now + config.keepalive_interval);
        self.events
            .push_back(Event::Established(established.clone()));
        self.state = State::Established(established);
    }

    /// Ends the handshake with `failure`, sending its refusal if any: `Reject` from the
    /// server, `Bye` from the client (docs/SESSION.md §5).
    fn fail(&mut self, failure: Failure) {
        self.transmits.clear();
        if let Some(refusal) = failure.reply {
            match self.role {
                Role::Server => self.push_encoded(
                    FrameKind::Reject,
                    &Reject {
                        code: refusal.code.to_u16(),
                        message: refusal.message,
                        supported_versions: refusal.supported_versions,
                    },
                ),
                Role::Client => self.push_encoded(
                    FrameKind::Bye,
                    &Bye {
                        code: refusal.code.to_u16(),
                        message: refusal.message,
                    },
                ),
            }
        }
        self.terminate(failure.reason);
        self.arm_farewell();
    }

    /// Over a lossy transport, repeats the last frame queued (`Bye` or `Reject`) a few
    /// times after termination (docs/SESSION.md §7.6).
    fn arm_farewell(&mut self) {
        if !self.lossy {
            return;
        }
        self.farewell = self
            .transmits
            .back()
            .filter(|frame| matches!(frame.kind, FrameKind::Bye | FrameKind::Reject))
            .map(|frame| Farewell {
                frame: frame.clone(),
                left: FAREWELL_REPEATS,
                attempt: 0,
                armed: false,
            });
    }

    /// Ends the session locally for `reason`, telling the peer: `Reject` during the
    /// handshake, `Bye` after. With `flush`, frames queued before are sent first.
    fn end(&mut self, reason: TerminationReason, flush: bool) {
        match &self.state {
            State::Terminated(_) => {}
            State::Handshake(_) => self.fail(Failure::local(reason)),
            State::Established(_) => {
                if !flush {
                    self.transmits.clear();
                }
                self.push_encoded(FrameKind::Bye, &Bye::for_reason(&reason));
                self.terminate(reason);
                self.arm_farewell();
            }
        }
    }

    fn violation(&mut self, detail: String) {
        tracing::debug!(role = ?self.role, %detail, "protocol violation");
        if matches!(self.state, State::Handshake(_)) {
            self.fail(Failure::violation(detail));
        } else {
            self.end(
                TerminationReason::ProtocolViolation {
                    origin: Origin::Local,
                    detail,
                },
                false,
            );
        }
    }

    fn push_encoded<T: serde::Serialize>(&mut self, kind: FrameKind, value: &T) {
        match messages::encode(value) {
            Ok(payload) => self.transmits.push_back(Frame::control(kind, payload)),
            Err(e) => tracing::warn!(%kind, error = %e, "cannot encode a last frame"),
        }
    }

    fn terminate(&mut self, reason: TerminationReason) {
        if self.is_terminated() {
            return;
        }
        tracing::debug!(role = ?self.role, %reason, "session terminated");
        self.timers.stop_all();
        self.sequencing = None;
        self.closing = None;
        self.seq_dirty = false;
        self.events.push_back(Event::Terminated(reason.clone()));
        self.state = State::Terminated(reason);
    }

    /// Handles every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_terminated() {
            self.farewell_timeout(now);
            return;
        }
        for timer in Timer::ALL {
            if !self.timers.is_expired(timer, now) {
                continue;
            }
            match timer {
                Timer::Handshake => self.fail(Failure::local(TerminationReason::HandshakeFailed(
                    HandshakeFailure::Timeout,
                ))),
                Timer::Idle => self.end(TerminationReason::IdleTimeout, false),
                Timer::Keepalive => {
                    if let Some(established) = self.established() {
                        let interval = established.config.keepalive_interval;
                        self.pings_sent += 1;
                        let payload = Bytes::copy_from_slice(&self.pings_sent.to_le_bytes());
                        self.transmits
                            .push_back(Frame::control(FrameKind::Ping, payload));
                        self.timers.set(Timer::Keepalive, now + interval);
                    }
                }
                Timer::Flight => {
                    if self.phase() == Phase::Handshake {
                        tracing::debug!(
                            attempt = self.flight_attempt,
                            "no handshake answer: sending the last flight again"
                        );
                        self.transmits.extend(self.flight.iter().cloned());
                        self.flight_attempt = self.flight_attempt.saturating_add(1);
                        self.timers
                            .set(Timer::Flight, now + self.rto(self.flight_attempt));
                    }
                }
                // Only armed after termination.
                Timer::Farewell => {}
            }
            if self.is_terminated() {
                return;
            }
        }
        if let Some(sequencing) = self.sequencing.as_mut() {
            sequencing.handle_timeout(now);
            self.pump(now);
        }
    }

    fn farewell_timeout(&mut self, now: Instant) {
        if !self.timers.is_expired(Timer::Farewell, now) {
            return;
        }
        self.timers.stop(Timer::Farewell);
        if let Some(farewell) = self.farewell.as_mut() {
            self.transmits.push_back(farewell.frame.clone());
            farewell.left = farewell.left.saturating_sub(1);
            farewell.attempt = farewell.attempt.saturating_add(1);
            farewell.armed = false;
            if farewell.left == 0 {
                self.farewell = None;
            }
        }
    }

    /// The transport ended cleanly (`Ok(None)`): nothing more will arrive or can be sent.
    pub fn handle_transport_closed(&mut self) {
        self.transmits.clear();
        self.farewell = None;
        self.timers.stop(Timer::Farewell);
        self.terminate(TerminationReason::TransportClosed);
    }

    /// The transport failed with `error`.
    pub fn handle_transport_error(&mut self, error: &str) {
        self.transmits.clear();
        self.farewell = None;
        self.timers.stop(Timer::Farewell);
        self.terminate(TerminationReason::TransportFailed(error.to_owned()));
    }

    /// Stops (`true`) or resumes (`false`) counting receive-silence, for a driver that stops
    /// reading because its application does not keep up: that silence is not the peer's.
    pub fn set_receive_paused(&mut self, now: Instant, paused: bool) {
        self.receive_paused = paused;
        let idle = self.established().map(|e| e.config.idle_timeout);
        if let Some(idle) = idle {
            if paused {
                self.timers.stop(Timer::Idle);
            } else {
                self.timers.set(Timer::Idle, now + idle);
            }
        }
    }

    /// Queues a frame of the layers above. Refused before establishment and after
    /// termination, for kinds the session owns (handshake kinds, `Bye`, `Ping`, `Pong`, and
    /// in a sequenced session `Ack` and `NeedSeq`), for frames the peer would refuse under
    /// the negotiated limits or the transport could not carry, and while a graceful close
    /// waits for acknowledgements. In a sequenced session exchange frames are numbered
    /// (their own `SEQ` / `ACK` are ignored) and kept for retransmission; with a full
    /// retransmit buffer one frame is held back ([`is_writable`](Self::is_writable) turns
    /// false) and the next is refused with [`SessionError::SendBufferFull`].
    pub fn send(&mut self, frame: Frame) -> Result<(), SessionError> {
        match &self.state {
            State::Terminated(reason) => Err(SessionError::Terminated(reason.clone())),
            State::Handshake(_) => Err(SessionError::InvalidFrame(
                "the session is not established".into(),
            )),
            State::Established(_) => {
                check_outgoing(&frame, &self.send_limits, self.sequencing.is_some())?;
                if self.closing.is_some() {
                    return Err(SessionError::InvalidFrame("the session is closing".into()));
                }
                match self.sequencing.as_mut() {
                    Some(sequencing) if sequencing::is_sequenced(frame.kind) => {
                        sequencing.send(frame)?;
                        self.seq_dirty = true;
                    }
                    _ => self.transmits.push_back(frame),
                }
                Ok(())
            }
        }
    }

    /// Closes gracefully: frames queued so far go out, then `Bye` with `reason`. In a
    /// sequenced session the `Bye` waits until the peer acknowledged every frame (or the
    /// session ends otherwise, at the latest at the idle timeout). During the handshake,
    /// sends `Reject` instead.
    pub fn close(&mut self, reason: &str) {
        let reason = TerminationReason::Closed {
            origin: Origin::Local,
            reason: messages::truncate(reason).to_owned(),
        };
        if let Some(sequencing) = &self.sequencing {
            if !sequencing.is_flushed() {
                tracing::debug!(role = ?self.role, "closing once every frame is acknowledged");
                self.closing.get_or_insert(reason);
                self.seq_dirty = true;
                return;
            }
        }
        self.end(reason, true);
    }

    /// Ends at once: queued frames are dropped, and `Bye` (or `Reject`) says aborted.
    pub fn abort(&mut self) {
        self.end(
            TerminationReason::Aborted {
                origin: Origin::Local,
            },
            false,
        );
    }

    /// Ends because the session's scope was cancelled.
    pub fn cancel(&mut self) {
        self.end(TerminationReason::ScopeCancelled, false);
    }

    /// The next frame to send. While established, sending resets the keepalive timer.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Frame> {
        if self.seq_dirty {
            self.pump(now);
        }
        let frame = self.transmits.pop_front()?;
        let keepalive = self.established().map(|e| e.config.keepalive_interval);
        if let Some(interval) = keepalive {
            self.timers.set(Timer::Keepalive, now + interval);
        }
        if self.transmits.is_empty() && self.is_terminated() {
            let attempt = match self.farewell.as_mut() {
                Some(farewell) if !farewell.armed => {
                    farewell.armed = true;
                    Some(farewell.attempt)
                }
                _ => None,
            };
            if let Some(attempt) = attempt {
                self.timers.set(Timer::Farewell, now + self.rto(attempt));
            }
        }
        tracing::trace!(role = ?self.role, ?frame, "transmit");
        Some(frame)
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next deadline at which [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sequencing = self.sequencing.as_ref().and_then(Sequencing::poll_timeout);
        match (self.timers.next(), sequencing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Handshake(Some(h)) => h.name(),
            State::Handshake(None) => "handshake",
            State::Established(_) => "established",
            State::Terminated(_) => "terminated",
        };
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &state)
            .field("queued", &self.transmits.len())
            .field("lossy", &self.lossy)
            .field(
                "sequencer",
                &self.sequencing.as_ref().map(Sequencing::sequencer),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod sequencing_tests;
#[cfg(test)]
mod tests;
