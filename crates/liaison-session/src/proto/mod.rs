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

use crate::auth::{Authenticator, PeerIdentity, Role};
use crate::messages::{self, Bye, ReasonCode, Reject, ResumeAck, ResumeStateAck};
use crate::{
    ClientConfig, HandshakeFailure, NegotiatedConfig, Origin, RetransmitConfig, RootCapability,
    SequencingMode, ServerConfig, SessionConfig, SessionError, SessionId, StateProvider,
    TerminationReason,
};
use liaison_resume::ResumeSecret;

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

/// Copies of one handshake flight told apart by their tag (docs/PROTOCOL.md §2); later
/// copies go untagged, and their answers give no round-trip sample.
const MAX_FLIGHT_COPIES: usize = 64;

/// Sets the copy tag (docs/PROTOCOL.md §2) of the establishing frames among `frames`.
fn tag_copy<'a>(frames: impl Iterator<Item = &'a mut Frame>, tag: u64) {
    for frame in frames.filter(|frame| frame.kind.is_establishing()) {
        frame.exchange = tag;
    }
}

/// Whether two establishing frames carry the same message, whichever copies they are.
fn same_message(a: &Frame, b: &Frame) -> bool {
    a.kind == b.kind
        && a.flags == b.flags
        && a.seq == b.seq
        && a.ack == b.ack
        && a.payload == b.payload
}

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
    /// A resumable session lost its transport and waits for a new one
    /// ([`reattach`](Connection::reattach)); its deadline is in
    /// [`poll_timeout`](Connection::poll_timeout).
    Detached,
    /// Server: a client asks to resume a session (docs/PROTOCOL.md §10.1). The driver
    /// looks the session up, checks the proof and answers with
    /// [`resume_refuse`](Connection::resume_refuse) or
    /// [`resume_restore`](Connection::resume_restore), or hands the transport to the live
    /// session and drops this connection.
    ResumeRequested(Box<ResumeRequest>),
    /// Server rebuilding a session: the client's state (PROTOCOL.md §10.2); answer with
    /// [`resume_state_verdict`](Connection::resume_state_verdict).
    ResumeState(Bytes),
    /// Client resuming ([`Connection::client_resume`]): the server resumed the session.
    /// The driver hands the transport to the session's own connection
    /// ([`reattach`](Connection::reattach), or
    /// [`reattach_restarted`](Connection::reattach_restarted) when `restarted`) and drops
    /// this one.
    Resumed {
        /// The server received every sequenced frame below this number.
        peer_next: u64,
        /// The server rebuilt the session from the client's state; both sides number
        /// from 0 again.
        restarted: bool,
    },
}

/// A client's request to resume a session, as the server's connection received it
/// (docs/PROTOCOL.md §10.1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeRequest {
    /// The session named.
    pub session_id: SessionId,
    /// The client's proof of the resume secret over [`nonce`](Self::nonce).
    pub proof: [u8; 32],
    /// The client received every sequenced frame below this number.
    pub next_expected: u64,
    /// Who the client authenticated as on this connection.
    pub identity: PeerIdentity,
    /// This connection's fresh nonce, sent in its `Welcome`.
    pub nonce: [u8; 32],
    /// The protocol version of this connection.
    pub version: u16,
}

/// What a client needs to resume its session over a new connection.
#[derive(Debug, Clone)]
pub struct ResumeTicket {
    /// The session's id.
    pub session_id: SessionId,
    /// The resume secret agreed at establishment.
    pub secret: ResumeSecret,
    /// Every sequenced frame of the server below this number was received.
    pub next_expected: u64,
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
    /// Client: ask for a resumable session.
    pub(crate) resume_requested: bool,
    /// Server: grant resumable sessions.
    pub(crate) resume_offered: bool,
    /// Client: this connection resumes a session instead of opening one.
    pub(crate) ticket: Option<ResumeTicket>,
    /// Client: the state sent to a server that restarted.
    pub(crate) state: Option<StateProvider>,
    /// How long a resumable session stays detached before it ends.
    pub(crate) detach_limit: Duration,
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
    /// Over a lossy transport: when each copy of this side's current handshake flight was
    /// sent. The client's copy `n` (tagged `n`) is at index `n - 1`, and the server's answer
    /// names the copy it answers. The server's one copy is forgotten once it answers a
    /// repeat: the client's next message could then answer either.
    flight_copies: Vec<Instant>,
    /// The round trip of the last handshake flight measured (docs/SESSION.md §7.6): it paces
    /// the client's repeats of the next flights and seeds the sequencer's estimate.
    handshake_rtt: Option<Duration>,
    farewell: Option<Farewell>,
    sequencing: Option<Sequencing>,
    /// `send` queued sequenced frames that `poll_transmit` has yet to number.
    seq_dirty: bool,
    /// A graceful close waiting until the peer acknowledged every sequenced frame.
    closing: Option<TerminationReason>,
    /// Server: the mode requested and the other one set, when they differ.
    mode_offer: Option<(SequencingMode, SequencingMode)>,
    /// A resumable session without a transport, since then.
    detached: Option<Instant>,
    /// Server, over a lossy transport: the `ResumeAck` of the last reattach, sent again
    /// when the client repeats its `Resume` (the answer was lost).
    resume_ack: Option<Frame>,
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
            resume_requested: config.resume.is_some(),
            resume_offered: false,
            ticket: None,
            state: config.resume.as_ref().and_then(|r| r.state.clone()),
            detach_limit: config
                .resume
                .as_ref()
                .map_or(Duration::ZERO, |r| r.max_detached),
        };
        Self::client_with(settings, tls_peer_certificates, rng, now)
    }

    /// A client connection that resumes the session of `ticket` (docs/PROTOCOL.md §10):
    /// `Hello`, authentication as usual, then `Resume` in place of `Config`. It ends with
    /// [`Event::Resumed`] (then the driver hands the transport to the session's own
    /// connection) or terminates: [`TerminationReason::ResumeRefused`] when the server
    /// answered `NEW`, a transport or handshake reason otherwise.
    pub fn client_resume(
        config: &ClientConfig,
        ticket: ResumeTicket,
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
            mode_policy: ClientModePolicy::Fail,
            reliable: true,
            resume_requested: false,
            resume_offered: false,
            ticket: Some(ticket),
            state: config.resume.as_ref().and_then(|r| r.state.clone()),
            detach_limit: Duration::ZERO,
        };
        Self::client_with(settings, tls_peer_certificates, rng, now)
    }

    fn client_with(
        settings: Settings,
        tls_peer_certificates: Option<Vec<Bytes>>,
        rng: Box<dyn rand::RngCore + Send>,
        now: Instant,
    ) -> Result<Self, SessionError> {
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
            resume_requested: false,
            resume_offered: config.resume.is_some(),
            ticket: None,
            state: None,
            detach_limit: config
                .resume
                .as_ref()
                .map_or(Duration::ZERO, |r| r.idle_timeout),
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
            flight_copies: Vec::new(),
            handshake_rtt: None,
            farewell: None,
            sequencing: None,
            seq_dirty: false,
            closing: None,
            mode_offer: None,
            detached: None,
            resume_ack: None,
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
            self.flight_copies = vec![now];
            tag_copy(self.transmits.iter_mut(), 1);
            self.timers.set(Timer::Flight, now + self.flight_rto(0));
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

    /// When the client repeats a handshake flight (docs/SESSION.md §7.6): `initial_rto`
    /// until a flight's round trip was measured, then three times that round trip (the
    /// first-sample timeout of RFC 6298), at least `min_rto`; doubled `attempt` times, at
    /// most `max_rto`.
    fn flight_rto(&self, attempt: u32) -> Duration {
        let config = self.retransmit_config();
        let initial = self.handshake_rtt.map_or(config.initial_rto, |rtt| {
            rtt.saturating_mul(3).max(config.min_rto)
        });
        backoff(initial, config.max_rto, attempt)
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
        self.detached.is_none()
            && (!self.transmits.is_empty() || (self.seq_dirty && self.sequencing.is_some()))
    }

    /// How many frames wait in [`poll_transmit`](Self::poll_transmit), numbered or not.
    pub fn queued_transmits(&self) -> usize {
        self.transmits.len()
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
                && !matches!(
                    frame.kind,
                    FrameKind::Bye | FrameKind::ResumeAck | FrameKind::ResumeStateAck
                )
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
            Ok(Step::ResumeRequested(request, next)) => {
                self.state = State::Handshake(Some(next));
                self.new_flight(now, before, peer_frame);
                self.events.push_back(Event::ResumeRequested(request));
            }
            Ok(Step::StateReceived(state, next)) => {
                self.state = State::Handshake(Some(next));
                self.new_flight(now, before, peer_frame);
                self.events.push_back(Event::ResumeState(state));
            }
            Ok(Step::Resumed {
                peer_next,
                restarted,
            }) => {
                // This connection's work is done: the session's own connection takes over
                // the transport, and with it the frames to recognise as repeats
                // (`take_peer_handshake`). It stays inert (no timers, nothing more to send).
                self.remember_peer_frame(peer_frame);
                self.timers.stop_all();
                self.events.push_back(Event::Resumed {
                    peer_next,
                    restarted,
                });
            }
            Err(failure) => self.fail(failure),
        }
    }

    /// Over a lossy transport: whether `frame` repeats a handshake frame already handled.
    /// The server answers a repeat of the client's last message again (its answer may have
    /// been lost); any other repeat is ignored. Only the client retransmits on a timer, so
    /// repeats never bounce back and forth.
    fn is_repeat(&mut self, frame: &Frame) -> bool {
        if !frame.kind.is_establishing() {
            return false;
        }
        let Some(at) = self
            .peer_handshake
            .iter()
            .rposition(|seen| same_message(seen, frame))
        else {
            return false;
        };
        if self.role == Role::Server && at + 1 == self.peer_handshake.len() {
            tracing::debug!(kind = %frame.kind, "repeated handshake message: answering again");
            // The answer names the copy it answers (docs/PROTOCOL.md §2).
            let start = self.transmits.len();
            self.transmits.extend(self.flight.iter().cloned());
            tag_copy(self.transmits.iter_mut().skip(start), frame.exchange);
            self.flight_copies.clear();
        } else {
            tracing::trace!(kind = %frame.kind, "repeated handshake frame ignored");
        }
        true
    }

    /// Over a lossy transport (`peer_frame` is then set): remembers a handshake frame of the
    /// peer, to recognise its repeats.
    fn remember_peer_frame(&mut self, peer_frame: Option<Frame>) {
        if let Some(frame) = peer_frame {
            if self.peer_handshake.len() < MAX_REMEMBERED_HANDSHAKE {
                self.peer_handshake.push(frame);
            }
        }
    }

    /// Records the frames queued since `before` as this side's flight, in answer to
    /// `peer_frame`; the client's timer repeats it until the server answers. Copies are
    /// tagged (docs/PROTOCOL.md §2): the client numbers its own, the server's answer carries
    /// the tag of the client's copy it answers.
    fn new_flight(&mut self, now: Instant, before: usize, peer_frame: Option<Frame>) {
        let Some(peer_frame) = peer_frame else {
            return;
        };
        // The copy the server answered, if it says which; else only a flight sent once
        // gives a sample, as an answer could be to any copy (Karn's algorithm).
        let named = match self.role {
            Role::Client => usize::try_from(peer_frame.exchange)
                .ok()
                .and_then(|tag| tag.checked_sub(1))
                .and_then(|copy| self.flight_copies.get(copy).copied()),
            Role::Server => None,
        };
        let answered = match self.flight_copies[..] {
            [only] => named.or(Some(only)),
            _ => named,
        };
        if let Some(sent) = answered {
            self.handshake_rtt = Some(now.saturating_duration_since(sent));
        }
        let tag = match self.role {
            Role::Client => 1,
            Role::Server => peer_frame.exchange,
        };
        self.remember_peer_frame(Some(peer_frame));
        tag_copy(self.transmits.iter_mut().skip(before), tag);
        self.flight = self.transmits.iter().skip(before).cloned().collect();
        self.flight_attempt = 0;
        self.flight_copies.clear();
        self.timers.stop(Timer::Flight);
        if !self.flight.is_empty() {
            self.flight_copies.push(now);
            if self.role == Role::Client {
                self.timers.set(Timer::Flight, now + self.flight_rto(0));
            }
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
            // docs/SESSION.md §7.6: over a lossy transport the client repeats its `Resume`
            // until it hears the `ResumeAck`; a lost answer is sent again.
            FrameKind::Resume if self.resume_ack.is_some() => {
                if let Some(ack) = &self.resume_ack {
                    if self.transmits.len() < MAX_QUEUED_PONGS {
                        // Naming the copy of the `Resume` it answers.
                        let mut ack = ack.clone();
                        ack.exchange = frame.exchange;
                        self.transmits.push_back(ack);
                    }
                }
            }
            kind if kind.is_establishing() => {
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
        if self.detached.is_some() {
            return;
        }
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
            let mut sequencing = Sequencing::new(
                mode,
                config,
                &self.settings.session.retransmit,
                &self.limits,
                &self.send_limits,
            );
            if let Some(rtt) = self.handshake_rtt {
                sequencing.add_rtt_sample(rtt);
            }
            self.sequencing = Some(sequencing);
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
        self.arm_farewell_kind(FrameKind::Bye);
    }

    /// As [`arm_farewell`](Self::arm_farewell), for a last frame of `kind` too.
    fn arm_farewell_kind(&mut self, kind: FrameKind) {
        if !self.lossy {
            return;
        }
        self.farewell = self
            .transmits
            .back()
            .filter(|frame| {
                frame.kind == kind || matches!(frame.kind, FrameKind::Bye | FrameKind::Reject)
            })
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
                        // Copy n is tagged n while the tags last (docs/PROTOCOL.md §2).
                        let tag = if self.flight_copies.len() < MAX_FLIGHT_COPIES {
                            self.flight_copies.push(now);
                            self.flight_copies.len() as u64
                        } else {
                            0
                        };
                        let start = self.transmits.len();
                        self.transmits.extend(self.flight.iter().cloned());
                        tag_copy(self.transmits.iter_mut().skip(start), tag);
                        self.flight_attempt = self.flight_attempt.saturating_add(1);
                        self.timers
                            .set(Timer::Flight, now + self.flight_rto(self.flight_attempt));
                    }
                }
                // Only armed after termination.
                Timer::Farewell => {}
                Timer::Detached => {
                    let reason = match self.role {
                        // docs/SESSION.md §8: kept for the idle timeout, then deleted.
                        Role::Server => TerminationReason::IdleTimeout,
                        Role::Client => TerminationReason::ReconnectFailed {
                            attempts: 0,
                            detail: format!(
                                "detached longer than {:?}",
                                self.settings.detach_limit
                            ),
                        },
                    };
                    tracing::info!(role = ?self.role, %reason, "detached session expired");
                    self.give_up(reason);
                }
            }
            if self.is_terminated() {
                return;
            }
        }
        if self.detached.is_some() {
            return;
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
    /// The session ends, resumable or not (see
    /// [`handle_transport_lost`](Self::handle_transport_lost)).
    pub fn handle_transport_closed(&mut self) {
        self.transmits.clear();
        self.farewell = None;
        self.timers.stop(Timer::Farewell);
        self.terminate(TerminationReason::TransportClosed);
    }

    /// The transport failed with `error`. The session ends, resumable or not.
    pub fn handle_transport_error(&mut self, error: &str) {
        self.transmits.clear();
        self.farewell = None;
        self.timers.stop(Timer::Farewell);
        self.terminate(TerminationReason::TransportFailed(error.to_owned()));
    }

    /// The transport ended at `now`, cleanly (`error` `None`) or with `error`. A resumable
    /// established session detaches ([`Event::Detached`]) and waits for
    /// [`reattach`](Self::reattach) until its deadline; any other ends as with
    /// [`handle_transport_closed`](Self::handle_transport_closed) or
    /// [`handle_transport_error`](Self::handle_transport_error).
    pub fn handle_transport_lost(&mut self, now: Instant, error: Option<&str>) {
        self.transmits.clear();
        self.farewell = None;
        self.timers.stop(Timer::Farewell);
        if self.detach(now, error.unwrap_or("the transport closed")) {
            return;
        }
        match error {
            None => self.terminate(TerminationReason::TransportClosed),
            Some(error) => self.terminate(TerminationReason::TransportFailed(error.to_owned())),
        }
    }

    /// docs/SESSION.md §8: an established resumable session outlives its transport. Frames
    /// sent and not acknowledged stay in the retransmit buffer; new ones are buffered
    /// there too (within its bounds). Returns whether the session detached.
    fn detach(&mut self, now: Instant, why: &str) -> bool {
        let resumable = self.established().is_some_and(Established::is_resumable);
        if self.detached.is_some() {
            return true;
        }
        if !resumable || self.closing.is_some() {
            return false;
        }
        tracing::info!(
            role = ?self.role,
            session = %self.established().map(|e| e.config.session_id).unwrap_or(SessionId([0; 16])),
            %why,
            "session detached"
        );
        self.detached = Some(now);
        self.timers.stop(Timer::Idle);
        self.timers.stop(Timer::Keepalive);
        self.timers
            .set(Timer::Detached, now + self.settings.detach_limit);
        self.events.push_back(Event::Detached);
        true
    }

    /// Whether a resumable session is waiting for a new transport.
    pub fn is_detached(&self) -> bool {
        self.detached.is_some()
    }

    /// What a client needs to resume this session over a new connection
    /// ([`Connection::client_resume`]): established and resumable only.
    pub fn resume_ticket(&self) -> Option<ResumeTicket> {
        let established = self.established()?;
        Some(ResumeTicket {
            session_id: established.config.session_id,
            secret: established.resume_secret.clone()?,
            next_expected: self.next_expected(),
        })
    }

    /// Every sequenced frame of the peer below this number was received.
    pub fn next_expected(&self) -> u64 {
        self.sequencing
            .as_ref()
            .map_or(0, |s| s.sequencer().next_recv_seq())
    }

    /// Over a lossy transport: the peer's handshake frames this connection handled, for
    /// the session's own connection when this one resumes it ([`reattach`]); empty
    /// otherwise.
    ///
    /// [`reattach`]: Self::reattach
    pub fn take_peer_handshake(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.peer_handshake)
    }

    /// The peer's frames of the resume handshake replace those of the session's own: the
    /// old transport is gone, so only the new one's can be repeated. The session's own
    /// flight answered another connection; a repeat is never answered with it.
    fn adopt_handshake(&mut self, peer_handshake: Vec<Frame>) {
        self.peer_handshake = peer_handshake;
        self.flight.clear();
    }

    /// The transport of the new connection, as [`set_transport_properties`] takes it.
    ///
    /// [`set_transport_properties`]: Self::set_transport_properties
    fn adopt_transport(&mut self, properties: &Properties) {
        self.room = transport_room(properties.max_frame);
        self.lossy = !(properties.reliable && properties.ordered);
        self.settings.reliable = properties.reliable;
        self.send_limits = within_room(self.limits, self.room);
    }

    /// Carries the session on over a new transport (docs/PROTOCOL.md §10.1): the peer
    /// received every sequenced frame below `peer_next`; the rest is sent again, then
    /// what was buffered while detached. The server (`send_ack`) first sends its
    /// `ResumeAck` (`RESUMED`, with its own next expected number). A session still
    /// attached (its side had not noticed the loss) drops what it queued for the old
    /// transport. `peer_handshake` holds the peer's handshake frames the resume
    /// connection handled ([`take_peer_handshake`]): over a lossy transport the peer may
    /// still repeat them, and they are ignored like repeats of the session's own
    /// handshake (docs/SESSION.md §7.6).
    ///
    /// [`take_peer_handshake`]: Self::take_peer_handshake
    ///
    /// # Errors
    ///
    /// When the peer's number cannot be honoured (the frames it lacks are no longer held)
    /// the session ends ([`TerminationReason::SequenceAbandoned`]-like loss is never
    /// silent): the server answers `NEW`, and the error says why.
    pub fn reattach(
        &mut self,
        now: Instant,
        properties: &Properties,
        peer_next: u64,
        send_ack: bool,
        peer_handshake: Vec<Frame>,
    ) -> Result<(), SessionError> {
        if !self.is_established() {
            return Err(self.terminated_error());
        }
        self.transmits.clear();
        self.resume_ack = None;
        self.adopt_handshake(peer_handshake);
        self.adopt_transport(properties);
        let result = match self.sequencing.as_mut() {
            Some(sequencing) => sequencing.resume(now, peer_next),
            None => Err("the session is not sequenced".to_owned()),
        };
        if let Err(detail) = result {
            tracing::info!(role = ?self.role, %detail, "resume impossible");
            let reason = TerminationReason::ResumeRefused {
                code: ReasonCode::SessionUnknown,
                message: detail.clone(),
            };
            if send_ack {
                self.push_encoded(
                    FrameKind::ResumeAck,
                    &ResumeAck::New {
                        code: ReasonCode::SessionUnknown.to_u16(),
                        message: messages::truncate(&detail).to_owned(),
                    },
                );
            }
            self.terminate(reason.clone());
            return Err(SessionError::Terminated(reason));
        }
        if send_ack {
            let next_expected = self.next_expected();
            self.push_encoded(
                FrameKind::ResumeAck,
                &ResumeAck::Resumed {
                    next_expected,
                    state_needed: false,
                },
            );
            self.resume_ack = self.lossy.then(|| self.transmits.back().cloned()).flatten();
        }
        self.attached(now, peer_next);
        Ok(())
    }

    /// Client: the server restarted and rebuilt the session from this side's state
    /// (docs/PROTOCOL.md §10.3). Both directions number from 0 again; frames of this side
    /// the old server never acknowledged (sent before the loss, or buffered while
    /// detached) are given up: what was pending on them cannot complete. Returns how many
    /// were given up (docs/SESSION.md §8.2), so that the loss is never silent.
    /// `peer_handshake` is as for [`reattach`](Self::reattach).
    pub fn reattach_restarted(
        &mut self,
        now: Instant,
        properties: &Properties,
        peer_handshake: Vec<Frame>,
    ) -> Result<u64, SessionError> {
        if !self.is_established() {
            return Err(self.terminated_error());
        }
        self.transmits.clear();
        self.adopt_handshake(peer_handshake);
        self.adopt_transport(properties);
        let abandoned = self
            .sequencing
            .as_ref()
            .map_or(0, Sequencing::unacknowledged);
        if abandoned > 0 {
            tracing::info!(
                role = ?self.role,
                abandoned,
                "the peer restarted: frames it never acknowledged are given up"
            );
        }
        if let Some(established) = self.established() {
            if let Some(mode) = established.config.sequencing.to_seq_mode() {
                let sequencing = Sequencing::new(
                    mode,
                    &established.config,
                    &self.settings.session.retransmit,
                    &self.limits,
                    &self.send_limits,
                );
                self.sequencing = Some(sequencing);
            }
        }
        self.attached(now, 0);
        Ok(abandoned)
    }

    fn attached(&mut self, now: Instant, peer_next: u64) {
        tracing::info!(role = ?self.role, peer_next, "session resumed");
        self.detached = None;
        self.timers.stop(Timer::Detached);
        if let Some(config) = self.established().map(|e| e.config.clone()) {
            self.timers.set(Timer::Idle, now + config.idle_timeout);
            self.timers
                .set(Timer::Keepalive, now + config.keepalive_interval);
        }
        self.seq_dirty = true;
    }

    fn terminated_error(&self) -> SessionError {
        match self.termination_reason() {
            Some(reason) => SessionError::Terminated(reason.clone()),
            None => SessionError::InvalidFrame("the session is not established".into()),
        }
    }

    /// Server, on [`Event::ResumeRequested`]: refuses the resume (`ResumeAck` `NEW` with
    /// `code` and `message`) and ends this connection. The session named, if any, is not
    /// touched.
    pub fn resume_refuse(&mut self, code: ReasonCode, message: &str) {
        if !matches!(
            self.state,
            State::Handshake(Some(Handshake::AwaitResumeDecision(_)))
        ) {
            return;
        }
        tracing::info!(%code, %message, "resume refused");
        self.push_encoded(
            FrameKind::ResumeAck,
            &ResumeAck::New {
                code: code.to_u16(),
                message: messages::truncate(message).to_owned(),
            },
        );
        self.terminate(TerminationReason::ResumeRefused {
            code,
            message: messages::truncate(message).to_owned(),
        });
        self.arm_farewell_kind(FrameKind::ResumeAck);
    }

    /// Server, on [`Event::ResumeRequested`] for a session this server does not hold live
    /// but its store does (a restart, or another server of the fleet): rebuilds it as
    /// `config` (the same id) with `secret`, answers `RESUMED` asking for the client's
    /// state, and waits for it ([`Event::ResumeState`]). Sequencing starts from 0.
    pub fn resume_restore(&mut self, config: NegotiatedConfig, secret: ResumeSecret) {
        let State::Handshake(slot) = &mut self.state else {
            return;
        };
        let Some(Handshake::AwaitResumeDecision(auth)) = slot.take() else {
            return;
        };
        let established = Box::new(Established {
            peer_identity: auth.identity,
            requested_sequencing: config.sequencing,
            config,
            resume_secret: Some(secret),
            resumed_state: None,
        });
        self.state = State::Handshake(Some(Handshake::ExpectResumeState(established)));
        self.push_encoded(
            FrameKind::ResumeAck,
            &ResumeAck::Resumed {
                next_expected: 0,
                state_needed: true,
            },
        );
    }

    /// Server, on [`Event::ResumeState`]: the application rebuilt the session from
    /// `state` (`Ok`: `ResumeStateAck` code 0, the session is established) or could not
    /// (`Err`: code `StateRejected` with the message, and this connection ends).
    pub fn resume_state_verdict(
        &mut self,
        now: Instant,
        state: Bytes,
        verdict: Result<(), String>,
    ) {
        let State::Handshake(slot) = &mut self.state else {
            return;
        };
        let Some(Handshake::AwaitStateVerdict(mut established)) = slot.take() else {
            return;
        };
        match verdict {
            Ok(()) => {
                self.push_encoded(
                    FrameKind::ResumeStateAck,
                    &ResumeStateAck {
                        code: 0,
                        message: String::new(),
                    },
                );
                // A repeated `ResumeState` (this answer was lost) gets it again.
                self.flight = self.transmits.back().cloned().into_iter().collect();
                established.resumed_state = Some(state);
                tracing::info!(session = %established.config.session_id, "session rebuilt from the client's state");
                self.establish(now, established);
            }
            Err(message) => {
                let message = messages::truncate(&message).to_owned();
                self.push_encoded(
                    FrameKind::ResumeStateAck,
                    &ResumeStateAck {
                        code: ReasonCode::StateRejected.to_u16(),
                        message: message.clone(),
                    },
                );
                self.terminate(TerminationReason::ResumeRefused {
                    code: ReasonCode::StateRejected,
                    message,
                });
                self.arm_farewell_kind(FrameKind::ResumeStateAck);
            }
        }
    }

    /// Ends the session with `reason` without sending anything: a detached session whose
    /// client gave up reconnecting, or whose resume was refused.
    pub fn give_up(&mut self, reason: TerminationReason) {
        self.transmits.clear();
        self.terminate(reason);
    }

    /// Server: the session ends because its server shuts down, but stays resumable from
    /// the store (on a restarted server or another of the fleet): nothing is sent, so the
    /// client sees its transport end and reconnects.
    pub fn shut_down_resumable(&mut self) {
        self.transmits.clear();
        self.terminate(TerminationReason::ScopeCancelled);
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
        if self.detached.is_some() {
            // Nobody to tell: the session ends here.
            self.give_up(reason);
            return;
        }
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

    /// Ends at once because a layer above found that the peer broke its rules (for example
    /// the exchange rules of docs/PROTOCOL.md §9): as for a violation the session itself
    /// finds (§5.3), queued frames are dropped, a `Bye` with `ProtocolViolation` and
    /// `detail` (cut to [`messages::MAX_REASON_LEN`] bytes) tells the peer, and the session
    /// ends with [`TerminationReason::ProtocolViolation`] (origin local). A detached session
    /// ends at once (there is nobody to tell); an ended one stays as it is.
    pub fn fail_protocol(&mut self, detail: &str) {
        let detail = messages::truncate(detail).to_owned();
        if self.detached.is_some() {
            self.give_up(TerminationReason::ProtocolViolation {
                origin: Origin::Local,
                detail,
            });
            return;
        }
        self.violation(detail);
    }

    /// Ends at once: queued frames are dropped, and `Bye` (or `Reject`) says aborted.
    pub fn abort(&mut self) {
        if self.detached.is_some() {
            self.give_up(TerminationReason::Aborted {
                origin: Origin::Local,
            });
            return;
        }
        self.end(
            TerminationReason::Aborted {
                origin: Origin::Local,
            },
            false,
        );
    }

    /// Ends because the session's scope was cancelled.
    pub fn cancel(&mut self) {
        if self.detached.is_some() {
            self.give_up(TerminationReason::ScopeCancelled);
            return;
        }
        self.end(TerminationReason::ScopeCancelled, false);
    }

    /// The next frame to send. While established, sending resets the keepalive timer.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Frame> {
        if self.detached.is_some() {
            return None;
        }
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
        let sequencing = self
            .sequencing
            .as_ref()
            .filter(|_| self.detached.is_none())
            .and_then(Sequencing::poll_timeout);
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
mod resume_tests;
#[cfg(test)]
mod sequencing_tests;
#[cfg(test)]
mod tests;
