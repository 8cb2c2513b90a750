//! Establishment as a state machine: version, authentication, configuration
//! (docs/SESSION.md §1 to §5).
//!
//! ```text
//!  client                                         server
//!  ──────                                         ──────
//!  ExpectWelcome ──── Hello(VersionOffer) ──────▶ ExpectHello
//!                ◀─── Welcome(version, mech) ──── │ (or Reject: VersionMismatch)
//!  ClientAuth    ──── AuthProof ────────────────▶ ServerAuth
//!                ◀─── AuthChallenge ────────────  │   (as many rounds as the
//!                ──── AuthProof ────────────────▶ │    mechanism needs)
//!                ◀─── AuthResult ───────────────  ExpectConfigRequest
//!  ExpectConfig- ──── Config(ConfigRequest) ────▶ │   (Request-Session-Mode)
//!  Answer        ◀─── Config(ConfigAnswer) ─────  Established (Set-Session-Mode)
//!  Established
//!    or, when the mode set is not the one requested (§4.1):
//!  terminated    ──── Bye(ModeRejected) ────────▶ terminated (the NACK)
//!
//!  any state ── Reject / Bye received, bad frame, failed step ──▶ terminated
//! ```
//!
//! Each state is a value consumed by [`Handshake::handle`], which returns the next state,
//! the established session, or a [`Failure`] with the reason and the refusal to send
//! (`Reject` from the server, `Bye` from the client).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use liaison_resume::{KeyShare, ResumeSecret};
use liaison_seq::{ModeOutcome, ModeRequest, ServerModePolicy};
use liaison_wire::{Frame, FrameKind, VersionOffer, WireError};

use super::{ResumeRequest, Settings};
use crate::auth::{AuthContext, AuthError, AuthState, AuthStep, PeerIdentity, Role};
use crate::config::duration_to_millis;
use crate::messages::{
    self, Blob, Bye, ConfigAnswer, ConfigRequest, ReasonCode, Reject, Resume, ResumeAck,
    ResumeStateAck, Welcome,
};
use crate::{
    HandshakeFailure, NegotiatedConfig, Origin, RootCapability, SequencingMode, SessionId,
    TerminationReason,
};

/// What the handshake settled: who the peer is and the configuration in force.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Established {
    /// The identity authentication established for the peer.
    pub peer_identity: PeerIdentity,
    /// The negotiated configuration.
    pub config: NegotiatedConfig,
    /// The sequencing mode the client requested (differs from `config.sequencing` when the
    /// server set another mode, which the client refuses).
    pub(crate) requested_sequencing: SequencingMode,
    /// The resume secret, when the session is resumable (docs/PROTOCOL.md §10).
    pub(crate) resume_secret: Option<ResumeSecret>,
    /// Server: the state the client sent to rebuild the session after a restart.
    pub(crate) resumed_state: Option<Bytes>,
}

impl Established {
    /// Whether the session survives a lost connection.
    pub fn is_resumable(&self) -> bool {
        self.resume_secret.is_some()
    }

    /// Server: the state the client sent when the session was rebuilt after a restart.
    pub fn resumed_state(&self) -> Option<&Bytes> {
        self.resumed_state.as_ref()
    }
}

/// What a refusing side tells its peer: sent as `Reject` by the server and as `Bye` by the
/// client (docs/SESSION.md §5).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) code: ReasonCode,
    pub(crate) message: String,
    pub(crate) supported_versions: Vec<u16>,
}

/// Why the handshake ends, and the refusal to send the peer, if it is safe to send one.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) reason: TerminationReason,
    pub(crate) reply: Option<Refusal>,
}

fn refusal(code: ReasonCode, message: &str) -> Option<Refusal> {
    Some(Refusal {
        code,
        message: messages::truncate(message).to_owned(),
        supported_versions: Vec::new(),
    })
}

impl Failure {
    pub(crate) fn violation(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self {
            reply: refusal(ReasonCode::ProtocolViolation, &detail),
            reason: TerminationReason::ProtocolViolation {
                origin: Origin::Local,
                detail,
            },
        }
    }

    /// PROTOCOL.md §6.2: a first frame that is not a liaison `Hello` gets no answer.
    pub(crate) fn not_a_peer(detail: impl Into<String>) -> Self {
        Self {
            reply: None,
            reason: TerminationReason::ProtocolViolation {
                origin: Origin::Local,
                detail: detail.into(),
            },
        }
    }

    fn wire(what: &str, err: &WireError) -> Self {
        Self::violation(format!("malformed {what}: {err}"))
    }

    fn auth(err: &AuthError) -> Self {
        tracing::debug!(error = %err, "authentication failed");
        Self {
            // The peer learns nothing beyond the code (docs/SESSION.md §3).
            reply: refusal(ReasonCode::AuthenticationFailed, "authentication failed"),
            reason: TerminationReason::HandshakeFailed(HandshakeFailure::AuthenticationFailed {
                origin: Origin::Local,
                detail: err.to_string(),
            }),
        }
    }

    fn config(message: String) -> Self {
        Self {
            reply: refusal(ReasonCode::ConfigRejected, &message),
            reason: TerminationReason::HandshakeFailed(HandshakeFailure::Rejected {
                origin: Origin::Local,
                code: ReasonCode::ConfigRejected,
                message,
            }),
        }
    }

    /// docs/SESSION.md §4.1: the server set another mode; the client NACKs (its `Bye`
    /// restates the request) and ends.
    fn mode_rejected(requested: SequencingMode, offered: SequencingMode) -> Self {
        Self {
            reply: refusal(
                ReasonCode::ModeRejected,
                &format!("Request-Session-Mode: {requested} (the server set {offered})"),
            ),
            reason: TerminationReason::HandshakeFailed(HandshakeFailure::ModeRejected {
                origin: Origin::Local,
                requested,
                offered,
            }),
        }
    }

    /// A local end of the handshake for `reason` (timeout, close, abort, scope cancelled).
    pub(crate) fn local(reason: TerminationReason) -> Self {
        Self {
            reply: refusal(ReasonCode::from(&reason), &reason.to_string()),
            reason,
        }
    }

    /// The peer refused with `code` and `message`: nothing is sent back.
    fn remote(ctx: &Ctx<'_>, code: u16, message: &str, supported: &[u16]) -> Self {
        let local = &ctx.settings.session.versions;
        let (offered, supported) = match ctx.role {
            Role::Client => (local.as_slice(), supported),
            Role::Server => (&[][..], local.as_slice()),
        };
        Self {
            reason: messages::remote_reason(
                ReasonCode::from(code),
                message,
                false,
                offered,
                supported,
            ),
            reply: None,
        }
    }
}

/// What the machine needs besides its state: settings, randomness, the transport's TLS
/// peer certificates and the queue of frames to send.
pub(crate) struct Ctx<'a> {
    pub(crate) role: Role,
    pub(crate) settings: &'a Settings,
    pub(crate) rng: &'a mut dyn rand::RngCore,
    pub(crate) tls: Option<&'a [Bytes]>,
    pub(crate) out: &'a mut VecDeque<Frame>,
}

impl Ctx<'_> {
    fn send(&mut self, kind: FrameKind, payload: Bytes) {
        self.out.push_back(Frame::control(kind, payload));
    }

    fn send_encoded<T: serde::Serialize>(
        &mut self,
        kind: FrameKind,
        value: &T,
    ) -> Result<(), Failure> {
        // Our own messages are small and well-formed; an encoding failure is reported as a
        // local violation rather than a panic.
        let payload = messages::encode(value)
            .map_err(|e| Failure::violation(format!("cannot encode {kind}: {e}")))?;
        self.send(kind, payload);
        Ok(())
    }

    fn start_auth(&mut self, role: Role, version: u16) -> Box<dyn AuthState> {
        let mut auth_ctx = AuthContext::new(version, self.tls, &mut *self.rng);
        self.settings.authenticator.start(role, &mut auth_ctx)
    }
}

/// Where the handshake stands.
pub(crate) enum Handshake {
    /// Server: waiting for the client's `Hello`.
    ExpectHello,
    /// Client: `Hello` sent, waiting for `Welcome`.
    ExpectWelcome,
    /// Client: authenticating.
    ClientAuth(ClientAuth),
    /// Server: authenticating.
    ServerAuth(ServerAuth),
    /// Server: authenticated, waiting for the client's `Config` (or `Resume`).
    ExpectConfigRequest(Authenticated),
    /// Client: authenticated and `Config` sent, waiting for the server's.
    ExpectConfigAnswer(Authenticated),
    /// Client resuming: `Resume` sent, waiting for `ResumeAck` (PROTOCOL.md §10.1).
    ExpectResumeAck(Authenticated),
    /// Client resuming after a server restart: `ResumeState` sent, waiting for
    /// `ResumeStateAck` (PROTOCOL.md §10.2).
    ExpectResumeStateAck,
    /// Server: `Resume` received; the driver decides (registry, store, proof).
    AwaitResumeDecision(Authenticated),
    /// Server rebuilding a session: `ResumeAck` sent, waiting for `ResumeState`.
    ExpectResumeState(Box<Established>),
    /// Server: `ResumeState` received; the application's handler decides.
    AwaitStateVerdict(Box<Established>),
}

pub(crate) struct ClientAuth {
    version: u16,
    state: Box<dyn AuthState>,
    identity: Option<PeerIdentity>,
    /// The server's resume nonce from its `Welcome`.
    nonce: [u8; 32],
}

pub(crate) struct ServerAuth {
    version: u16,
    state: Box<dyn AuthState>,
    nonce: [u8; 32],
}

pub(crate) struct Authenticated {
    pub(crate) version: u16,
    pub(crate) identity: PeerIdentity,
    /// The server's resume nonce of this connection.
    pub(crate) nonce: [u8; 32],
    /// Client asking for a resumable session: its ephemeral key.
    key: Option<KeyShare>,
}

/// The result of handling one frame.
pub(crate) enum Step {
    Continue(Handshake),
    Established(Box<Established>),
    /// Server: a client asks to resume; the driver decides.
    ResumeRequested(Box<ResumeRequest>, Handshake),
    /// Client: the server resumed the session (`restarted`: it rebuilt it from the state;
    /// both sides number from 0 again).
    Resumed {
        peer_next: u64,
        restarted: bool,
    },
    /// Server: the client's state arrived; the handler decides.
    StateReceived(Bytes, Handshake),
}

impl Handshake {
    /// The client's first state; queues `Hello`.
    pub(crate) fn client(ctx: &mut Ctx<'_>) -> Result<Self, Failure> {
        let offer = VersionOffer::new(&ctx.settings.session.versions)
            .map_err(|e| Failure::local_config(&e))?;
        ctx.out.push_back(Frame::hello(&offer));
        Ok(Self::ExpectWelcome)
    }

    /// The server's first state.
    pub(crate) fn server() -> Self {
        Self::ExpectHello
    }

    /// The state's name, for logs and errors.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::ExpectHello => "waiting for Hello",
            Self::ExpectWelcome => "waiting for Welcome",
            Self::ClientAuth(_) | Self::ServerAuth(_) => "authenticating",
            Self::ExpectConfigRequest(_) | Self::ExpectConfigAnswer(_) => "configuring",
            Self::ExpectResumeAck(_)
            | Self::ExpectResumeStateAck
            | Self::AwaitResumeDecision(_)
            | Self::ExpectResumeState(_)
            | Self::AwaitStateVerdict(_) => "resuming",
        }
    }

    /// Handles one frame from the peer.
    pub(crate) fn handle(self, ctx: &mut Ctx<'_>, frame: Frame) -> Result<Step, Failure> {
        match (&self, frame.kind) {
            // PROTOCOL.md §6.2: only a `Hello` opens a connection.
            (Self::ExpectHello, kind) if kind != FrameKind::Hello => {
                return Err(Failure::not_a_peer(format!(
                    "first frame is {kind}, not Hello"
                )));
            }
            (_, FrameKind::Reject) => {
                let reject: Reject =
                    messages::decode(&frame.payload).map_err(|e| Failure::wire("Reject", &e))?;
                return Err(Failure::remote(
                    ctx,
                    reject.code,
                    &reject.message,
                    &reject.supported_versions,
                ));
            }
            (_, FrameKind::Bye) => {
                let bye: Bye =
                    messages::decode(&frame.payload).map_err(|e| Failure::wire("Bye", &e))?;
                return Err(Failure::remote(ctx, bye.code, &bye.message, &[]));
            }
            _ => {}
        }
        let state = self.name();
        let unexpected =
            |kind: FrameKind| Failure::violation(format!("unexpected {kind} frame while {state}"));
        match (self, frame.kind) {
            (Self::ExpectHello, FrameKind::Hello) => on_hello(ctx, &frame.payload),
            (Self::ExpectWelcome, FrameKind::Welcome) => on_welcome(ctx, &frame.payload),
            (Self::ClientAuth(auth), FrameKind::AuthChallenge) => {
                auth.on_challenge(ctx, &frame.payload)
            }
            (Self::ClientAuth(auth), FrameKind::AuthResult) => auth.on_result(ctx, &frame.payload),
            (Self::ServerAuth(auth), FrameKind::AuthProof) => auth.on_proof(ctx, &frame.payload),
            (Self::ExpectConfigRequest(auth), FrameKind::Config) => {
                auth.on_config_request(ctx, &frame.payload)
            }
            (Self::ExpectConfigAnswer(auth), FrameKind::Config) => {
                auth.on_config_answer(ctx, &frame.payload)
            }
            (Self::ExpectConfigRequest(auth), FrameKind::Resume) => {
                auth.on_resume(ctx, &frame.payload)
            }
            (Self::ExpectResumeAck(auth), FrameKind::ResumeAck) => {
                auth.on_resume_ack(ctx, &frame.payload)
            }
            (Self::ExpectResumeStateAck, FrameKind::ResumeStateAck) => {
                on_resume_state_ack(&frame.payload)
            }
            (Self::ExpectResumeState(established), FrameKind::ResumeState) => Ok(
                Step::StateReceived(frame.payload, Self::AwaitStateVerdict(established)),
            ),
            (_, kind) => Err(unexpected(kind)),
        }
    }
}

impl Failure {
    fn local_config(err: &WireError) -> Self {
        let message = format!("unusable local configuration: {err}");
        Self {
            reply: None,
            reason: TerminationReason::HandshakeFailed(HandshakeFailure::Rejected {
                origin: Origin::Local,
                code: ReasonCode::ConfigRejected,
                message,
            }),
        }
    }
}

/// Server, §2: pick the highest common version or reject.
fn on_hello(ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<Step, Failure> {
    let offer = match VersionOffer::decode(payload) {
        Ok(offer) => offer,
        Err(WireError::BadMagic(_)) => {
            return Err(Failure::not_a_peer(
                "not a liaison peer: bad magic in Hello",
            ));
        }
        Err(e) => return Err(Failure::wire("Hello", &e)),
    };
    let supported = &ctx.settings.session.versions;
    let Some(version) = offer.choose(supported) else {
        return Err(Failure {
            reason: TerminationReason::HandshakeFailed(HandshakeFailure::VersionMismatch {
                offered: offer.versions().to_vec(),
                supported: supported.clone(),
            }),
            reply: Some(Refusal {
                code: ReasonCode::VersionMismatch,
                message: "no protocol version in common".into(),
                supported_versions: supported.clone(),
            }),
        });
    };
    // PROTOCOL.md §10.1: a fresh nonce per connection, for a resume proof.
    let mut nonce = [0u8; 32];
    ctx.rng.fill_bytes(&mut nonce);
    let welcome = Welcome {
        version,
        mechanism: ctx.settings.authenticator.mechanism().to_owned(),
        nonce,
    };
    ctx.send(FrameKind::Welcome, welcome.to_bytes());
    let state = ctx.start_auth(Role::Server, version);
    Ok(Step::Continue(Handshake::ServerAuth(ServerAuth {
        version,
        state,
        nonce,
    })))
}

/// Client, §2 and §3: accept the chosen version, check the mechanism, speak first.
fn on_welcome(ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<Step, Failure> {
    let welcome = Welcome::decode(payload).map_err(|e| Failure::wire("Welcome", &e))?;
    if !ctx.settings.session.versions.contains(&welcome.version) {
        return Err(Failure::violation(format!(
            "server chose version {} which was not offered",
            welcome.version
        )));
    }
    let local = ctx.settings.authenticator.mechanism();
    if welcome.mechanism != local {
        return Err(Failure::auth(&AuthError::MechanismMismatch {
            local: local.to_owned(),
            remote: messages::truncate(&welcome.mechanism).to_owned(),
        }));
    }
    let state = ctx.start_auth(Role::Client, welcome.version);
    let mut auth = ClientAuth {
        version: welcome.version,
        state,
        identity: None,
        nonce: welcome.nonce,
    };
    auth.step(ctx, None)?;
    Ok(Step::Continue(Handshake::ClientAuth(auth)))
}

impl ClientAuth {
    /// Steps the mechanism and sends what it produced in an `AuthProof`.
    fn step(&mut self, ctx: &mut Ctx<'_>, incoming: Option<&[u8]>) -> Result<(), Failure> {
        match self.state.step(incoming) {
            Ok(AuthStep::Send(message)) => ctx.send(FrameKind::AuthProof, message),
            Ok(AuthStep::Done { identity, send }) => {
                self.identity = Some(identity);
                ctx.send(FrameKind::AuthProof, send.unwrap_or_default());
            }
            Err(e) => return Err(Failure::auth(&e)),
        }
        Ok(())
    }

    fn on_challenge(mut self, ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<Step, Failure> {
        if self.identity.is_some() {
            return Err(Failure::auth(&AuthError::Unexpected(
                "challenge after the client finished",
            )));
        }
        self.step(ctx, Some(payload))?;
        Ok(Step::Continue(Handshake::ClientAuth(self)))
    }

    /// §3: the server is done; the client must be done too. Then §4: send `Config`.
    fn on_result(self, ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<Step, Failure> {
        let identity = match self.identity {
            Some(identity) => identity,
            None => {
                let mut state = self.state;
                match state.step(Some(payload)) {
                    Ok(AuthStep::Done {
                        identity,
                        send: None,
                    }) => identity,
                    Ok(_) => {
                        return Err(Failure::auth(&AuthError::Unexpected(
                            "the server finished before the mechanism did",
                        )))
                    }
                    Err(e) => return Err(Failure::auth(&e)),
                }
            }
        };
        if let Some(ticket) = &ctx.settings.ticket {
            // PROTOCOL.md §10.1: `Resume` in place of `Config`, proven over this
            // connection's nonce.
            let resume = Resume {
                session_id: Blob(ticket.session_id.0.to_vec()),
                proof: Blob(
                    liaison_resume::proof(&ticket.secret, &self.nonce, &ticket.session_id.0)
                        .to_vec(),
                ),
                next_expected: ticket.next_expected,
            };
            ctx.send_encoded(FrameKind::Resume, &resume)?;
            return Ok(Step::Continue(Handshake::ExpectResumeAck(Authenticated {
                version: self.version,
                identity,
                nonce: self.nonce,
                key: None,
            })));
        }
        let key = ctx
            .settings
            .resume_requested
            .then(|| KeyShare::generate(&mut *ctx.rng));
        let session = &ctx.settings.session;
        let request = ConfigRequest {
            limits: session.limits,
            keepalive_ms: duration_to_millis(session.keepalive_interval),
            idle_timeout_ms: duration_to_millis(session.idle_timeout),
            sequencing: ctx.settings.sequencing,
            app_params: Blob(session.app_params.to_vec()),
            resume_key: key.as_ref().map(|key| Blob(key.public().to_vec())),
        };
        ctx.send_encoded(FrameKind::Config, &request)?;
        Ok(Step::Continue(Handshake::ExpectConfigAnswer(
            Authenticated {
                version: self.version,
                identity,
                nonce: self.nonce,
                key,
            },
        )))
    }
}

impl ServerAuth {
    fn on_proof(mut self, ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<Step, Failure> {
        match self.state.step(Some(payload)) {
            Ok(AuthStep::Send(message)) => {
                ctx.send(FrameKind::AuthChallenge, message);
                Ok(Step::Continue(Handshake::ServerAuth(self)))
            }
            Ok(AuthStep::Done { identity, send }) => {
                ctx.send(FrameKind::AuthResult, send.unwrap_or_default());
                Ok(Step::Continue(Handshake::ExpectConfigRequest(
                    Authenticated {
                        version: self.version,
                        identity,
                        nonce: self.nonce,
                        key: None,
                    },
                )))
            }
            Err(e) => Err(Failure::auth(&e)),
        }
    }
}

/// Milliseconds from the wire as a duration, refusing zero.
fn millis(ms: u64, what: &str) -> Result<Duration, String> {
    if ms == 0 {
        return Err(format!("{what} is zero"));
    }
    Ok(Duration::from_millis(ms))
}

impl Authenticated {
    /// Server, §4: negotiate and answer.
    fn on_config_request(self, ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<Step, Failure> {
        let request: ConfigRequest =
            messages::decode(payload).map_err(|e| Failure::wire("Config", &e))?;
        let settings = ctx.settings;
        let local = &settings.session;
        let negotiate = || -> Result<(SequencingMode, u64, u64), String> {
            request.limits.validate()?;
            millis(request.keepalive_ms, "keepalive interval")?;
            millis(request.idle_timeout_ms, "idle timeout")?;
            if request.idle_timeout_ms <= request.keepalive_ms {
                return Err("idle timeout does not exceed the keepalive interval".into());
            }
            let mode = answer_mode(
                request.sequencing,
                &settings.sequencing_modes,
                settings.reliable,
            )?;
            // Both sides validated keepalive < idle, so the minima keep that order.
            Ok((
                mode,
                request
                    .keepalive_ms
                    .min(duration_to_millis(local.keepalive_interval)),
                request
                    .idle_timeout_ms
                    .min(duration_to_millis(local.idle_timeout)),
            ))
        };
        let (sequencing, keepalive_ms, idle_timeout_ms) = negotiate().map_err(Failure::config)?;
        let keepalive_interval = Duration::from_millis(keepalive_ms);
        let idle_timeout = Duration::from_millis(idle_timeout_ms);
        let session_id = SessionId::random(&mut *ctx.rng);
        let limits = local.limits.min(request.limits);
        // PROTOCOL.md §10: a resumable session, if asked for, offered, and sequenced.
        let resume = match &request.resume_key {
            Some(client_key) if settings.resume_offered && sequencing.is_sequenced() => {
                let client_key: [u8; 32] = client_key
                    .to_array()
                    .ok_or_else(|| Failure::violation("resume key is not 32 bytes"))?;
                let key = KeyShare::generate(&mut *ctx.rng);
                let context = [client_key, key.public()].concat();
                let secret = key
                    .agree(&client_key, &session_id.0, &context)
                    .map_err(|e| Failure::violation(format!("resume key: {e}")))?;
                Some((key.public(), secret))
            }
            _ => None,
        };
        let answer = ConfigAnswer {
            session_id: Blob(session_id.0.to_vec()),
            limits,
            keepalive_ms,
            idle_timeout_ms,
            sequencing,
            app_params: Blob(local.app_params.to_vec()),
            root: settings
                .root
                .as_ref()
                .map(|root| (root.id, Blob(root.descriptor.to_vec()))),
            resume_key: resume.as_ref().map(|(public, _)| Blob(public.to_vec())),
        };
        ctx.send_encoded(FrameKind::Config, &answer)?;
        Ok(Step::Established(Box::new(Established {
            peer_identity: self.identity,
            config: NegotiatedConfig {
                session_id,
                version: self.version,
                limits,
                keepalive_interval,
                idle_timeout,
                sequencing,
                local_params: local.app_params.clone(),
                peer_params: Bytes::from(request.app_params.0),
                root: settings.root.clone(),
            },
            requested_sequencing: request.sequencing,
            resume_secret: resume.map(|(_, secret)| secret),
            resumed_state: None,
        })))
    }

    /// Server, PROTOCOL.md §10.1: a client asks to resume instead of configuring.
    fn on_resume(self, _ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<Step, Failure> {
        let resume: Resume = messages::decode(payload).map_err(|e| Failure::wire("Resume", &e))?;
        let session_id = resume
            .session_id
            .to_array()
            .ok_or_else(|| Failure::violation("session id is not 16 bytes"))?;
        let proof = resume
            .proof
            .to_array()
            .ok_or_else(|| Failure::violation("resume proof is not 32 bytes"))?;
        let request = ResumeRequest {
            session_id: SessionId(session_id),
            proof,
            next_expected: resume.next_expected,
            identity: self.identity.clone(),
            nonce: self.nonce,
            version: self.version,
        };
        Ok(Step::ResumeRequested(
            Box::new(request),
            Handshake::AwaitResumeDecision(self),
        ))
    }

    /// Client, PROTOCOL.md §10.1: the server's verdict on the resume.
    fn on_resume_ack(self, ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<Step, Failure> {
        let ack: ResumeAck =
            messages::decode(payload).map_err(|e| Failure::wire("ResumeAck", &e))?;
        match ack {
            ResumeAck::Resumed {
                next_expected,
                state_needed: false,
            } => Ok(Step::Resumed {
                peer_next: next_expected,
                restarted: false,
            }),
            ResumeAck::Resumed {
                state_needed: true, ..
            } => {
                // §10.2: the server lost the session and rebuilds it from our state.
                let state = ctx
                    .settings
                    .state
                    .as_ref()
                    .map(|state| state())
                    .unwrap_or_default();
                ctx.send(FrameKind::ResumeState, state);
                Ok(Step::Continue(Handshake::ExpectResumeStateAck))
            }
            ResumeAck::New { code, message } => Err(Failure::resume_refused(code, &message)),
        }
    }

    /// Client, §4: check the answer against the request.
    fn on_config_answer(self, ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<Step, Failure> {
        let answer: ConfigAnswer =
            messages::decode(payload).map_err(|e| Failure::wire("Config", &e))?;
        let settings = ctx.settings;
        let local = &settings.session;
        let check = || -> Result<(Duration, Duration), String> {
            answer.limits.validate()?;
            if !answer.limits.within(&local.limits) {
                return Err("server answered limits above the client's".into());
            }
            let keepalive = millis(answer.keepalive_ms, "keepalive interval")?;
            let idle = millis(answer.idle_timeout_ms, "idle timeout")?;
            if answer.keepalive_ms > duration_to_millis(local.keepalive_interval)
                || answer.idle_timeout_ms > duration_to_millis(local.idle_timeout)
                || idle <= keepalive
            {
                return Err("server answered timers the client did not ask for".into());
            }
            if answer.sequencing != settings.sequencing && !settings.sequencing.is_sequenced() {
                return Err(format!(
                    "server answered sequencing mode {}, the client asked for {}",
                    answer.sequencing, settings.sequencing
                ));
            }
            Ok((keepalive, idle))
        };
        let (keepalive_interval, idle_timeout) = check().map_err(Failure::config)?;
        check_mode(settings, answer.sequencing)?;
        let session_id = answer
            .session_id
            .to_array()
            .ok_or_else(|| Failure::violation("session id is not 16 bytes"))?;
        let resume_secret = match (&answer.resume_key, &self.key) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(Failure::violation(
                    "the server answered a resume key the client did not ask for",
                ))
            }
            (Some(server_key), Some(key)) => {
                let server_key: [u8; 32] = server_key
                    .to_array()
                    .ok_or_else(|| Failure::violation("resume key is not 32 bytes"))?;
                let context = [key.public(), server_key].concat();
                Some(
                    key.agree(&server_key, &session_id, &context)
                        .map_err(|e| Failure::violation(format!("resume key: {e}")))?,
                )
            }
        };
        Ok(Step::Established(Box::new(Established {
            peer_identity: self.identity,
            config: NegotiatedConfig {
                session_id: SessionId(session_id),
                version: self.version,
                limits: answer.limits,
                keepalive_interval,
                idle_timeout,
                sequencing: answer.sequencing,
                local_params: local.app_params.clone(),
                peer_params: Bytes::from(answer.app_params.0),
                root: answer
                    .root
                    .map(|(id, descriptor)| RootCapability::new(id, descriptor.0)),
            },
            requested_sequencing: settings.sequencing,
            resume_secret,
            resumed_state: None,
        })))
    }
}

/// Client, PROTOCOL.md §10.2: the server's verdict on the state sent.
fn on_resume_state_ack(payload: &[u8]) -> Result<Step, Failure> {
    let ack: ResumeStateAck =
        messages::decode(payload).map_err(|e| Failure::wire("ResumeStateAck", &e))?;
    if ack.code == 0 {
        Ok(Step::Resumed {
            peer_next: 0,
            restarted: true,
        })
    } else {
        Err(Failure::resume_refused(ack.code, &ack.message))
    }
}

impl Failure {
    /// The server refused a resume (`ResumeAck` `NEW`, or a failed `ResumeStateAck`):
    /// nothing is sent back.
    fn resume_refused(code: u16, message: &str) -> Self {
        Self {
            reason: TerminationReason::ResumeRefused {
                code: ReasonCode::from(code),
                message: messages::truncate(message).to_owned(),
            },
            reply: None,
        }
    }
}

/// Server, docs/SESSION.md §4.1: the mode to set (`Set-Session-Mode`) in answer to
/// `requested`, given the modes the server supports. A sequenced mode is answered by
/// [`ServerModePolicy`]: granted if supported, else the other sequenced mode if that one is
/// (the client then NACKs); no sequencing needs a reliable transport. Anything else is
/// refused.
fn answer_mode(
    requested: SequencingMode,
    supported: &[SequencingMode],
    reliable: bool,
) -> Result<SequencingMode, String> {
    let Some(mode) = requested.to_seq_mode() else {
        if !supported.contains(&SequencingMode::None) {
            return Err("sequencing mode none is not supported".into());
        }
        if !reliable {
            return Err(
                "sequencing mode none needs a reliable transport: ask for ordered or unordered"
                    .into(),
            );
        }
        return Ok(SequencingMode::None);
    };
    let policy = if supported.contains(&requested) {
        ServerModePolicy::Any
    } else if let Some(other) = supported.iter().find_map(|m| m.to_seq_mode()) {
        ServerModePolicy::Only(other)
    } else {
        return Err(format!("sequencing mode {requested} is not supported"));
    };
    Ok(SequencingMode::from_seq_mode(policy.answer(mode)))
}

/// Client, docs/SESSION.md §4.1: a sequenced mode request resolved with the server's
/// answer. Disagreement is a NACK (the `Bye` of [`Failure::mode_rejected`]); whether a new
/// registration follows is the connecting call's business
/// ([`ClientConfig::mode_policy`](crate::ClientConfig::mode_policy)).
fn check_mode(settings: &Settings, offered: SequencingMode) -> Result<(), Failure> {
    let Some(requested) = settings.sequencing.to_seq_mode() else {
        // Without sequencing the answer was checked with the other fields.
        return Ok(());
    };
    let Some(offered_mode) = offered.to_seq_mode() else {
        return Err(Failure::mode_rejected(settings.sequencing, offered));
    };
    match ModeRequest::new(requested, settings.mode_policy).on_answer(offered_mode) {
        ModeOutcome::Agreed(_) => Ok(()),
        ModeOutcome::Reregister { nack, .. } | ModeOutcome::Rejected { nack, .. } => Err(
            Failure::mode_rejected(SequencingMode::from_seq_mode(nack.requested()), offered),
        ),
        _ => Err(Failure::mode_rejected(settings.sequencing, offered)),
    }
}
