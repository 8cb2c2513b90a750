//! The tokio driver: one task per session around the sans-IO [`Connection`].
//!
//! The session task `select!`s over its control queue (abort, the scope's cancellation,
//! violations the layers above found), the write in progress, the core's next deadline,
//! room in the incoming queue, the transport's receiver and the user's commands. Every
//! branch feeds the core; after each, the task writes what `poll_transmit` yields (one
//! batch at a time, see [`Writer`]) and delivers what `poll_event` yields. After a frame,
//! it reads on without waiting while the transport has more (up to a batch). A slow peer
//! stalls the write, never the session task: pings, timers and aborts keep working, and
//! the user's `send` waits (backpressure).
//!
//! A resumable session (docs/SESSION.md §8) outlives its transport. The client's task then
//! reconnects on a backoff schedule and runs the resume handshake on a second, short-lived
//! [`Connection`] before handing the new transport to the session's own. The server's task
//! waits for an [`Attach`]: the task of a new connection that proved the session's secret
//! hands over its transport; it also keeps the session's record in the store.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_resume::{Backoff, ResumeError, ResumeRecord, ResumeSecret};
use liaison_transport::{FrameReceiver, Properties, Transport, TransportError};
use liaison_wire::Frame;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::lifecycle::Lifecycle;
use crate::messages::{self, Blob};
use crate::proto::{Connection, Established, Event, ResumeRequest};
use crate::quiet::{QuietReceiver, QuietTimer};
use crate::resume::{identity_key, Entry};
use crate::writer::{Writer, WRITE_BATCH};
use crate::{
    ClientConfig, FrameSink, LinkState, LinkStatus, NegotiatedConfig, PeerIdentity, ReasonCode,
    Reconnect, RootCapability, SequencingMode, ServerResume, SessionError, SessionId,
    SessionLimits, TerminationReason,
};

/// What a [`Session`](crate::Session) handle asks of its driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a frame of the layers above, written for the peer as it was after `restarts`
    /// restarts: a frame for an incarnation of the peer that is gone is given up.
    Send {
        /// The frame.
        frame: Frame,
        /// [`LinkStatus::restarts`] as the sender saw it.
        restarts: u32,
    },
    /// Close gracefully with this reason.
    Close(String),
}

/// What reaches the session task ahead of its commands, on a queue of its own that never
/// fills.
pub(crate) enum Control {
    /// [`Session::abort`](crate::Session::abort).
    Abort,
    /// The session's scope was cancelled.
    ScopeCancelled,
    /// A layer above found that the peer broke its rules.
    Violation(String),
    /// [`Session::deliver_to`](crate::Session::deliver_to): from now on incoming frames go
    /// to `sink`, after those `queued` for [`IncomingFrames`](crate::IncomingFrames).
    Sink {
        sink: Arc<dyn FrameSink>,
        queued: mpsc::Receiver<(u32, Frame)>,
    },
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Abort => f.write_str("Abort"),
            Self::ScopeCancelled => f.write_str("ScopeCancelled"),
            Self::Violation(detail) => f.debug_tuple("Violation").field(detail).finish(),
            Self::Sink { .. } => f.write_str("Sink"),
        }
    }
}

/// A connected transport, split: its receiver and its sending half (with the batch it may
/// be writing, which goes along when the link is handed over).
pub(crate) struct Link {
    receiver: Box<dyn FrameReceiver>,
    writer: Writer,
    properties: Properties,
}

impl Link {
    fn new(transport: Box<dyn Transport>) -> Self {
        let properties = transport.info().properties;
        let (sender, receiver) = transport.split();
        Self {
            receiver,
            writer: Writer::new(sender),
            properties,
        }
    }
}

/// A new connection of a live resumable session, handed over by the task that
/// authenticated it and checked its proof (docs/PROTOCOL.md §10.1).
pub(crate) struct Attach {
    link: Link,
    /// The client received every sequenced frame below this number.
    peer_next: u64,
    /// The client's handshake frames on this connection, which it may still repeat.
    peer_handshake: Vec<Frame>,
}

/// Server: what a resumable session's task needs besides its connection.
pub(crate) struct ServerSide {
    pub(crate) resume: ServerResume,
    /// What a rebuilt session announces (the server's own parameters and root).
    pub(crate) local_params: Bytes,
    pub(crate) root: Option<RootCapability>,
}

/// Client: how a detached session reconnects.
pub(crate) struct ClientSide {
    pub(crate) config: ClientConfig,
    pub(crate) source: Arc<dyn Reconnect>,
}

/// The handles a spawned session task leaves to its owner.
pub(crate) struct Spawned {
    pub(crate) commands: mpsc::Sender<Command>,
    /// Aborts and protocol violations, ahead of queued commands.
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) incoming: mpsc::Receiver<(u32, Frame)>,
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) established: oneshot::Receiver<Result<Box<Established>, SessionError>>,
    pub(crate) status: watch::Receiver<LinkStatus>,
}

/// The reading of the tokio clock the core works with.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The transport's verified TLS peer chain as DER bytes.
pub(crate) fn tls_chain(transport: &dyn Transport) -> Option<Vec<Bytes>> {
    transport
        .info()
        .tls_peer_certificates
        .as_ref()
        .map(|chain| {
            chain
                .iter()
                .map(|cert| Bytes::copy_from_slice(cert.as_ref()))
                .collect()
        })
}

/// What the role adds to the plain driver.
pub(crate) enum Role {
    Plain,
    Client(Box<ClientSide>),
    Server(Box<ServerSide>),
}

/// Spawns the session task for `conn` over `transport`.
pub(crate) fn spawn(
    conn: Connection,
    transport: Box<dyn Transport>,
    scope: CancellationToken,
    capacities: (usize, usize),
    linger: Duration,
    role: Role,
) -> Spawned {
    let (commands_tx, commands_rx) = mpsc::channel(capacities.0.max(1));
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    // The scope's cancellation reaches the session task on its control queue: the task
    // waits on one queue rather than on a token too.
    let watcher = control_tx.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = scope.cancelled() => {
                let _ = watcher.send(Control::ScopeCancelled);
            }
            () = watcher.closed() => {}
        }
    });
    let (incoming_tx, incoming_rx) = mpsc::channel(capacities.1.max(1));
    let (established_tx, established_rx) = oneshot::channel();
    let (status_tx, status_rx) = watch::channel(LinkStatus {
        state: LinkState::Attached,
        resumes: 0,
        restarts: 0,
        abandoned: 0,
    });
    let lifecycle = Arc::new(Lifecycle::default());
    let link = Link::new(transport);
    let (client, server) = match role {
        Role::Plain => (None, None),
        Role::Client(side) => (
            Some(Reconnecting {
                backoff: Backoff::new(side.config.resume.clone().unwrap_or_default().backoff),
                side: *side,
                rng: StdRng::from_entropy(),
                retry_at: None,
                connecting: None,
                attempt: None,
                last_error: String::new(),
            }),
            None,
        ),
        Role::Server(side) => {
            let (attach_tx, attach_rx) = mpsc::channel(4);
            (
                None,
                Some(Serving {
                    side: *side,
                    attach_tx,
                    attach_rx,
                    record: None,
                    keep_record: false,
                    restoring: None,
                    session_id: None,
                }),
            )
        }
    };
    let mut driver = Driver {
        conn,
        receiver: None,
        writer: None,
        properties: link.properties,
        commands: commands_rx,
        control: QuietReceiver::new(control_rx),
        incoming: incoming_tx,
        deliver: VecDeque::new(),
        sink: None,
        sinking: Vec::new(),
        sent: Vec::new(),
        restarts: 0,
        handed_up: 0,
        last_taken: 0,
        lifecycle: Arc::clone(&lifecycle),
        established: Some(established_tx),
        transport_error: None,
        linger,
        status: status_tx,
        client,
        server,
        handed_off: None,
    };
    driver.install(link);
    tokio::spawn(driver.run());
    Spawned {
        commands: commands_tx,
        control: control_tx,
        incoming: incoming_rx,
        lifecycle,
        established: established_rx,
        status: status_rx,
    }
}

thread_local! {
    /// While a session task hands frames to its sink: which session, and the frames the
    /// layers above send on it meanwhile ([`send_while_delivering`]).
    static DELIVERING: RefCell<Option<Delivering>> = const { RefCell::new(None) };
}

/// The frames sent on a session from within its sink (a handler answering at once).
struct Delivering {
    /// The session's [`Lifecycle`], by address.
    session: usize,
    sent: Vec<(u32, Frame)>,
}

/// Collects, for as long as it lives, what is sent on one session on this thread (its sink
/// running on its task); taken back on drop, so a sink that panics leaves nothing behind.
struct Collecting;

impl Collecting {
    fn start(lifecycle: &Arc<Lifecycle>, sent: Vec<(u32, Frame)>) -> Self {
        DELIVERING.with(|cell| {
            *cell.borrow_mut() = Some(Delivering {
                session: Arc::as_ptr(lifecycle).addr(),
                sent,
            });
        });
        Self
    }

    /// What was sent; `None` only if the thread's record is gone.
    fn finish(self) -> Option<Vec<(u32, Frame)>> {
        DELIVERING.with(|cell| cell.borrow_mut().take().map(|d| d.sent))
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        let _ = DELIVERING.try_with(|cell| cell.try_borrow_mut().map(|mut d| d.take()));
    }
}

/// Takes `frame` for the session of `lifecycle` without a round through its command queue
/// if the caller runs inside that session's sink, on its task: the task writes it as soon
/// as the sink returns, with no wake-up of itself. Gives the frame back otherwise, or when
/// the session already holds [`COMMAND_BATCH`] such frames (the queue's backpressure
/// applies beyond).
pub(crate) fn send_while_delivering(
    lifecycle: &Arc<Lifecycle>,
    restarts: u32,
    frame: Frame,
) -> Result<(), Frame> {
    DELIVERING.with(|cell| {
        let Ok(mut delivering) = cell.try_borrow_mut() else {
            return Err(frame);
        };
        match delivering.as_mut() {
            Some(d)
                if d.session == Arc::as_ptr(lifecycle).addr() && d.sent.len() < COMMAND_BATCH =>
            {
                d.sent.push((restarts, frame));
                Ok(())
            }
            _ => Err(frame),
        }
    })
}

/// Hands `sink`, set when the session task was gone or going, what was received for it:
/// the frames `queued` for the incoming stream, then those `waiting` for room in it.
pub(crate) fn deliver_late(
    sink: &dyn FrameSink,
    mut queued: mpsc::Receiver<(u32, Frame)>,
    waiting: impl IntoIterator<Item = (u32, Frame)>,
) {
    let mut frames = Vec::new();
    take_queued(&mut queued, &mut frames);
    frames.extend(waiting);
    if !frames.is_empty() {
        sink.deliver(&mut frames);
    }
}

/// Frames queued for the incoming stream, into `frames`: what a sink set later gets first.
fn take_queued(queued: &mut mpsc::Receiver<(u32, Frame)>, frames: &mut Vec<(u32, Frame)>) {
    while let Ok(frame) = queued.try_recv() {
        frames.push(frame);
    }
}

/// Most commands the session task takes in one wake-up before it looks at the transport
/// and its timers again.
const COMMAND_BATCH: usize = 64;

/// Most reads from the transport the session task makes in one wake-up.
const RECEIVE_BATCH: usize = 64;

/// Most frames the session task gathers for its sink before it hands them over and writes
/// what they called for: smaller than a receive batch, so that the answers to the first
/// requests of a burst leave while the rest are handled (both ends keep busy).
const SINK_BATCH: usize = 16;

type ConnectFuture =
    Pin<Box<dyn Future<Output = Result<Box<dyn Transport>, TransportError>> + Send>>;

/// Client: the reconnection state of a resumable session.
struct Reconnecting {
    side: ClientSide,
    backoff: Backoff,
    rng: StdRng,
    /// When the next attempt starts.
    retry_at: Option<tokio::time::Instant>,
    /// An attempt connecting its transport.
    connecting: Option<ConnectFuture>,
    /// An attempt running the resume handshake over the current link.
    attempt: Option<Connection>,
    last_error: String,
}

/// Server: the resume state of a session.
struct Serving {
    side: ServerSide,
    attach_tx: mpsc::Sender<Attach>,
    attach_rx: mpsc::Receiver<Attach>,
    /// The session's record, once established resumable.
    record: Option<(String, Bytes)>,
    /// The session ended with its server, and stays resumable from the store.
    keep_record: bool,
    /// A session being rebuilt from the store: its id, the client's identity, and the
    /// record this server claimed for it (its bytes and version, docs/SESSION.md §8.3).
    restoring: Option<(SessionId, PeerIdentity, Bytes, u64)>,
    /// The registered session's id.
    session_id: Option<SessionId>,
}

/// What woke the session task.
enum Wake {
    Control(Option<Control>),
    Written(Result<(), TransportError>),
    Timeout,
    Delivered(Option<mpsc::OwnedPermit<(u32, Frame)>>),
    Received(Result<Option<Bytes>, TransportError>),
    Command(Option<Command>),
    Connected(Result<Box<dyn Transport>, TransportError>),
    Attach(Option<Attach>),
}

struct Driver {
    conn: Connection,
    receiver: Option<Box<dyn FrameReceiver>>,
    writer: Option<Writer>,
    properties: Properties,
    commands: mpsc::Receiver<Command>,
    /// Aborts and protocol violations; handled even while commands wait.
    control: QuietReceiver<Control>,
    /// Frames for the layers above, each with the peer restarts before it.
    incoming: mpsc::Sender<(u32, Frame)>,
    /// Frames the incoming queue had no room for; while any wait, nothing is read.
    deliver: VecDeque<(u32, Frame)>,
    /// Where incoming frames go instead of the queue, once set.
    sink: Option<Arc<dyn FrameSink>>,
    /// Frames for the sink, handed over together.
    sinking: Vec<(u32, Frame)>,
    /// Frames the sink sent while it ran (its buffer, kept across deliveries).
    sent: Vec<(u32, Frame)>,
    /// Peer restarts so far: the tag of delivered frames.
    restarts: u32,
    /// Frames handed up since the task last took commands: each may wake a caller that
    /// answers with a frame of its own ([`in_burst`](Self::in_burst)).
    handed_up: usize,
    /// Commands the task took in its last wake-up for them.
    last_taken: usize,
    lifecycle: Arc<Lifecycle>,
    established: Option<oneshot::Sender<Result<Box<Established>, SessionError>>>,
    transport_error: Option<TransportError>,
    linger: Duration,
    status: watch::Sender<LinkStatus>,
    client: Option<Reconnecting>,
    server: Option<Serving>,
    /// This connection resumed the live session with this id: its task is done.
    handed_off: Option<SessionId>,
}

async fn recv_from(
    receiver: &mut Option<Box<dyn FrameReceiver>>,
) -> Result<Option<Bytes>, TransportError> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// The core sending and receiving now: a resume attempt's, or the session's own.
fn active_of<'a>(
    conn: &'a mut Connection,
    client: &'a mut Option<Reconnecting>,
) -> &'a mut Connection {
    match client.as_mut().and_then(|c| c.attempt.as_mut()) {
        Some(attempt) => attempt,
        None => conn,
    }
}

async fn written(writer: &mut Option<Writer>) -> Result<(), TransportError> {
    match writer {
        Some(writer) => writer.written().await,
        None => std::future::pending().await,
    }
}

async fn connected_from(
    client: &mut Option<Reconnecting>,
) -> Result<Box<dyn Transport>, TransportError> {
    match client.as_mut().and_then(|c| c.connecting.as_mut()) {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn attach_from(server: &mut Option<Serving>) -> Option<Attach> {
    match server {
        Some(serving) => serving.attach_rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn install(&mut self, link: Link) {
        self.properties = link.properties;
        self.receiver = Some(link.receiver);
        self.writer = Some(link.writer);
    }

    /// Takes the link out, for handing it to another session's task.
    fn take_link(&mut self) -> Option<Link> {
        Some(Link {
            receiver: self.receiver.take()?,
            writer: self.writer.take()?,
            properties: self.properties,
        })
    }

    /// Drops the link at once (a lost or replaced connection).
    fn drop_link(&mut self) {
        self.receiver = None;
        self.writer = None;
    }

    /// The core sending and receiving now ([`active_of`]).
    fn active(&mut self) -> &mut Connection {
        active_of(&mut self.conn, &mut self.client)
    }

    fn has_transmit(&self) -> bool {
        self.active_ref().has_transmit()
    }

    fn active_ref(&self) -> &Connection {
        match self.client.as_ref().and_then(|c| c.attempt.as_ref()) {
            Some(attempt) => attempt,
            None => &self.conn,
        }
    }

    /// Whether the task takes the user's next command: until a batch's worth of frames
    /// waits to be written (the rest waits in the command queue: backpressure up to
    /// `Session::send`). Without a connection, frames wait in the core (a resumable
    /// session's retransmit buffer) and only its bound counts.
    fn takes_commands(&self) -> bool {
        // Commands feed the session's own core, whatever connection is active.
        self.conn.is_writable()
            && (self.writer.is_none() || self.active_ref().queued_transmits() < WRITE_BATCH)
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        let mut next = self.conn.poll_timeout().map(tokio::time::Instant::from_std);
        if let Some(client) = &self.client {
            let attempt = client
                .attempt
                .as_ref()
                .and_then(Connection::poll_timeout)
                .map(tokio::time::Instant::from_std);
            for other in [attempt, client.retry_at].into_iter().flatten() {
                next = Some(next.map_or(other, |n| n.min(other)));
            }
        }
        next
    }

    async fn run(mut self) {
        let mut commands_open = true;
        let mut control_open = true;
        // Frames read in a row without going through the `select!`.
        let mut reads = 0;
        // Set up once, not on every pass: one timer that moves only when the core's
        // deadline does.
        let mut timer = QuietTimer::new();
        let mut armed = None;
        loop {
            self.handle_events().await;
            if self.handed_off.is_some() || self.conn.is_drained() {
                self.flush_sink();
                break;
            }
            if !self.move_transmits() {
                // The connection broke: its events first.
                continue;
            }
            // After a frame, the task reads on while the transport has more (up to a
            // batch). Frames for the sink gather meanwhile, and go together once it stops:
            // the answers of a sink that answers at once then leave in one write.
            let ready = if (1..RECEIVE_BATCH).contains(&reads) && self.sinking.len() < SINK_BATCH {
                self.try_receive()
            } else {
                None
            };
            if ready.is_none() && !self.move_transmits_after_sink() {
                continue;
            }
            let deadline = self.deadline();
            // The deadline moves later on most frames (the idle and keepalive timers): the
            // timer then stays where it is and fires early, once, which the core takes as
            // nothing due, and is set again. It is moved only when the deadline comes sooner.
            match deadline {
                Some(deadline) if armed.is_none_or(|at| deadline < at) => {
                    timer.reset(deadline);
                    armed = Some(deadline);
                }
                Some(_) => {}
                None => armed = None,
            }
            // A sequenced session with a full retransmit buffer takes no more frames until
            // the peer's acks make room (backpressure up to `Session::send`).
            let takes_commands = self.takes_commands();
            let writing = self.writer.as_ref().is_some_and(Writer::is_busy);
            let has_receiver = self.receiver.is_some();
            let connecting = self.client.as_ref().is_some_and(|c| c.connecting.is_some());
            reads = if ready.is_some() { reads + 1 } else { 0 };
            let wake = if let Some(wake) = ready {
                wake
            } else {
                tokio::select! {
                    biased;
                    control = self.control.recv(), if control_open => Wake::Control(control),
                    result = written(&mut self.writer), if writing => Wake::Written(result),
                    () = timer.elapsed(), if armed.is_some() => Wake::Timeout,
                    permit = self.incoming.clone().reserve_owned(), if !self.deliver.is_empty() => {
                        Wake::Delivered(permit.ok())
                    }
                    result = recv_from(&mut self.receiver), if self.deliver.is_empty() && has_receiver => {
                        Wake::Received(result)
                    }
                    command = self.commands.recv(), if commands_open && takes_commands => {
                        Wake::Command(command)
                    }
                    result = connected_from(&mut self.client), if connecting => {
                        Wake::Connected(result)
                    }
                    attach = attach_from(&mut self.server), if self.server.is_some() => Wake::Attach(attach),
                }
            };
            if reads == 0 && matches!(wake, Wake::Received(_)) {
                reads = 1;
            }
            match wake {
                Wake::Control(Some(Control::Abort)) => self.conn.abort(),
                Wake::Control(Some(Control::ScopeCancelled)) => {
                    match self.server.as_mut() {
                        Some(serving) if serving.record.is_some() && self.conn.is_established() => {
                            // The server shuts down; the session stays resumable from the
                            // store (docs/SESSION.md §8.4).
                            serving.keep_record = true;
                            self.conn.shut_down_resumable();
                        }
                        _ => self.conn.cancel(),
                    }
                }
                Wake::Control(Some(Control::Violation(detail))) => self.conn.fail_protocol(&detail),
                Wake::Control(Some(Control::Sink { sink, queued })) => self.set_sink(sink, queued),
                Wake::Control(None) => control_open = false,
                Wake::Written(Ok(())) => {}
                Wake::Written(Err(e)) => self.write_failed(e),
                Wake::Timeout => {
                    armed = None;
                    self.on_timeout();
                }
                Wake::Delivered(Some(permit)) => {
                    if let Some(frame) = self.deliver.pop_front() {
                        permit.send(frame);
                    }
                    if self.deliver.is_empty() {
                        self.conn.set_receive_paused(now(), false);
                    }
                }
                Wake::Delivered(None) => {
                    // Nobody reads incoming frames any more.
                    self.deliver.clear();
                    self.conn.set_receive_paused(now(), false);
                }
                Wake::Received(result) => self.on_received(result),
                Wake::Command(Some(command)) => {
                    if self.in_burst() {
                        // Let the rest of the burst queue its frames first: they then
                        // leave in one write.
                        tokio::task::yield_now().await;
                    }
                    self.take_commands(command);
                }
                Wake::Command(None) => {
                    commands_open = false;
                    self.conn.close("every session handle was dropped");
                }
                Wake::Connected(result) => self.on_connected(result),
                Wake::Attach(Some(attach)) => self.on_attach(attach).await,
                Wake::Attach(None) => {}
            }
        }
        self.finish().await;
    }

    fn on_received(&mut self, result: Result<Option<Bytes>, TransportError>) {
        match result {
            Ok(Some(bytes)) => self.active().handle_bytes(now(), bytes),
            Ok(None) => {
                self.receiver = None;
                self.transport_lost(None);
            }
            Err(e) => {
                self.receiver = None;
                let text = e.to_string();
                if self.client.as_ref().is_none_or(|c| c.attempt.is_none()) {
                    self.transport_error = Some(e);
                }
                self.transport_lost(Some(&text));
            }
        }
    }

    /// The transport's next frame if it has one ready, without waiting: after a frame, the
    /// task reads on this way (up to [`RECEIVE_BATCH`] frames) before it goes back to its
    /// `select!` and to sleep.
    fn try_receive(&mut self) -> Option<Wake> {
        if !self.deliver.is_empty() {
            return None;
        }
        let receiver = self.receiver.as_mut()?;
        // `recv` is cancel-safe: a frame not complete yet stays buffered, and the `select!`
        // polls again with the task's own waker before the task sleeps.
        let mut next = receiver.recv();
        match next.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => Some(Wake::Received(result)),
            Poll::Pending => None,
        }
    }

    /// The write failed: the connection is lost. What the peer sent before it broke still
    /// counts (a `Bye` among it ends the session gracefully), so the frames the receiver
    /// holds are read first.
    fn write_failed(&mut self, error: TransportError) {
        self.writer = None;
        while let Some(Wake::Received(result)) = self.try_receive() {
            let more = matches!(result, Ok(Some(_)));
            self.on_received(result);
            if !more {
                // The receiver's end reported the loss.
                return;
            }
        }
        let text = error.to_string();
        if self.client.as_ref().is_none_or(|c| c.attempt.is_none()) {
            self.transport_error = Some(error);
        }
        self.transport_lost(Some(&text));
    }

    fn on_timeout(&mut self) {
        let now = now();
        self.conn.handle_timeout(now);
        if let Some(client) = self.client.as_mut() {
            if let Some(attempt) = client.attempt.as_mut() {
                attempt.handle_timeout(now);
            }
            if client
                .retry_at
                .is_some_and(|at| at <= tokio::time::Instant::from_std(now))
            {
                client.retry_at = None;
                if self.conn.is_detached() {
                    let source = Arc::clone(&client.side.source);
                    tracing::debug!(attempt = client.backoff.attempts(), "reconnecting");
                    client.connecting = Some(Box::pin(async move { source.connect().await }));
                }
            }
        }
    }

    /// The transport ended (`error` `None`: cleanly). A resume attempt's transport ending
    /// fails that attempt; the session's own detaches it if resumable, ends it otherwise.
    fn transport_lost(&mut self, error: Option<&str>) {
        let now = now();
        if let Some(attempt) = self.client.as_mut().and_then(|c| c.attempt.as_mut()) {
            match error {
                None => attempt.handle_transport_closed(),
                Some(error) => attempt.handle_transport_error(error),
            }
            return;
        }
        self.conn.handle_transport_lost(now, error);
    }

    /// Whether the command that woke the task is likely the first of a burst: frames
    /// handed up since the last commands woke more than one caller, or the last wake-up
    /// found more than one command queued. With many calls in flight, the callers a burst
    /// of replies wakes answer one after the other, and the first one's command wakes this
    /// task, often on the same worker and ahead of the others. Yielding once then lets
    /// the others queue theirs, so that the whole burst leaves in one write rather than a
    /// write each. One call in flight does not wait: each reply wakes one caller, which
    /// sends one command.
    fn in_burst(&mut self) -> bool {
        std::mem::take(&mut self.handed_up) > 1 || self.last_taken > 1
    }

    /// Handles `first`, then what else is queued (up to [`COMMAND_BATCH`]), so that frames
    /// of concurrent callers go out as one batch.
    fn take_commands(&mut self, first: Command) {
        self.handle_command(first);
        let mut taken = 1;
        // As in the `select!`.
        while taken < COMMAND_BATCH && self.takes_commands() {
            match self.commands.try_recv() {
                Ok(command) => self.handle_command(command),
                Err(_) => break,
            }
            taken += 1;
        }
        self.last_taken = taken;
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Send { frame, restarts } => {
                if restarts < self.restarts {
                    // docs/SESSION.md §8.2: written for the peer before its restart (it sat
                    // in the queue meanwhile); the rebuilt peer never knew its exchange.
                    tracing::debug!(?frame, "frame for the peer before its restart given up");
                    self.status.send_modify(|status| {
                        status.abandoned = status.abandoned.saturating_add(1);
                    });
                    return;
                }
                if let Err(e) = self.conn.send(frame) {
                    tracing::debug!(error = %e, "frame not sent");
                }
            }
            Command::Close(reason) => self.conn.close(&reason),
        }
    }

    /// Hands the frames gathered to the sink, then writes what the core queued, the
    /// sink's answers included.
    fn move_transmits_after_sink(&mut self) -> bool {
        self.flush_sink();
        self.move_transmits()
    }

    /// Writes what the core queued, batch after batch, while the transport takes each at
    /// once; a batch it cannot take yet is finished from the `select!`. `false` if a write
    /// failed (the connection is lost).
    fn move_transmits(&mut self) -> bool {
        if !self.has_transmit() {
            return true;
        }
        // One reading of the clock, and only when something is to be written.
        let now = now();
        while self.has_transmit() {
            // Borrowed apart from the writer.
            let active = active_of(&mut self.conn, &mut self.client);
            let Some(writer) = self.writer.as_mut() else {
                return true;
            };
            if writer.is_busy() {
                return true;
            }
            let written = writer.write(|batch| {
                while batch.len() < WRITE_BATCH {
                    match active.poll_transmit(now) {
                        Some(frame) => batch.push(frame),
                        None => break,
                    }
                }
            });
            match written {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.write_failed(e);
                    return false;
                }
                // Still writing, or nothing was queued after all.
                None => return true,
            }
        }
        true
    }

    /// From now on incoming frames go to `sink`: those queued and waiting first.
    fn set_sink(&mut self, sink: Arc<dyn FrameSink>, mut queued: mpsc::Receiver<(u32, Frame)>) {
        take_queued(&mut queued, &mut self.sinking);
        let paused = !self.deliver.is_empty();
        self.sinking.extend(self.deliver.drain(..));
        self.sink = Some(sink);
        self.flush_sink();
        if paused {
            self.conn.set_receive_paused(now(), false);
        }
    }

    /// Hands the frames gathered for the sink over. A session without sequencing takes
    /// every frame, so what the sink sends on it meanwhile is taken on the spot; a
    /// sequenced one takes frames only while its retransmit buffer has room, so they go
    /// through the command queue.
    fn flush_sink(&mut self) {
        let Some(sink) = &self.sink else { return };
        if self.sinking.is_empty() {
            return;
        }
        let collecting = self
            .conn
            .sequencer()
            .is_none()
            .then(|| Collecting::start(&self.lifecycle, std::mem::take(&mut self.sent)));
        sink.deliver(&mut self.sinking);
        self.sinking.clear();
        let Some(mut sent) = collecting.and_then(Collecting::finish) else {
            return;
        };
        for (restarts, frame) in sent.drain(..) {
            self.handle_command(Command::Send { frame, restarts });
        }
        self.sent = sent;
    }

    async fn handle_events(&mut self) {
        self.handle_attempt_events();
        while let Some(event) = self.conn.poll_event() {
            if matches!(event, Event::Frame(_)) {
                self.handed_up += 1;
            }
            if self.sink.is_some() {
                if let Event::Frame(frame) = event {
                    self.sinking.push((self.restarts, frame));
                    continue;
                }
                // Frames go up before whatever follows them (termination above all).
                self.flush_sink();
            }
            match event {
                Event::Established(established) => {
                    self.on_established(&established).await;
                    if let Some(tx) = self.established.take() {
                        // The caller may have given up waiting; the session then ends when
                        // its command channel closes.
                        let _ = tx.send(Ok(established));
                    }
                }
                Event::Frame(frame) => {
                    let frame = (self.restarts, frame);
                    if !self.deliver.is_empty() {
                        self.deliver.push_back(frame);
                        continue;
                    }
                    match self.incoming.try_send(frame) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(frame)) => {
                            self.deliver.push_back(frame);
                            self.conn.set_receive_paused(now(), true);
                        }
                        Err(mpsc::error::TrySendError::Closed(frame)) => {
                            tracing::trace!(?frame, "incoming frame dropped: nobody reads");
                        }
                    }
                }
                Event::Terminated(reason) => {
                    self.lifecycle.terminate(reason.clone());
                    self.set_state(LinkState::Ended);
                    self.on_terminated().await;
                    if let Some(tx) = self.established.take() {
                        let error = match self.transport_error.take() {
                            Some(e) => SessionError::Transport(e),
                            None => SessionError::from(reason),
                        };
                        let _ = tx.send(Err(error));
                    }
                }
                Event::Detached => self.on_detached().await,
                Event::ResumeRequested(request) => self.decide(*request).await,
                Event::ResumeState(state) => self.on_state(state),
                // Only a resume attempt's connection emits it.
                Event::Resumed { .. } => {}
            }
            if self.handed_off.is_some() {
                return;
            }
        }
    }

    fn set_state(&self, state: LinkState) {
        self.status.send_modify(|status| status.state = state);
    }

    // ---- server side -------------------------------------------------------------------

    /// A resumable session was established (or rebuilt): register it and record it in the
    /// store, without expiry while attached.
    async fn on_established(&mut self, established: &Established) {
        let Some(serving) = self.server.as_mut() else {
            return;
        };
        let Some(secret) = established.resume_secret.clone() else {
            return;
        };
        let config = &established.config;
        let identity = identity_key(&established.peer_identity);
        let id = config.session_id;
        serving.session_id = Some(id);
        let key = liaison_resume::record_key(&id.0);
        let store = Arc::clone(&serving.side.resume.store);
        let record = match serving.restoring.take() {
            // Rebuilt: this server claimed the record's next incarnation (`rebuild`); it
            // keeps it without expiry now, unless another server took it over meanwhile.
            Some((_, _, bytes, version)) => {
                match store.put(&key, bytes.clone(), Some(version), None).await {
                    Ok(_) => {}
                    Err(ResumeError::Conflict { .. }) => {
                        tracing::warn!(session = %id, "another server took the session over");
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot clear the record's expiry"),
                }
                Some(bytes)
            }
            None => {
                let record = new_record(established, identity.clone(), secret.clone());
                if let Some(bytes) = &record {
                    if let Err(e) = store.set(&key, bytes.clone(), None).await {
                        tracing::warn!(error = %e, "cannot record the session in the store");
                    }
                }
                record
            }
        };
        serving.side.resume.registry.insert(
            id,
            Entry {
                attach: serving.attach_tx.clone(),
                secret,
                identity,
                record: record.clone(),
            },
        );
        serving.record = record.map(|bytes| (key, bytes));
    }

    async fn on_detached(&mut self) {
        self.drop_link();
        self.set_state(LinkState::Detached);
        if let Some(serving) = self.server.as_ref() {
            // docs/SESSION.md §8: kept for the idle timeout, in the store too.
            if let Some((key, bytes)) = &serving.record {
                let store = &serving.side.resume.store;
                let ttl = Some(serving.side.resume.idle_timeout);
                if is_ours(store.as_ref(), key, bytes).await {
                    if let Err(e) = store.set(key, bytes.clone(), ttl).await {
                        tracing::warn!(error = %e, "cannot set the record's expiry");
                    }
                }
            }
        }
        if self.client.is_some() {
            self.schedule_retry();
        }
    }

    async fn on_terminated(&mut self) {
        if let Some(client) = self.client.as_mut() {
            client.attempt = None;
            client.connecting = None;
            client.retry_at = None;
        }
        let Some(serving) = self.server.as_mut() else {
            return;
        };
        let Some((key, bytes)) = serving.record.take() else {
            return;
        };
        if let Some(id) = serving.session_id {
            serving.side.resume.registry.remove(id, &serving.attach_tx);
        }
        let store = &serving.side.resume.store;
        if !is_ours(store.as_ref(), &key, &bytes).await {
            // Another server of the fleet rebuilt the session meanwhile: its record now.
            return;
        }
        let result = if serving.keep_record {
            store
                .set(&key, bytes, Some(serving.side.resume.idle_timeout))
                .await
                .map(|_| ())
        } else {
            store.delete(&key).await.map(|_| ())
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot update the session's record");
        }
    }

    /// docs/PROTOCOL.md §10.1: a new connection asks to resume a session. A live session
    /// gets the connection if the proof and identity match; a session only the store knows
    /// is rebuilt; anything else is refused, and the session named is left as it is.
    async fn decide(&mut self, request: ResumeRequest) {
        let Some(serving) = self.server.as_mut() else {
            self.conn.resume_refuse(
                ReasonCode::SessionUnknown,
                "this server does not resume sessions",
            );
            return;
        };
        let id = request.session_id;
        let identity = identity_key(&request.identity);
        let proven = |secret: &ResumeSecret| {
            liaison_resume::verify(secret, &request.nonce, &id.0, &request.proof)
        };
        if let Some(entry) = serving.side.resume.registry.get(id) {
            if entry.identity != identity || !proven(&entry.secret) {
                tracing::info!(session = %id, "resume denied: proof or identity does not match");
                self.conn.resume_refuse(
                    ReasonCode::ResumeDenied,
                    "resume denied: the proof or the identity does not match",
                );
                return;
            }
            let key = liaison_resume::record_key(&id.0);
            let owned = match &entry.record {
                Some(bytes) => is_ours(serving.side.resume.store.as_ref(), &key, bytes).await,
                None => true,
            };
            if owned {
                if self.hand_over(id, &entry, request.next_expected).await {
                    return;
                }
            } else {
                // docs/SESSION.md §8.3: another server of the fleet rebuilt the session
                // since; this copy is stale and no longer resumable. The record decides.
                tracing::info!(session = %id, "live copy superseded in the store; rebuilding");
                if let Some(serving) = self.server.as_ref() {
                    serving.side.resume.registry.remove(id, &entry.attach);
                }
            }
        }
        self.rebuild(id, &request, &identity).await;
    }

    /// Hands the connection to the live session `entry` (docs/PROTOCOL.md §10.1); `false`
    /// if that session has ended meanwhile (the connection stays here).
    async fn hand_over(&mut self, id: SessionId, entry: &Entry, peer_next: u64) -> bool {
        let Some(link) = self.take_link() else {
            return true;
        };
        let Ok(permit) = entry.attach.reserve().await else {
            self.install(link);
            return false;
        };
        permit.send(Attach {
            link,
            peer_next,
            peer_handshake: self.conn.take_peer_handshake(),
        });
        tracing::debug!(session = %id, "connection handed to the live session");
        self.handed_off = Some(id);
        if let Some(tx) = self.established.take() {
            let _ = tx.send(Err(SessionError::ResumedLive(id)));
        }
        true
    }

    /// Rebuilds a session only the store knows (docs/PROTOCOL.md §10.2), once this server
    /// has claimed its record with a versioned write: of servers racing to rebuild one
    /// session, one wins and the others refuse (docs/SESSION.md §8.3).
    async fn rebuild(&mut self, id: SessionId, request: &ResumeRequest, identity: &str) {
        let Some(serving) = self.server.as_mut() else {
            return;
        };
        let proven = |secret: &ResumeSecret| {
            liaison_resume::verify(secret, &request.nonce, &id.0, &request.proof)
        };
        let key = liaison_resume::record_key(&id.0);
        let store = Arc::clone(&serving.side.resume.store);
        let record = match store.get(&key).await {
            Ok(Some(stored)) => ResumeRecord::decode(&stored.value)
                .ok()
                .map(|record| (record, stored.version)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "resume store unavailable");
                None
            }
        };
        let Some((record, version)) = record else {
            self.conn.resume_refuse(
                ReasonCode::SessionUnknown,
                "session unknown or expired: open a new session",
            );
            return;
        };
        if record.identity != identity || !proven(&record.secret) {
            tracing::info!(session = %id, "resume denied: proof or identity does not match");
            self.conn.resume_refuse(
                ReasonCode::ResumeDenied,
                "resume denied: the proof or the identity does not match",
            );
            return;
        }
        let stored = messages::decode::<StoredParams>(&record.params);
        let Ok(stored) = stored else {
            self.conn.resume_refuse(
                ReasonCode::SessionUnknown,
                "the session's record is unusable",
            );
            return;
        };
        let config = stored.into_config(id, &serving.side);
        let secret = record.secret.clone();
        // docs/SESSION.md §8.3: the record has one owner. Claim its next incarnation with
        // a write conditional on the version read; it expires like a detached session's
        // unless the rebuild completes (`on_established`).
        let claimed = match record.next_incarnation().encode() {
            Ok(bytes) => store
                .put(
                    &key,
                    bytes.clone(),
                    Some(version),
                    Some(serving.side.resume.idle_timeout),
                )
                .await
                .map(|version| (bytes, version)),
            Err(e) => Err(e),
        };
        let (bytes, version) = match claimed {
            Ok(claimed) => claimed,
            Err(ResumeError::Conflict { .. }) => {
                tracing::info!(session = %id, "resume denied: another server claimed the session");
                self.conn.resume_refuse(
                    ReasonCode::ResumeDenied,
                    "resume denied: another server of the fleet took the session over first",
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim the session's record");
                self.conn.resume_refuse(
                    ReasonCode::SessionUnknown,
                    "the session store is unavailable: open a new session",
                );
                return;
            }
        };
        tracing::info!(session = %id, "rebuilding the session from the store");
        serving.restoring = Some((id, request.identity.clone(), bytes, version));
        self.conn.resume_restore(config, secret);
    }

    /// docs/PROTOCOL.md §10.2: the client's state for a rebuilt session; the application's
    /// handler decides.
    fn on_state(&mut self, state: Bytes) {
        let verdict = match self.server.as_ref() {
            Some(serving) => match (&serving.side.resume.on_state, &serving.restoring) {
                (Some(handler), Some((id, identity, ..))) => handler(*id, identity, &state),
                _ => Ok(()),
            },
            None => Err("this server does not resume sessions".to_owned()),
        };
        self.conn.resume_state_verdict(now(), state, verdict);
    }

    /// A new connection for this live session (docs/PROTOCOL.md §10.1).
    async fn on_attach(&mut self, attach: Attach) {
        if self.conn.is_terminated() {
            return;
        }
        self.drop_link();
        self.install(attach.link);
        let properties = self.properties;
        match self.conn.reattach(
            now(),
            &properties,
            attach.peer_next,
            true,
            attach.peer_handshake,
        ) {
            Ok(()) => {
                self.status.send_modify(|status| {
                    status.state = LinkState::Attached;
                    status.resumes = status.resumes.saturating_add(1);
                });
                if let Some(serving) = self.server.as_ref() {
                    if let Some((key, bytes)) = &serving.record {
                        if let Err(e) = serving
                            .side
                            .resume
                            .store
                            .set(key, bytes.clone(), None)
                            .await
                        {
                            tracing::warn!(error = %e, "cannot clear the record's expiry");
                        }
                    }
                }
            }
            Err(e) => tracing::info!(error = %e, "resume failed"),
        }
    }

    // ---- client side -------------------------------------------------------------------

    /// Schedules the next reconnection, or gives up.
    fn schedule_retry(&mut self) {
        self.drop_link();
        let Some(client) = self.client.as_mut() else {
            return;
        };
        client.attempt = None;
        client.connecting = None;
        let now = now();
        match client.backoff.next_delay(now, &mut client.rng) {
            Some(wait) => {
                tracing::debug!(?wait, "next reconnection");
                client.retry_at = Some(tokio::time::Instant::from_std(now + wait));
            }
            None => {
                let reason = TerminationReason::ReconnectFailed {
                    attempts: client.backoff.attempts(),
                    detail: client.last_error.clone(),
                };
                tracing::info!(%reason, "giving up reconnecting");
                self.conn.give_up(reason);
            }
        }
    }

    fn on_connected(&mut self, result: Result<Box<dyn Transport>, TransportError>) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        client.connecting = None;
        let transport = match result {
            Ok(transport) => transport,
            Err(e) => {
                tracing::debug!(error = %e, "reconnection failed");
                client.last_error = e.to_string();
                self.schedule_retry();
                return;
            }
        };
        let Some(ticket) = self.conn.resume_ticket() else {
            return;
        };
        let now = now();
        let attempt = Connection::client_resume(
            &client.side.config,
            ticket,
            tls_chain(transport.as_ref()),
            Box::new(StdRng::from_entropy()),
            now,
        )
        .and_then(|mut attempt| {
            attempt.set_transport_properties(now, &transport.info().properties)?;
            Ok(attempt)
        });
        match attempt {
            Ok(attempt) => {
                client.attempt = Some(attempt);
                self.install(Link::new(transport));
            }
            Err(e) => {
                client.last_error = e.to_string();
                self.schedule_retry();
            }
        }
    }

    /// Drains the resume attempt's events: resumed (hand the link to the session),
    /// refused (the session ends), or failed (try again).
    fn handle_attempt_events(&mut self) {
        loop {
            let Some(client) = self.client.as_mut() else {
                return;
            };
            let Some(attempt) = client.attempt.as_mut() else {
                return;
            };
            let Some(event) = attempt.poll_event() else {
                return;
            };
            match event {
                Event::Resumed {
                    peer_next,
                    restarted,
                } => {
                    let peer_handshake = attempt.take_peer_handshake();
                    client.attempt = None;
                    client.backoff.reset();
                    let now = now();
                    let properties = self.properties;
                    let result = if restarted {
                        self.conn
                            .reattach_restarted(now, &properties, peer_handshake)
                    } else {
                        self.conn
                            .reattach(now, &properties, peer_next, false, peer_handshake)
                            .map(|()| 0)
                    };
                    if let Ok(abandoned) = result {
                        if restarted {
                            // Frames of the old server waiting for room are of exchanges
                            // that are gone.
                            self.deliver.clear();
                            self.restarts = self.restarts.saturating_add(1);
                        }
                        let restarts = self.restarts;
                        self.status.send_modify(|status| {
                            status.state = LinkState::Attached;
                            status.resumes = status.resumes.saturating_add(1);
                            status.restarts = restarts;
                            status.abandoned = status.abandoned.saturating_add(abandoned);
                        });
                        if restarted {
                            self.lifecycle
                                .pending
                                .abort_pending(&TerminationReason::PeerRestarted);
                        }
                    }
                }
                Event::Terminated(reason) => {
                    client.attempt = None;
                    match reason {
                        TerminationReason::ResumeRefused { .. } => {
                            tracing::info!(%reason, "resume refused");
                            self.drop_link();
                            self.conn.give_up(reason);
                        }
                        TerminationReason::HandshakeFailed(ref failure)
                            if !matches!(failure, crate::HandshakeFailure::Timeout) =>
                        {
                            tracing::info!(%reason, "resume failed");
                            self.drop_link();
                            self.conn.give_up(reason);
                        }
                        other => {
                            client.last_error = other.to_string();
                            self.schedule_retry();
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// After termination: stop delivering, let the writer flush the last frames and close
    /// the transport (for at most the linger time), then report the session finished.
    async fn finish(self) {
        let Self {
            writer,
            incoming,
            control,
            mut deliver,
            receiver,
            lifecycle,
            linger,
            handed_off,
            ..
        } = self;
        drop(incoming);
        // A sink set as the session ended still gets what was received for it.
        let mut control = control.into_inner();
        control.close();
        while let Ok(control) = control.try_recv() {
            if let Control::Sink { sink, queued } = control {
                deliver_late(sink.as_ref(), queued, deliver.drain(..));
            }
        }
        if let (Some(writer), None) = (writer, handed_off) {
            if tokio::time::timeout(linger, writer.close()).await.is_err() {
                tracing::debug!("writer did not finish in time; dropping the transport");
            }
        }
        drop(receiver);
        lifecycle.finish();
    }
}

/// The negotiated parameters a record keeps, to rebuild the session after a restart.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredParams {
    version: u16,
    limits: SessionLimits,
    keepalive_ms: u64,
    idle_timeout_ms: u64,
    sequencing: SequencingMode,
    client_params: Blob,
}

impl From<&NegotiatedConfig> for StoredParams {
    fn from(config: &NegotiatedConfig) -> Self {
        Self {
            version: config.version,
            limits: config.limits,
            keepalive_ms: crate::config::duration_to_millis(config.keepalive_interval),
            idle_timeout_ms: crate::config::duration_to_millis(config.idle_timeout),
            sequencing: config.sequencing,
            client_params: Blob(config.peer_params.to_vec()),
        }
    }
}

impl StoredParams {
    fn into_config(self, session_id: SessionId, side: &ServerSide) -> NegotiatedConfig {
        NegotiatedConfig {
            session_id,
            version: self.version,
            limits: self.limits,
            keepalive_interval: Duration::from_millis(self.keepalive_ms.max(1)),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.max(2)),
            sequencing: self.sequencing,
            local_params: side.local_params.clone(),
            peer_params: Bytes::from(self.client_params.0),
            root: side.root.clone(),
        }
    }
}

/// The encoded record of a resumable session just established as new; `None` (logged) if
/// it does not encode.
fn new_record(established: &Established, identity: String, secret: ResumeSecret) -> Option<Bytes> {
    let config = &established.config;
    let params = match messages::encode(&StoredParams::from(config)) {
        Ok(params) => params.to_vec(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the session's parameters");
            return None;
        }
    };
    let created_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let record = ResumeRecord::new(config.session_id.0, identity, secret, created_ms, params);
    match record.encode() {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the session's record");
            None
        }
    }
}

/// Whether the record under `key` is still the one this server wrote (`bytes`): another
/// server sharing the store may have rebuilt the session since (docs/SESSION.md §8.3).
async fn is_ours(store: &dyn liaison_resume::Store, key: &str, bytes: &Bytes) -> bool {
    match store.get(key).await {
        Ok(Some(stored)) => stored.value == *bytes,
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the session's record");
            true
        }
    }
}
