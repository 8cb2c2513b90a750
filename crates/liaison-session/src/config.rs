//! What a session is configured with ([`SessionConfig`], [`ClientConfig`], [`ServerConfig`])
//! and what the handshake settled on ([`NegotiatedConfig`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use liaison_seq::{ClientModePolicy, Overflow};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::{ResumeConfig, Scope, ServerResume, SessionError};

/// How the session numbers and orders its application frames, requested by the client and
/// answered by the server (docs/SESSION.md §4.1).
///
/// With `Ordered` or `Unordered`, the session runs a `liaison-seq` sequencer over every
/// exchange frame (docs/SESSION.md §7): numbers, acks, `Need-Seq`, retransmission, exactly
/// once delivery. With `None` frames pass straight through, and the transport must be
/// reliable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SequencingMode {
    /// No sequence numbers: the transport's own guarantees are all there is.
    #[default]
    None,
    /// Sequence numbers, gap detection and retransmission; delivery in order.
    Ordered,
    /// Sequence numbers and retransmission; delivery as frames arrive.
    Unordered,
}

impl SequencingMode {
    /// The sequencer's mode, `None` for [`SequencingMode::None`].
    pub fn to_seq_mode(self) -> Option<liaison_seq::Mode> {
        match self {
            Self::None => None,
            Self::Ordered => Some(liaison_seq::Mode::Ordered),
            Self::Unordered => Some(liaison_seq::Mode::Unordered),
        }
    }

    /// The session mode of a sequencer's mode.
    pub fn from_seq_mode(mode: liaison_seq::Mode) -> Self {
        match mode {
            liaison_seq::Mode::Unordered => Self::Unordered,
            // `Mode` is non-exhaustive; every mode but unordered delivers in order.
            _ => Self::Ordered,
        }
    }

    /// Whether frames are sequenced (`Ordered` or `Unordered`).
    pub fn is_sequenced(self) -> bool {
        self != Self::None
    }
}

impl fmt::Display for SequencingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Ordered => "ordered",
            Self::Unordered => "unordered",
        })
    }
}

/// Limits each side announces in its configuration; the session runs with the minimum of
/// both sides, field by field (docs/SESSION.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionLimits {
    /// Largest payload of a data frame, in bytes.
    pub max_frame_payload: u32,
    /// Most exchanges open at the same time.
    pub max_exchanges: u32,
    /// Frames a receiver buffers for its application before it stops reading (backpressure;
    /// a [`FrameSink`](crate::FrameSink) takes every frame at once instead). In a sequenced
    /// session, also the frames held ahead of a gap.
    pub receive_buffer: u32,
    /// Frames a sender queues before `send` waits (backpressure). In a sequenced session,
    /// also the frames the retransmit buffer holds until acknowledged (docs/SESSION.md
    /// §7.6).
    pub send_buffer: u32,
}

impl SessionLimits {
    /// The field-by-field minimum of two announcements.
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        Self {
            max_frame_payload: self.max_frame_payload.min(other.max_frame_payload),
            max_exchanges: self.max_exchanges.min(other.max_exchanges),
            receive_buffer: self.receive_buffer.min(other.receive_buffer),
            send_buffer: self.send_buffer.min(other.send_buffer),
        }
    }

    /// Whether every field of `self` is at most the one of `other`.
    pub fn within(&self, other: &Self) -> bool {
        self.min(*other) == *self
    }

    /// Checks that no limit is zero.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_frame_payload == 0 {
            return Err("max_frame_payload is zero".into());
        }
        if self.max_exchanges == 0 {
            return Err("max_exchanges is zero".into());
        }
        if self.receive_buffer == 0 || self.send_buffer == 0 {
            return Err("a buffer size is zero".into());
        }
        Ok(())
    }
}

impl Default for SessionLimits {
    /// 1 MiB data payloads, 1024 exchanges, 256 frames buffered each way.
    fn default() -> Self {
        Self {
            max_frame_payload: liaison_wire::DEFAULT_MAX_FRAME_PAYLOAD,
            max_exchanges: 1024,
            receive_buffer: 256,
            send_buffer: 256,
        }
    }
}

/// The root capability the server offers every client: an id and an opaque descriptor,
/// both defined by the application (docs/SESSION.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RootCapability {
    /// Application-defined id of the root object.
    pub id: u64,
    /// Application-defined description (an interface name, a schema hash, ...).
    pub descriptor: Bytes,
}

impl RootCapability {
    /// A root capability with `id` and `descriptor`.
    pub fn new(id: u64, descriptor: impl Into<Bytes>) -> Self {
        Self {
            id,
            descriptor: descriptor.into(),
        }
    }
}

/// A session's id: 128 random bits chosen by the server. Not a secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    /// A fresh id from `rng`.
    pub fn random(rng: &mut dyn rand::RngCore) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self(id)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// How a sequenced session (ordered or unordered) acknowledges and retransmits, and how a
/// handshake and a last `Bye` are repeated over a transport that may lose frames
/// (docs/SESSION.md §7.6).
///
/// The retransmit buffer holds at most the negotiated
/// [`SessionLimits::send_buffer`] frames, and at most `max_buffer_bytes` of payload (but
/// always room for one largest frame); the receive side holds at most
/// [`SessionLimits::receive_buffer`] frames ahead of a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetransmitConfig {
    /// What a full retransmit buffer does: [`Overflow::Backpressure`] (the default: `send`
    /// waits, nothing is lost) or [`Overflow::DropOldest`] (the oldest unacknowledged frame
    /// is forgotten; if the peer asks for it, this side bows out and the session ends with
    /// [`BowedOut`](crate::TerminationReason::BowedOut) here and
    /// [`SequenceAbandoned`](crate::TerminationReason::SequenceAbandoned) there).
    pub overflow: Overflow,
    /// How long received frames wait for outgoing data to carry their ack before a
    /// standalone `Ack` goes out.
    pub ack_delay: Duration,
    /// The retransmission timeout before the sequencer has a round-trip sample; it doubles
    /// on each timeout without progress, up to `max_rto`. Once the round trip is measured,
    /// the sequencer's timeouts (retransmission, repeated `Need-Seq`) derive from it, at
    /// least `min_rto` (docs/SESSION.md §7.4). Over a lossy transport, `initial_rto` also
    /// paces the repeats of a last `Bye`, and the client's handshake retransmissions until
    /// the handshake measured a round trip (docs/SESSION.md §7.6).
    pub initial_rto: Duration,
    /// The cap of the retransmission timeout's doubling.
    pub max_rto: Duration,
    /// The floor of the sequencer's timeouts derived from the measured round trip
    /// ([`liaison_seq::Config::DEFAULT_MIN_RTO`], 1 ms, by default).
    pub min_rto: Duration,
    /// Most payload bytes the retransmit buffer and the reorder buffer each hold.
    pub max_buffer_bytes: usize,
}

impl Default for RetransmitConfig {
    /// Backpressure, 25 ms ack delay, retransmission after 200 ms until the round trip is
    /// measured (then from the estimate, at least 1 ms), doubling up to 5 s, 16 MiB of
    /// buffered payload each way.
    fn default() -> Self {
        Self {
            overflow: Overflow::Backpressure,
            ack_delay: Duration::from_millis(25),
            initial_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(5),
            min_rto: liaison_seq::Config::DEFAULT_MIN_RTO,
            max_buffer_bytes: 16 << 20,
        }
    }
}

/// Settings both roles share. Build one with [`Default`] and change the fields you need.
///
/// ```
/// use std::time::Duration;
/// use liaison_session::SessionConfig;
///
/// let mut config = SessionConfig::default();
/// config.keepalive_interval = Duration::from_secs(5);
/// config.idle_timeout = Duration::from_secs(20);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Protocol versions this endpoint speaks. The client offers them; the server picks the
    /// highest one both list (docs/SESSION.md §2).
    pub versions: Vec<u16>,
    /// Limits announced to the peer (docs/SESSION.md §4).
    pub limits: SessionLimits,
    /// After this long without sending anything, the session sends a `Ping`.
    pub keepalive_interval: Duration,
    /// After this long without receiving anything, the session ends with
    /// [`IdleTimeout`](crate::TerminationReason::IdleTimeout). Must exceed the keepalive
    /// interval.
    pub idle_timeout: Duration,
    /// The whole handshake must complete within this long.
    pub handshake_timeout: Duration,
    /// Application parameters sent to the peer during configuration (opaque bytes).
    pub app_params: Bytes,
    /// How long an ended session waits for its last frames (`Bye`, `Reject`) to be written
    /// before it drops the transport.
    pub linger: Duration,
    /// Acknowledgement and retransmission of a sequenced session, and of the handshake over
    /// a lossy transport.
    pub retransmit: RetransmitConfig,
}

impl Default for SessionConfig {
    /// Version [`PROTOCOL_VERSION`](liaison_wire::PROTOCOL_VERSION), default limits,
    /// keepalive every 15 s, idle timeout 60 s, handshake deadline 10 s, no parameters,
    /// 2 s linger.
    fn default() -> Self {
        Self {
            versions: liaison_wire::SUPPORTED_VERSIONS.to_vec(),
            limits: SessionLimits::default(),
            keepalive_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            app_params: Bytes::new(),
            linger: Duration::from_secs(2),
            retransmit: RetransmitConfig::default(),
        }
    }
}

impl SessionConfig {
    /// Checks the settings: at least one version and at most as many as a `Hello` carries,
    /// non-zero limits and durations, an idle timeout longer than the keepalive interval,
    /// and application parameters that fit a control frame.
    pub fn validate(&self) -> Result<(), SessionError> {
        let invalid = |msg: String| Err(SessionError::InvalidConfig(msg));
        if self.versions.is_empty() {
            return invalid("no protocol version configured".into());
        }
        if self.versions.len() > liaison_wire::MAX_OFFERED_VERSIONS {
            return invalid(format!(
                "{} versions configured, at most {} can be offered",
                self.versions.len(),
                liaison_wire::MAX_OFFERED_VERSIONS
            ));
        }
        if let Err(msg) = self.limits.validate() {
            return invalid(msg);
        }
        if duration_to_millis(self.keepalive_interval) == 0 || self.handshake_timeout.is_zero() {
            return invalid(
                "keepalive interval must be at least 1 ms and handshake timeout non-zero".into(),
            );
        }
        // Timers travel in whole milliseconds (docs/SESSION.md §4).
        if duration_to_millis(self.idle_timeout) <= duration_to_millis(self.keepalive_interval) {
            return invalid(format!(
                "idle timeout {:?} must exceed the keepalive interval {:?}",
                self.idle_timeout, self.keepalive_interval
            ));
        }
        if duration_to_millis(self.idle_timeout) == u64::MAX {
            return invalid("idle timeout too large".into());
        }
        // A Config payload carries the parameters plus a few dozen bytes of fields.
        let room = usize::try_from(liaison_wire::DEFAULT_MAX_CONTROL_PAYLOAD / 2).unwrap_or(0);
        if self.app_params.len() > room {
            return invalid(format!(
                "application parameters of {} bytes exceed {room}",
                self.app_params.len()
            ));
        }
        Ok(())
    }
}

/// Whole milliseconds of `d`, saturating.
pub(crate) fn duration_to_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Everything a client needs to establish a session.
///
/// There is no default authenticator: [`ClientConfig::new`] takes one, so running without
/// authentication is an explicit choice of [`NoAuth`](crate::NoAuth).
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Settings shared with the server role.
    pub session: SessionConfig,
    /// The sequencing mode the client asks for.
    pub sequencing: SequencingMode,
    /// What the client does when the server sets another sequencing mode than it asked for
    /// (docs/SESSION.md §4.1): NACK, then fail with
    /// [`ModeRejected`](crate::SessionError::ModeRejected) (the default), or NACK and
    /// register again on a new connection where the connect call can open one
    /// ([`Session::connect_to`](crate::Session::connect_to),
    /// [`Session::connect_with`](crate::Session::connect_with)).
    pub mode_policy: ClientModePolicy,
    /// Keeps the session across lost connections (docs/SESSION.md §8), if set.
    pub resume: Option<ResumeConfig>,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) scope: Option<CancellationToken>,
}

impl ClientConfig {
    /// A client configuration authenticating with `authenticator` and default settings.
    pub fn new(authenticator: impl Authenticator + 'static) -> Self {
        Self::with_authenticator(Arc::new(authenticator))
    }

    /// As [`new`](Self::new), with a shared authenticator.
    pub fn with_authenticator(authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            session: SessionConfig::default(),
            sequencing: SequencingMode::None,
            mode_policy: ClientModePolicy::Fail,
            resume: None,
            authenticator,
            scope: None,
        }
    }

    /// Asks for a resumable session (docs/SESSION.md §8): the session survives a lost
    /// connection, reconnecting as `resume` says. A resumable session is sequenced: a
    /// client asking for no sequencing asks for `Ordered` instead.
    #[must_use]
    pub fn with_resume(mut self, resume: ResumeConfig) -> Self {
        if self.sequencing == SequencingMode::None {
            self.sequencing = SequencingMode::Ordered;
        }
        self.resume = Some(resume);
        self
    }

    /// Replaces the shared settings.
    #[must_use]
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Asks for a sequencing mode.
    #[must_use]
    pub fn with_sequencing(mut self, mode: SequencingMode) -> Self {
        self.sequencing = mode;
        self
    }

    /// Sets what happens when the server sets another sequencing mode.
    #[must_use]
    pub fn with_mode_policy(mut self, policy: ClientModePolicy) -> Self {
        self.mode_policy = policy;
        self
    }

    /// The configuration for the next registration after a refused mode, if the policy
    /// allows one more: the same, with one attempt fewer.
    pub(crate) fn next_registration(&self) -> Option<Self> {
        match self.mode_policy {
            ClientModePolicy::Reregister { attempts } if attempts > 0 => {
                let mut next = self.clone();
                next.mode_policy = ClientModePolicy::Reregister {
                    attempts: attempts - 1,
                };
                Some(next)
            }
            _ => None,
        }
    }

    /// Makes sessions built from this configuration members of `scope`.
    #[must_use]
    pub fn in_scope(self, scope: &Scope) -> Self {
        self.with_cancellation(scope.token())
    }

    /// Ends sessions built from this configuration when `token` is cancelled.
    #[must_use]
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.scope = Some(token);
        self
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Arc<dyn Authenticator> {
        &self.authenticator
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("session", &self.session)
            .field("sequencing", &self.sequencing)
            .field("mode_policy", &self.mode_policy)
            .field("resume", &self.resume)
            .field("authenticator", &self.authenticator.mechanism())
            .field("scoped", &self.scope.is_some())
            .finish()
    }
}

/// Everything a server needs to establish sessions.
///
/// As with [`ClientConfig`], the authenticator is required.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Settings shared with the client role.
    pub session: SessionConfig,
    /// Sequencing modes the server supports (docs/SESSION.md §4.1). A request for a listed
    /// mode is granted; a request for `ordered` or `unordered` when only the other one is
    /// listed is answered with that other one (`Set-Session-Mode`, which the client then
    /// NACKs); any other request is rejected with `ConfigRejected`.
    pub sequencing_modes: Vec<SequencingMode>,
    /// The root capability offered to every client.
    pub root: Option<RootCapability>,
    /// Most handshakes a [`Server`](crate::Server) runs at once; further connections wait in
    /// the listener's queue.
    pub max_pending_handshakes: usize,
    /// Established sessions a [`Server`](crate::Server) queues for
    /// [`accept`](crate::Server::accept) before it stops accepting connections.
    pub accept_queue: usize,
    /// Keeps sessions resumable (docs/SESSION.md §8), if set.
    pub resume: Option<ServerResume>,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) scope: Option<CancellationToken>,
}

impl ServerConfig {
    /// A server configuration authenticating with `authenticator` and default settings:
    /// every sequencing mode accepted, no root capability.
    pub fn new(authenticator: impl Authenticator + 'static) -> Self {
        Self::with_authenticator(Arc::new(authenticator))
    }

    /// As [`new`](Self::new), with a shared authenticator.
    pub fn with_authenticator(authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            session: SessionConfig::default(),
            sequencing_modes: vec![
                SequencingMode::None,
                SequencingMode::Ordered,
                SequencingMode::Unordered,
            ],
            root: None,
            max_pending_handshakes: 256,
            accept_queue: 64,
            resume: None,
            authenticator,
            scope: None,
        }
    }

    /// Replaces the shared settings.
    #[must_use]
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Offers `root` to every client.
    #[must_use]
    pub fn with_root(mut self, root: RootCapability) -> Self {
        self.root = Some(root);
        self
    }

    /// Keeps sessions that ask for it resumable, as `resume` says.
    #[must_use]
    pub fn with_resume(mut self, resume: ServerResume) -> Self {
        self.resume = Some(resume);
        self
    }

    /// Accepts only these sequencing modes.
    #[must_use]
    pub fn with_sequencing_modes(mut self, modes: impl Into<Vec<SequencingMode>>) -> Self {
        self.sequencing_modes = modes.into();
        self
    }

    /// Makes sessions built from this configuration (and a server's accept loop) members of
    /// `scope`.
    #[must_use]
    pub fn in_scope(self, scope: &Scope) -> Self {
        self.with_cancellation(scope.token())
    }

    /// Ends sessions built from this configuration when `token` is cancelled.
    #[must_use]
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.scope = Some(token);
        self
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Arc<dyn Authenticator> {
        &self.authenticator
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("session", &self.session)
            .field("sequencing_modes", &self.sequencing_modes)
            .field("root", &self.root)
            .field("max_pending_handshakes", &self.max_pending_handshakes)
            .field("accept_queue", &self.accept_queue)
            .field("resume", &self.resume)
            .field("authenticator", &self.authenticator.mechanism())
            .field("scoped", &self.scope.is_some())
            .finish()
    }
}

/// What the handshake settled on, the same on both sides except for which parameters are
/// local and which are the peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NegotiatedConfig {
    /// The session's id, chosen by the server.
    pub session_id: SessionId,
    /// The protocol version in use.
    pub version: u16,
    /// Limits in force: the minimum of both announcements.
    pub limits: SessionLimits,
    /// Interval of send-silence after which a `Ping` goes out.
    pub keepalive_interval: Duration,
    /// Receive-silence after which the session ends.
    pub idle_timeout: Duration,
    /// The sequencing mode in force.
    pub sequencing: SequencingMode,
    /// This endpoint's application parameters.
    pub local_params: Bytes,
    /// The peer's application parameters.
    pub peer_params: Bytes,
    /// The server's root capability, if it offers one (on both sides).
    pub root: Option<RootCapability>,
}
