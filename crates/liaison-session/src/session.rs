//! [`Session`]: the handle on an established session, and [`IncomingFrames`], its data
//! path up to the layers above.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use liaison_transport::{Address, Connector, Transport, TransportConfig, TransportInfo};
use liaison_wire::{Frame, Limits};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::driver::{self, ClientSide, Command, Control, ServerSide};
use crate::lifecycle::Lifecycle;
use crate::proto::{check_outgoing, transport_room, within_room, Connection, Established};
use crate::{
    Aborted, AddressReconnect, ClientConfig, Eventual, LinkState, LinkStatus, NegotiatedConfig,
    PeerIdentity, PendingTable, Resolver, Revocable, RevocationGuard, Role, RootCapability, Scope,
    ServerConfig, SessionConfig, SessionError, SessionId, TerminationReason,
};

/// An established session. Cheap to clone: every clone is a handle on the same session.
///
/// One tokio task drives each session (handshake, keepalive, termination). The session
/// ends when either side closes or aborts it, its transport fails or ends, the peer breaks
/// the protocol or falls silent past the idle timeout, its scope is cancelled, or every
/// handle is dropped (a graceful close). However it ends, [`closed`](Self::closed) resolves
/// with the [`TerminationReason`] on both sides, every pending value of
/// [`pending`](Self::pending) resolves [`Aborted`], and every [`Revocable`] of the session
/// fails with [`Revoked`](crate::Revoked).
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    role: Role,
    established: Established,
    transport: TransportInfo,
    limits: Limits,
    commands: mpsc::Sender<Command>,
    control: mpsc::UnboundedSender<Control>,
    incoming: Mutex<Option<mpsc::Receiver<(u32, Frame)>>>,
    lifecycle: Arc<Lifecycle>,
    status: tokio::sync::watch::Receiver<LinkStatus>,
}

impl Session {
    /// Establishes a session as the client over a connected `transport` (step 1,
    /// reachability, is done): version, authentication and configuration, within the
    /// handshake deadline.
    ///
    /// A sequencing mode refused by the server ends in
    /// [`SessionError::ModeRejected`] whatever the
    /// [`mode_policy`](ClientConfig::mode_policy): registering again needs a new connection
    /// ([`connect_to`](Self::connect_to), [`connect_with`](Self::connect_with)). Asking for
    /// no sequencing over a transport that is not reliable fails at once with
    /// [`SessionError::InvalidConfig`] (docs/SESSION.md §4.1).
    pub async fn connect(
        transport: Box<dyn Transport>,
        config: ClientConfig,
    ) -> Result<Self, SessionError> {
        let scope = config.scope.clone();
        let now = driver::now();
        let mut conn = Connection::client(
            &config,
            driver::tls_chain(transport.as_ref()),
            Box::new(StdRng::from_entropy()),
            now,
        )?;
        conn.set_transport_properties(now, &transport.info().properties)?;
        let role = match &config.resume {
            None => driver::Role::Plain,
            Some(resume) => {
                let Some(source) = resume.reconnect.clone() else {
                    return Err(SessionError::InvalidConfig(
                        "a resumable session needs a reconnect source (ResumeConfig::with_reconnect)"
                            .into(),
                    ));
                };
                driver::Role::Client(Box::new(ClientSide {
                    config: config.clone(),
                    source,
                }))
            }
        };
        Self::establish(conn, transport, &config.session, scope, Role::Client, role).await
    }

    /// As [`connect`](Self::connect), over connections `connector` opens: when the server
    /// sets another sequencing mode and the
    /// [`mode_policy`](ClientConfig::mode_policy) allows more registrations, the client
    /// (having NACKed) registers again on a new connection (docs/SESSION.md §4.1).
    pub async fn connect_with(
        connector: &dyn Connector,
        config: ClientConfig,
    ) -> Result<Self, SessionError> {
        let mut config = config;
        loop {
            let transport = connector.connect().await?;
            let next = config.next_registration();
            match (Self::connect(transport, config).await, next) {
                (Err(SessionError::ModeRejected { offered, .. }), Some(next)) => {
                    tracing::debug!(%offered, "session mode refused: registering again");
                    config = next;
                }
                (result, _) => return result,
            }
        }
    }

    /// As [`connect`](Self::connect), the session a member of `scope`.
    pub async fn connect_in(
        scope: &Scope,
        transport: Box<dyn Transport>,
        config: ClientConfig,
    ) -> Result<Self, SessionError> {
        Self::connect(transport, config.in_scope(scope)).await
    }

    /// Connects a transport to `address` (a connect error is returned as it is, in
    /// [`SessionError::Transport`]), then establishes a session over it. A refused
    /// sequencing mode is registered again on a new connection as the
    /// [`mode_policy`](ClientConfig::mode_policy) allows (see
    /// [`connect_with`](Self::connect_with)).
    pub async fn connect_to(
        address: &Address,
        transport_config: &TransportConfig,
        config: ClientConfig,
    ) -> Result<Self, SessionError> {
        let mut config = config;
        if let Some(resume) = config.resume.as_mut() {
            if resume.reconnect.is_none() {
                resume.reconnect = Some(Arc::new(AddressReconnect {
                    address: address.clone(),
                    config: transport_config.clone(),
                }));
            }
        }
        loop {
            let transport = liaison_transport::connect(address, transport_config).await?;
            let next = config.next_registration();
            match (Self::connect(transport, config).await, next) {
                (Err(SessionError::ModeRejected { offered, .. }), Some(next)) => {
                    tracing::debug!(%offered, "session mode refused: registering again");
                    config = next;
                }
                (result, _) => return result,
            }
        }
    }

    /// Establishes a session as the server over an accepted `transport`.
    pub async fn accept(
        transport: Box<dyn Transport>,
        config: ServerConfig,
    ) -> Result<Self, SessionError> {
        let scope = config.scope.clone();
        let now = driver::now();
        let mut conn = Connection::server(
            &config,
            driver::tls_chain(transport.as_ref()),
            Box::new(StdRng::from_entropy()),
            now,
        )?;
        conn.set_transport_properties(now, &transport.info().properties)?;
        let role = match &config.resume {
            None => driver::Role::Plain,
            Some(resume) => driver::Role::Server(Box::new(ServerSide {
                resume: resume.clone(),
                local_params: config.session.app_params.clone(),
                root: config.root.clone(),
            })),
        };
        Self::establish(conn, transport, &config.session, scope, Role::Server, role).await
    }

    /// As [`accept`](Self::accept), the session a member of `scope`.
    pub async fn accept_in(
        scope: &Scope,
        transport: Box<dyn Transport>,
        config: ServerConfig,
    ) -> Result<Self, SessionError> {
        Self::accept(transport, config.in_scope(scope)).await
    }

    async fn establish(
        conn: Connection,
        transport: Box<dyn Transport>,
        config: &SessionConfig,
        scope: Option<CancellationToken>,
        role: Role,
        driver_role: driver::Role,
    ) -> Result<Self, SessionError> {
        let info = transport.info().clone();
        let capacities = (
            usize::try_from(config.limits.send_buffer).unwrap_or(usize::MAX),
            usize::try_from(config.limits.receive_buffer).unwrap_or(usize::MAX),
        );
        let spawned = driver::spawn(
            conn,
            transport,
            scope.unwrap_or_default(),
            capacities,
            config.linger,
            driver_role,
        );
        let established = match spawned.established.await {
            Ok(result) => result?,
            // The task ended without a word: only if it panicked.
            Err(_) => {
                return Err(SessionError::Terminated(
                    spawned
                        .lifecycle
                        .reason()
                        .cloned()
                        .unwrap_or(TerminationReason::TransportClosed),
                ))
            }
        };
        let limits = within_room(
            Limits {
                max_frame_payload: established.config.limits.max_frame_payload,
                ..Limits::DEFAULT
            },
            transport_room(info.properties.max_frame),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                role,
                established: *established,
                transport: info,
                limits,
                commands: spawned.commands,
                control: spawned.control,
                incoming: Mutex::new(Some(spawned.incoming)),
                lifecycle: spawned.lifecycle,
                status: spawned.status,
            }),
        })
    }

    /// Whether the session has a connection now (docs/SESSION.md §8): a resumable session
    /// is [`Detached`](LinkState::Detached) between a lost connection and its resume.
    pub fn link(&self) -> LinkState {
        if self.is_terminated() {
            return LinkState::Ended;
        }
        self.inner.status.borrow().state
    }

    /// How many times the session was resumed over a new connection.
    pub fn resumes(&self) -> u32 {
        self.inner.status.borrow().resumes
    }

    /// The session's link and resume count, as a watch that changes on every detach,
    /// resume and the end.
    pub fn link_changes(&self) -> tokio::sync::watch::Receiver<LinkStatus> {
        self.inner.status.clone()
    }

    /// Whether the session survives a lost connection (both sides agreed to it).
    pub fn is_resumable(&self) -> bool {
        self.inner.established.is_resumable()
    }

    /// Server: the state the client sent when this session was rebuilt after a server
    /// restart (docs/PROTOCOL.md §10.2); `None` for a session opened as new.
    pub fn resumed_state(&self) -> Option<&bytes::Bytes> {
        self.inner.established.resumed_state()
    }

    /// The session's id, chosen by the server.
    pub fn id(&self) -> SessionId {
        self.inner.established.config.session_id
    }

    /// The protocol version in use.
    pub fn version(&self) -> u16 {
        self.inner.established.config.version
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// Who the peer is, as authentication established it.
    pub fn peer_identity(&self) -> &PeerIdentity {
        &self.inner.established.peer_identity
    }

    /// The negotiated configuration.
    pub fn config(&self) -> &NegotiatedConfig {
        &self.inner.established.config
    }

    /// The server's root capability, if it offers one.
    pub fn root(&self) -> Option<&RootCapability> {
        self.inner.established.config.root.as_ref()
    }

    /// What the transport said about the connection (addresses, properties, TLS chain).
    pub fn transport_info(&self) -> &TransportInfo {
        &self.inner.transport
    }

    /// Sends a frame of the layers above (`Data`, `Exchange*`, `Resume*`, and without
    /// sequencing `Ack`, `NeedSeq`), waiting while the send queue is full (backpressure).
    ///
    /// In a sequenced session (ordered or unordered) exchange frames are numbered, kept
    /// until the peer acknowledges them and retransmitted as needed (docs/SESSION.md §7);
    /// a full retransmit buffer is backpressure too. `Ok` means the session took the
    /// frame: a resumable session takes frames while detached, and delivers them after
    /// the resume, unless the server turns out to have restarted (docs/SESSION.md §8.2):
    /// then every frame it never acknowledged is given up and counted in
    /// [`LinkStatus::abandoned`], and what waited on them resolves
    /// [`PeerRestarted`](TerminationReason::PeerRestarted). The frame is written for the
    /// peer as [`LinkStatus::restarts`] says now; see [`send_as_of`](Self::send_as_of).
    ///
    /// Refused at once: session kinds (handshake, `Bye`, `Ping`, `Pong`; `Ack`, `NeedSeq`
    /// when sequenced), frames over the negotiated limits or the transport's frame size, and
    /// anything after termination ([`SessionError::Terminated`]).
    pub async fn send(&self, frame: Frame) -> Result<(), SessionError> {
        let restarts = self.inner.status.borrow().restarts;
        self.send_as_of(restarts, frame).await
    }

    /// As [`send`](Self::send), for a frame written for the peer as it was after
    /// `restarts` restarts ([`LinkStatus::restarts`] as the caller last saw it). If the
    /// peer has restarted since (docs/PROTOCOL.md §10.3), the frame belongs to what the
    /// old peer knew (an exchange the rebuilt peer never saw): it is given up, counted in
    /// [`LinkStatus::abandoned`], instead of reaching the new peer. A layer above that keeps
    /// its own view of the peer's restarts (the exchange layer does) passes it here, so
    /// that a frame it writes before it has seen a restart never reaches the rebuilt peer.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_as_of(&self, restarts: u32, frame: Frame) -> Result<(), SessionError> {
        match self.try_send_as_of(restarts, frame)? {
            None => Ok(()),
            Some(frame) => self
                .inner
                .commands
                .send(Command::Send { frame, restarts })
                .await
                .map_err(|_| self.terminated_error()),
        }
    }

    /// As [`send_as_of`](Self::send_as_of), without waiting: `Ok(None)` when the session
    /// took the frame, `Ok(Some(frame))`, the frame given back, while the send queue is full
    /// (wait with [`send_ready`](Self::send_ready), then try again). A layer above that
    /// must hand over frames in the order it numbers them does both under one lock.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn try_send_as_of(
        &self,
        restarts: u32,
        frame: Frame,
    ) -> Result<Option<Frame>, SessionError> {
        self.check_alive()?;
        check_outgoing(
            &frame,
            &self.inner.limits,
            self.inner.established.config.sequencing.is_sequenced(),
        )?;
        // Inside the session's own sink, a frame skips the command queue while that is
        // empty: nothing sent before it can be overtaken.
        let commands = &self.inner.commands;
        let frame = if commands.capacity() == commands.max_capacity() {
            match driver::send_while_delivering(&self.inner.lifecycle, restarts, frame) {
                Ok(()) => return Ok(None),
                Err(frame) => frame,
            }
        } else {
            frame
        };
        match commands.try_send(Command::Send { frame, restarts }) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(Command::Send { frame, .. })) => Ok(Some(frame)),
            Err(_) => Err(self.terminated_error()),
        }
    }

    /// Waits until the send queue has room for a frame, or the session ended.
    ///
    /// # Errors
    ///
    /// [`SessionError::Terminated`] once the session ended.
    pub async fn send_ready(&self) -> Result<(), SessionError> {
        self.check_alive()?;
        self.inner
            .commands
            .reserve()
            .await
            .map(drop)
            .map_err(|_| self.terminated_error())
    }

    /// The frames the peer sent for the layers above, in arrival order; in a sequenced
    /// session, each exchange frame exactly once, in the peer's sending order (ordered) or
    /// as it arrived (unordered). There is one such stream per session: the first call
    /// takes it, later calls get `None`. Bounded by the negotiated receive buffer: while it
    /// is full, the session stops reading from the transport.
    pub fn take_incoming(&self) -> Option<IncomingFrames> {
        self.inner
            .incoming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .map(|rx| IncomingFrames { rx, restarts: 0 })
    }

    /// Hands the frames the peer sends for the layers above to `sink`, called on the
    /// session's own task as they arrive, instead of queueing them for
    /// [`take_incoming`](Self::take_incoming): frames received before go to the sink first,
    /// in order. A layer that handles each frame without waiting (the exchange layer does)
    /// saves a task hand-over per frame this way. One of the two per session: `false` if
    /// the incoming frames were taken already.
    pub fn deliver_to(&self, sink: Arc<dyn FrameSink>) -> bool {
        let Some(queued) = self
            .inner
            .incoming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return false;
        };
        // The control queue never fills; once the session's task is gone, the frames it
        // received are handed over here.
        if let Err(mpsc::error::SendError(Control::Sink { sink, queued })) =
            self.inner.control.send(Control::Sink { sink, queued })
        {
            driver::deliver_late(sink.as_ref(), queued, []);
        }
        true
    }

    /// Closes gracefully: frames sent before go out, then `Bye` with `reason`; waits until
    /// the transport is closed and returns how the session ended (the peer may have ended
    /// it first).
    pub async fn close(&self, reason: impl Into<String>) -> TerminationReason {
        if !self.is_terminated() {
            // If the driver is gone the session is over already.
            let _ = self
                .inner
                .commands
                .send(Command::Close(reason.into()))
                .await;
        }
        self.inner.lifecycle.finished().await;
        self.closed().await
    }

    /// Ends the session at once: every pending value resolves
    /// [`Aborted`](TerminationReason::Aborted) before this returns, queued frames are
    /// dropped, and the peer is sent a `Bye` saying so if the transport still works.
    pub fn abort(&self) {
        self.inner.lifecycle.terminate(TerminationReason::Aborted {
            origin: crate::Origin::Local,
        });
        // Closed: the driver is gone, the session is over already.
        let _ = self.inner.control.send(Control::Abort);
    }

    /// Ends the session at once because a layer above found that the peer broke its rules
    /// (for example the exchange rules of docs/PROTOCOL.md §9): the same end as a violation
    /// the session finds itself (PROTOCOL.md §5.3). Every pending value resolves
    /// [`Aborted`] with [`TerminationReason::ProtocolViolation`] (origin
    /// [`Local`](crate::Origin::Local), `detail` cut to
    /// [`MAX_REASON_LEN`](crate::messages::MAX_REASON_LEN) bytes) before this returns, queued
    /// frames are dropped, and the peer is sent a `Bye` with code `ProtocolViolation` and
    /// `detail`, so it ends with the same reason, origin
    /// [`Remote`](crate::Origin::Remote). Nothing happens to a session that has ended.
    pub fn fail_protocol(&self, detail: impl Into<String>) {
        let detail = crate::messages::truncate(&detail.into()).to_owned();
        let decided = self
            .inner
            .lifecycle
            .terminate(TerminationReason::ProtocolViolation {
                origin: crate::Origin::Local,
                detail: detail.clone(),
            });
        if decided {
            // Closed: the driver is gone, the session is over already.
            let _ = self.inner.control.send(Control::Violation(detail));
        }
    }

    /// Waits until the session has ended and returns why.
    pub async fn closed(&self) -> TerminationReason {
        self.inner.lifecycle.terminated().await
    }

    /// Waits until the session's task has finished: last frames written, transport closed.
    pub async fn finished(&self) {
        self.inner.lifecycle.finished().await;
    }

    /// Whether the session has ended.
    pub fn is_terminated(&self) -> bool {
        self.inner.lifecycle.reason().is_some()
    }

    /// Why the session ended, once it has.
    pub fn termination_reason(&self) -> Option<TerminationReason> {
        self.inner.lifecycle.reason().cloned()
    }

    /// The table of eventual values pending on this session.
    pub fn pending(&self) -> &PendingTable {
        &self.inner.lifecycle.pending
    }

    /// Registers a pending value; see [`PendingTable::register`].
    pub fn register<T: Send + 'static>(&self) -> Result<(Resolver<T>, Eventual<T>), Aborted> {
        self.pending().register()
    }

    /// How many values are pending.
    pub fn pending_count(&self) -> usize {
        self.pending().len()
    }

    /// A guard that fails with [`Revoked`](crate::Revoked) once the session has ended.
    pub fn revocation_guard(&self) -> RevocationGuard {
        RevocationGuard::new(Arc::clone(&self.inner.lifecycle))
    }

    /// `value` as a capability of this session, revoked when it ends.
    pub fn revocable<T>(&self, value: T) -> Revocable<T> {
        Revocable::new(value, self.revocation_guard())
    }

    fn check_alive(&self) -> Result<(), SessionError> {
        match self.inner.lifecycle.reason() {
            Some(reason) => Err(SessionError::Terminated(reason.clone())),
            None => Ok(()),
        }
    }

    fn terminated_error(&self) -> SessionError {
        SessionError::Terminated(
            self.inner
                .lifecycle
                .reason()
                .cloned()
                .unwrap_or(TerminationReason::TransportClosed),
        )
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("role", &self.inner.role)
            .field("peer", &self.inner.transport.peer)
            .field("peer_identity", self.peer_identity())
            .field("terminated", &self.inner.lifecycle.reason())
            .finish()
    }
}

/// Takes the frames a session received for the layers above, on the session's task; see
/// [`Session::deliver_to`].
///
/// [`deliver`](Self::deliver) runs on the task that reads the transport, writes and keeps
/// the session's timers: it must not wait or block. What it cannot finish at once it hands
/// to a task of its own. It bounds its own memory: nothing holds the session's reading back
/// while it is called. A frame it sends on its session while it runs (an answer) goes out
/// in the same pass, without a trip through the session's command queue.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use liaison_session::{ClientConfig, FrameSink, PskAuth, ServerConfig, Session};
/// use liaison_transport::memory;
/// use liaison_wire::Frame;
///
/// /// Counts the bytes of every frame, on the session's task.
/// #[derive(Default)]
/// struct Counter(AtomicUsize);
///
/// impl FrameSink for Counter {
///     fn deliver(&self, frames: &mut Vec<(u32, Frame)>) {
///         for (_restarts, frame) in frames.drain(..) {
///             self.0.fetch_add(frame.payload.len(), Ordering::Relaxed);
///         }
///     }
/// }
///
/// let (a, b) = memory::pair(64, 1 << 20);
/// let (client, server) = tokio::try_join!(
///     Session::connect(Box::new(a), ClientConfig::new(PskAuth::new("app", [7; 32])?)),
///     Session::accept(Box::new(b), ServerConfig::new(PskAuth::new("app", [7; 32])?)),
/// )?;
/// let counter = Arc::new(Counter::default());
/// assert!(server.deliver_to(counter.clone()));
/// client.send(Frame::data(1, &b"hello"[..])).await?;
/// client.close("done").await;
/// server.finished().await;
/// assert_eq!(counter.0.load(Ordering::Relaxed), 5);
/// # Ok(()) }
/// ```
pub trait FrameSink: Send + Sync + 'static {
    /// Takes every frame of `frames`, in arrival order, each with the peer restarts before
    /// it (as [`IncomingFrames::restarts`] tells).
    fn deliver(&self, frames: &mut Vec<(u32, Frame)>);
}

/// The frames a session received for the layers above; see [`Session::take_incoming`].
#[derive(Debug)]
pub struct IncomingFrames {
    rx: mpsc::Receiver<(u32, Frame)>,
    restarts: u32,
}

impl IncomingFrames {
    /// The next frame; `None` once the session has ended and every frame received before
    /// was taken.
    pub async fn recv(&mut self) -> Option<Frame> {
        let (restarts, frame) = self.rx.recv().await?;
        self.restarts = restarts;
        Some(frame)
    }

    /// Polls for the next frame (for hand-written futures and streams).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        self.rx.poll_recv(cx).map(|next| {
            next.map(|(restarts, frame)| {
                self.restarts = restarts;
                frame
            })
        })
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let (restarts, frame) = self.rx.try_recv().ok()?;
        self.restarts = restarts;
        Some(frame)
    }

    /// How many times the peer had restarted and rebuilt the session (docs/PROTOCOL.md
    /// §10.2) when the last frame returned was received. Frames with different counts
    /// come from different incarnations of the peer: exchanges of an older one are gone.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}
