//! Session resume (docs/PROTOCOL.md §10, docs/SESSION.md §8) over real transports: a cut
//! connection resumes with nothing lost, a detached session expires, hijack attempts fail,
//! a restarted server rebuilds a session from its store, and a thousand sessions resume at
//! once.

mod resume_support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use liaison_resume::{BackoffConfig, MemoryStore, ResumeSecret, Store};
use liaison_session::proto::ResumeTicket;
use liaison_session::{
    reconnect_fn, ClientConfig, LinkState, PskAuth, ReasonCode, ResumeConfig, Scope, Server,
    ServerConfig, ServerResume, Session, TerminationReason,
};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultyTransport};
use liaison_transport::{
    Address, FrameReceiver, FrameSender, Loopback, LoopbackKind, Transport, TransportConfig,
    TransportError, TransportInfo,
};
use liaison_wire::{Frame, FrameKind};
use proptest::prelude::*;
use tokio::sync::watch;

use resume_support::{attempt, bounded, session_config};

const KEY: [u8; 32] = [0x42; 32];

fn backoff() -> BackoffConfig {
    BackoffConfig::default()
        .with_delays(Duration::from_millis(1), Duration::from_millis(20))
        .with_max_elapsed(Some(Duration::from_secs(30)))
}

fn server_config(store: Arc<dyn Store>, idle: Duration) -> (ServerConfig, ServerResume) {
    let resume = ServerResume::new(store, idle);
    let config = ServerConfig::new(PskAuth::new("tenant", KEY).expect("key").with_name("hub"))
        .with_session(session_config())
        .with_resume(resume.clone());
    (config, resume)
}

/// Where clients connect, changeable (to a restarted server), and every fault handle of
/// the connections handed out, newest last.
#[derive(Clone)]
struct Dialer {
    target: Arc<Mutex<(Address, TransportConfig)>>,
    handles: Arc<Mutex<Vec<FaultHandle>>>,
    /// Cut points of the next connections, one per connection; none: never cut.
    cuts: Arc<Mutex<VecDeque<u64>>>,
    /// Connections wait until this is true.
    gate: watch::Receiver<bool>,
    /// Frames the connections sent, for tests that replay them.
    sent: Arc<Mutex<Vec<Bytes>>>,
    /// Connections after the first repeat their handshake late ([`LateRepeats`]).
    late_repeats: bool,
}

impl Dialer {
    fn new(address: Address, config: TransportConfig) -> (Self, watch::Sender<bool>) {
        let (open, gate) = watch::channel(true);
        (
            Self {
                target: Arc::new(Mutex::new((address, config))),
                handles: Arc::default(),
                cuts: Arc::default(),
                gate,
                sent: Arc::default(),
                late_repeats: false,
            },
            open,
        )
    }

    async fn dial(&self) -> Result<Box<dyn Transport>, TransportError> {
        let mut gate = self.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        let (address, config) = self.target.lock().expect("target").clone();
        let inner = liaison_transport::connect(&address, &config).await?;
        let mut faults = FaultConfig::default();
        if let Some(cut) = self.cuts.lock().expect("cuts").pop_front() {
            faults = faults.with_cut_after(cut);
        }
        let mut recorded = Recorder::wrap(inner, Arc::clone(&self.sent));
        if self.late_repeats && !self.handles.lock().expect("handles").is_empty() {
            recorded = Box::new(LateRepeats { inner: recorded });
        }
        let faulty = FaultyTransport::new(recorded, faults);
        self.handles.lock().expect("handles").push(faulty.handle());
        Ok(Box::new(faulty))
    }

    fn cut_current(&self) {
        if let Some(handle) = self.handles.lock().expect("handles").last() {
            handle.cut();
        }
    }

    fn client_config(&self, resume: ResumeConfig) -> ClientConfig {
        let dialer = self.clone();
        ClientConfig::new(
            PskAuth::new("tenant", KEY)
                .expect("key")
                .with_name("worker"),
        )
        .with_session(session_config())
        .with_resume(
            resume
                .with_backoff(backoff())
                .with_reconnect(reconnect_fn(move || {
                    let dialer = dialer.clone();
                    async move { dialer.dial().await }
                })),
        )
    }

    async fn connect(&self, resume: ResumeConfig) -> Session {
        let transport = self.dial().await.expect("first connection");
        Session::connect(transport, self.client_config(resume))
            .await
            .expect("client established")
    }
}

/// Records every frame its sending half sends.
struct Recorder {
    inner: Box<dyn Transport>,
    sent: Arc<Mutex<Vec<Bytes>>>,
}

impl Recorder {
    fn wrap(inner: Box<dyn Transport>, sent: Arc<Mutex<Vec<Bytes>>>) -> Box<dyn Transport> {
        Box::new(Self { inner, sent })
    }
}

impl Transport for Recorder {
    fn info(&self) -> &TransportInfo {
        self.inner.info()
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        let (sender, receiver) = self.inner.split();
        (
            Box::new(RecordingSender {
                inner: sender,
                sent: self.sent,
            }),
            receiver,
        )
    }
}

struct RecordingSender {
    inner: Box<dyn FrameSender>,
    sent: Arc<Mutex<Vec<Bytes>>>,
}

#[async_trait]
impl FrameSender for RecordingSender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.sent.lock().expect("sent").push(frame.clone());
        self.inner.feed(frame).await
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.inner.flush().await
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}

/// Sends the frames of the handshake again after it: before the first frame that follows
/// them, as a client over a lossy transport may when its timer fires while the answer is on
/// its way. Over a resume connection the repeats reach the server's live session after
/// the hand-over.
struct LateRepeats {
    inner: Box<dyn Transport>,
}

impl Transport for LateRepeats {
    fn info(&self) -> &TransportInfo {
        self.inner.info()
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        let (sender, receiver) = self.inner.split();
        let sender = RepeatingSender {
            inner: sender,
            handshake: Vec::new(),
            repeated: false,
        };
        (Box::new(sender), receiver)
    }
}

struct RepeatingSender {
    inner: Box<dyn FrameSender>,
    handshake: Vec<Bytes>,
    repeated: bool,
}

#[async_trait]
impl FrameSender for RepeatingSender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        if !self.repeated {
            let kind = liaison_wire::Header::decode(&frame).map(|h| h.kind);
            if kind.is_ok_and(|k| k.is_handshake() || k.is_resume()) {
                self.handshake.push(frame.clone());
            } else {
                self.repeated = true;
                for repeat in std::mem::take(&mut self.handshake) {
                    self.inner.feed(repeat).await?;
                }
            }
        }
        self.inner.feed(frame).await
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.inner.flush().await
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}

/// A server whose application echoes every `Data` frame on its exchange and logs what it
/// received; accepted sessions are reported on `sessions`.
struct Echo {
    address: Address,
    config: TransportConfig,
    log: Arc<Mutex<Vec<Bytes>>>,
    sessions: tokio::sync::mpsc::UnboundedReceiver<Session>,
    resume: ServerResume,
}

async fn echo_server(
    kind: LoopbackKind,
    store: Arc<dyn Store>,
    idle: Duration,
    scope: &Scope,
) -> Echo {
    let endpoint = Loopback::new(kind).expect("loopback");
    let listener = liaison_transport::bind(&endpoint.address, &endpoint.config)
        .await
        .expect("bind");
    let address = listener.local_addr();
    let (config, resume) = server_config(store, idle);
    echo_on(
        Server::serve_in(scope, listener, config),
        address,
        endpoint.config,
        resume,
    )
}

fn echo_on(
    mut server: Server,
    address: Address,
    config: TransportConfig,
    resume: ServerResume,
) -> Echo {
    let log: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let (tx, sessions) = tokio::sync::mpsc::unbounded_channel();
    let server_log = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(session) = server.accept().await {
            let _ = tx.send(session.clone());
            let log = Arc::clone(&server_log);
            tokio::spawn(async move {
                let Some(mut incoming) = session.take_incoming() else {
                    return;
                };
                while let Some(frame) = incoming.recv().await {
                    log.lock().expect("log").push(frame.payload.clone());
                    if session
                        .send(Frame::data(frame.exchange, frame.payload))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    Echo {
        address,
        config,
        log,
        sessions,
        resume,
    }
}

fn message(i: u32) -> Bytes {
    Bytes::copy_from_slice(&i.to_le_bytes())
}

/// Sends messages `range` on exchange 1.
async fn send_all(client: &Session, range: std::ops::Range<u32>) {
    for i in range {
        client
            .send(Frame::data(1, message(i)))
            .await
            .expect("sent while attached or detached");
    }
}

/// Reads `n` echoes.
async fn echoes(incoming: &mut liaison_session::IncomingFrames, n: u32) -> Vec<Bytes> {
    let mut got = Vec::new();
    while got.len() < n as usize {
        let frame = bounded("echoes", incoming.recv()).await.expect("an echo");
        got.push(frame.payload);
    }
    got
}

fn expected(n: u32) -> Vec<Bytes> {
    (0..n).map(message).collect()
}

/// Case 2 of docs/SESSION.md §8: the network drops with messages in flight both ways.
/// A cut connection resumes with nothing lost; with `late_repeats`, the resume connection
/// repeats its handshake after it ([`LateRepeats`]). Returns the dialer.
async fn network_drop_resumes(kind: LoopbackKind, late_repeats: bool) -> Dialer {
    let scope = Scope::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut echo = echo_server(kind, store, Duration::from_secs(30), &scope).await;
    let (mut dialer, _open) = Dialer::new(echo.address.clone(), echo.config.clone());
    dialer.late_repeats = late_repeats;
    let client = dialer.connect(ResumeConfig::default()).await;
    let server = bounded("accepted", echo.sessions.recv())
        .await
        .expect("session");
    assert!(client.is_resumable() && server.is_resumable());
    assert_eq!(client.id(), server.id());
    let mut links = client.link_changes();
    let mut incoming = client.take_incoming().expect("incoming");
    // A pending value registered before the cut is still pending after it.
    let (resolver, pending) = client.register::<u32>().expect("register");

    send_all(&client, 0..50).await;
    let first = echoes(&mut incoming, 10).await;
    dialer.cut_current();
    // Sent while the link is down or coming back: buffered, then delivered.
    send_all(&client, 50..100).await;
    let rest = echoes(&mut incoming, 90).await;
    assert_eq!(
        [first, rest].concat(),
        expected(100),
        "every echo once, in order"
    );
    assert_eq!(
        *echo.log.lock().expect("log"),
        expected(100),
        "every message once, in order"
    );

    resolver.resolve(7);
    assert_eq!(pending.await, Ok(7), "the pending value survived the cut");
    assert_eq!(client.resumes(), 1, "one Resumed");
    assert_eq!(server.resumes(), 1);
    assert_eq!(client.link(), LinkState::Attached);
    assert_eq!(links.borrow_and_update().resumes, 1);
    assert!(
        echo.sessions.try_recv().is_err(),
        "no new session on the server"
    );
    assert!(client.close("done").await.is_graceful());
    assert!(bounded("server closed", server.closed())
        .await
        .is_graceful());
    dialer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_drop_resumes_over_memory() {
    network_drop_resumes(LoopbackKind::Memory, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_drop_resumes_over_tcp() {
    network_drop_resumes(LoopbackKind::Tcp, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_drop_resumes_over_unix() {
    network_drop_resumes(LoopbackKind::Unix, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_drop_resumes_over_quic() {
    network_drop_resumes(LoopbackKind::Quic, false).await;
}

/// docs/SESSION.md §7.6: over a lossy transport (QUIC datagrams) the client repeats its
/// whole resume handshake after the server's live session took the connection over; the
/// repeats are ignored (a repeated `Resume` answered again), and the session goes on with
/// nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_repeats_of_the_resume_handshake_leave_the_session_alone() {
    let dialer = network_drop_resumes(LoopbackKind::QuicDatagram, true).await;
    let proofs = dialer
        .sent
        .lock()
        .expect("sent")
        .iter()
        .filter(|frame| {
            liaison_wire::Header::decode(frame).is_ok_and(|h| h.kind == FrameKind::AuthProof)
        })
        .count();
    assert!(
        proofs >= 3,
        "one proof per connection and its repeat: {proofs}"
    );
}

/// Random workloads, the connection cut at random frame indexes (each new connection too)
/// and resumed: every message and every echo exactly once, in order, every pending value
/// resolved.
fn random_cuts(
    kind: LoopbackKind,
    n: u32,
    first: u64,
    later: Vec<u64>,
) -> Result<(), TestCaseError> {
    let cuts: Vec<u64> = std::iter::once(first).chain(later).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let scope = Scope::new();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut echo = echo_server(kind, store, Duration::from_secs(30), &scope).await;
        let (dialer, _open) = Dialer::new(echo.address.clone(), echo.config.clone());
        dialer
            .cuts
            .lock()
            .expect("cuts")
            .extend(cuts.iter().copied());
        let client = dialer.connect(ResumeConfig::default()).await;
        let server = bounded("accepted", echo.sessions.recv())
            .await
            .expect("session");
        let mut incoming = client.take_incoming().expect("incoming");
        let mut pending = Vec::new();
        for i in 0..n {
            let (resolver, eventual) = client.register::<u32>().expect("register");
            pending.push((resolver, eventual));
            client.send(Frame::data(1, message(i))).await.expect("sent");
        }
        let got = echoes(&mut incoming, n).await;
        prop_assert_eq!(got, expected(n));
        prop_assert_eq!(echo.log.lock().expect("log").clone(), expected(n));
        for (i, (resolver, eventual)) in (0..n).zip(pending) {
            resolver.resolve(i);
            prop_assert_eq!(eventual.await, Ok(i));
        }
        prop_assert!(client.resumes() <= u32::try_from(cuts.len()).unwrap_or(u32::MAX));
        // A resume whose connection is cut after the server took it over counts there only.
        prop_assert!(server.resumes() >= client.resumes());
        client.abort();
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn random_cuts_lose_nothing_over_memory(n in 1u32..60, first in 5u64..40, later in proptest::collection::vec(1u64..40, 0..3)) {
        random_cuts(LoopbackKind::Memory, n, first, later)?;
    }

    #[test]
    fn random_cuts_lose_nothing_over_tcp(n in 1u32..60, first in 5u64..40, later in proptest::collection::vec(1u64..40, 0..3)) {
        random_cuts(LoopbackKind::Tcp, n, first, later)?;
    }

    #[test]
    fn random_cuts_lose_nothing_over_unix(n in 1u32..60, first in 5u64..40, later in proptest::collection::vec(1u64..40, 0..3)) {
        random_cuts(LoopbackKind::Unix, n, first, later)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn random_cuts_lose_nothing_over_quic(n in 1u32..40, first in 5u64..40, later in proptest::collection::vec(1u64..40, 0..2)) {
        random_cuts(LoopbackKind::Quic, n, first, later)?;
    }
}

/// docs/SESSION.md §8: a detached server session is kept for the idle timeout, then
/// deleted (its pending values aborted with `IdleTimeout`, its record gone); a resume
/// after that gets NEW, and the client ends with the reason.
#[tokio::test(start_paused = true)]
async fn an_expired_session_is_deleted_and_a_late_resume_gets_new() {
    let scope = Scope::new();
    let memory = Arc::new(MemoryStore::new());
    let store: Arc<dyn Store> = memory.clone();
    let idle = Duration::from_secs(5);
    let mut echo = echo_server(LoopbackKind::Memory, store, idle, &scope).await;
    let (dialer, open) = Dialer::new(echo.address.clone(), echo.config.clone());
    let client = dialer
        .connect(ResumeConfig::default().with_max_detached(Duration::from_secs(120)))
        .await;
    let server = echo.sessions.recv().await.expect("session");
    let key = liaison_resume::record_key(client.id().as_bytes());
    assert!(memory.get(&key).await.expect("store").is_some(), "recorded");
    assert_eq!(echo.resume.live_sessions(), 1);
    let (_server_resolver, server_pending) = server.register::<()>().expect("register");
    let (_client_resolver, client_pending) = client.register::<()>().expect("register");

    // The client cannot reconnect until the gate opens.
    open.send_replace(false);
    dialer.cut_current();
    let mut links = server.link_changes();
    let _ = links.wait_for(|s| s.state == LinkState::Detached).await;
    let detached_at = tokio::time::Instant::now();
    assert_eq!(server.closed().await, TerminationReason::IdleTimeout);
    assert!(detached_at.elapsed() >= idle, "kept for the idle timeout");
    assert_eq!(
        server_pending.await.expect_err("aborted").reason(),
        &TerminationReason::IdleTimeout
    );
    assert!(
        memory.get(&key).await.expect("store").is_none(),
        "record deleted"
    );
    assert_eq!(echo.resume.live_sessions(), 0);
    assert_eq!(client.link(), LinkState::Detached, "the client still waits");

    open.send_replace(true);
    let reason = client.closed().await;
    assert!(
        matches!(
            &reason,
            TerminationReason::ResumeRefused { code: ReasonCode::SessionUnknown, message }
                if message.contains("unknown or expired")
        ),
        "{reason}"
    );
    assert_eq!(client_pending.await.expect_err("aborted").reason(), &reason);
    assert!(
        echo.sessions.try_recv().is_err(),
        "no session came out of the late resume"
    );
}

/// docs/PROTOCOL.md §10.1: a known session id with a wrong proof, and a proof captured from
/// a real resume and replayed, are refused; the live session is untouched, and its client
/// still resumes afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_replayed_proof_cannot_take_a_session_over() {
    let scope = Scope::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut echo = echo_server(LoopbackKind::Tcp, store, Duration::from_secs(30), &scope).await;
    let (dialer, _open) = Dialer::new(echo.address.clone(), echo.config.clone());
    let client = dialer.connect(ResumeConfig::default()).await;
    let server = echo.sessions.recv().await.expect("session");
    let mut incoming = client.take_incoming().expect("incoming");
    send_all(&client, 0..5).await;
    echoes(&mut incoming, 5).await;

    // A real resume, recorded.
    dialer.sent.lock().expect("sent").clear();
    dialer.cut_current();
    send_all(&client, 5..10).await;
    echoes(&mut incoming, 5).await;
    assert_eq!(client.resumes(), 1);
    let captured = dialer
        .sent
        .lock()
        .expect("sent")
        .iter()
        .filter_map(|bytes| Frame::decode(bytes.clone(), &liaison_wire::Limits::DEFAULT).ok())
        .find(|frame| frame.kind == FrameKind::Resume)
        .expect("the client sent a Resume")
        .payload;

    let (address, config) = dialer.target.lock().expect("target").clone();
    let attacker = dialer.client_config(ResumeConfig::default());
    // The right id with a wrong secret.
    let ticket = ResumeTicket {
        session_id: client.id(),
        secret: ResumeSecret::from_bytes([1; 32]),
        next_expected: 0,
    };
    let guessed = attempt(
        &attacker,
        ticket.clone(),
        liaison_transport::connect(&address, &config)
            .await
            .expect("connect"),
        None,
    )
    .await;
    assert!(
        matches!(
            &guessed,
            Err(TerminationReason::ResumeRefused {
                code: ReasonCode::ResumeDenied,
                ..
            })
        ),
        "{guessed:?}"
    );
    // The captured proof, replayed on a new connection (a new nonce).
    let replayed = attempt(
        &attacker,
        ticket,
        liaison_transport::connect(&address, &config)
            .await
            .expect("connect"),
        Some(captured),
    )
    .await;
    assert!(
        matches!(
            &replayed,
            Err(TerminationReason::ResumeRefused {
                code: ReasonCode::ResumeDenied,
                ..
            })
        ),
        "{replayed:?}"
    );

    // The session is untouched: same link, still serving.
    assert_eq!(client.link(), LinkState::Attached);
    assert_eq!(server.resumes(), 1);
    send_all(&client, 10..15).await;
    echoes(&mut incoming, 5).await;
    // And its client still resumes.
    dialer.cut_current();
    send_all(&client, 15..20).await;
    echoes(&mut incoming, 5).await;
    assert_eq!(client.resumes(), 2);
    assert_eq!(*echo.log.lock().expect("log"), expected(20));
    assert!(echo.sessions.try_recv().is_err());
}

/// Case 1 of docs/SESSION.md §8: the server shuts down (its sessions stay in the shared
/// store) and another server instance takes over; the client's resume gets RESUMED with a
/// state request, the new server rebuilds the session from the client's state, what was
/// pending before is aborted (`PeerRestarted`) and the session goes on under the same id.
/// Case 3: a client that restarted has no id and gets a new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_rebuilds_the_session_from_the_store_and_the_client_state() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first_scope = Scope::new();
    let mut first = echo_server(
        LoopbackKind::Tcp,
        Arc::clone(&store),
        Duration::from_secs(30),
        &first_scope,
    )
    .await;
    let (dialer, _open) = Dialer::new(first.address.clone(), first.config.clone());
    let client = dialer
        .connect(ResumeConfig::default().with_state(|| Bytes::from_static(b"open: a.txt, b.txt")))
        .await;
    let old = first.sessions.recv().await.expect("session");
    let mut incoming = client.take_incoming().expect("incoming");
    send_all(&client, 0..3).await;
    echoes(&mut incoming, 3).await;
    let (_resolver, before) = client.register::<()>().expect("register");

    // A second server instance sharing the store, rebuilding sessions with a handler.
    let seen: Arc<Mutex<Vec<(liaison_session::SessionId, Bytes)>>> = Arc::default();
    let second_scope = Scope::new();
    let endpoint = Loopback::new(LoopbackKind::Tcp).expect("loopback");
    let listener = liaison_transport::bind(&endpoint.address, &endpoint.config)
        .await
        .expect("bind");
    let second_address = listener.local_addr();
    let handler_seen = Arc::clone(&seen);
    let (config, _) = server_config(Arc::clone(&store), Duration::from_secs(30));
    let resume = ServerResume::new(Arc::clone(&store), Duration::from_secs(30)).with_state_handler(
        move |id, _identity, state| {
            handler_seen.lock().expect("seen").push((id, state.clone()));
            Ok(())
        },
    );
    let mut second = echo_on(
        Server::serve_in(&second_scope, listener, config.with_resume(resume.clone())),
        second_address.clone(),
        endpoint.config.clone(),
        resume,
    );
    *dialer.target.lock().expect("target") = (second_address, endpoint.config);

    // The first server goes away: its sessions end without a word, their records stay.
    first_scope.cancel();
    assert_eq!(
        bounded("old session", old.closed()).await,
        TerminationReason::ScopeCancelled
    );
    let rebuilt = bounded("rebuilt session", second.sessions.recv())
        .await
        .expect("session");
    assert_eq!(rebuilt.id(), client.id(), "the same session");
    assert_eq!(
        rebuilt.resumed_state(),
        Some(&Bytes::from_static(b"open: a.txt, b.txt"))
    );
    assert_eq!(
        *seen.lock().expect("seen"),
        [(client.id(), Bytes::from_static(b"open: a.txt, b.txt"))]
    );
    assert_eq!(
        bounded("aborted", before)
            .await
            .expect_err("aborted")
            .reason(),
        &TerminationReason::PeerRestarted
    );
    assert_eq!(client.resumes(), 1);
    assert!(!client.is_terminated());
    // The session goes on, numbering from 0 again on both sides.
    send_all(&client, 3..6).await;
    let got = echoes(&mut incoming, 3).await;
    assert_eq!(got, (3..6).map(message).collect::<Vec<_>>());
    assert_eq!(
        *second.log.lock().expect("log"),
        (3..6).map(message).collect::<Vec<_>>()
    );

    // Case 3: a restarted client has no id: an ordinary new session.
    let fresh = dialer.connect(ResumeConfig::default()).await;
    let fresh_server = bounded("new session", second.sessions.recv())
        .await
        .expect("session");
    assert_ne!(fresh.id(), client.id());
    assert_eq!(fresh_server.id(), fresh.id());
    assert_eq!(fresh_server.resumed_state(), None);
    assert_eq!(fresh.resumes(), 0);
}

/// docs/SESSION.md §8.2: frames the client sends while detached from a server that then
/// turns out to have restarted are given up, never silently: `send` returned `Ok` for each,
/// and each is counted in `LinkStatus::abandoned`, whether the sequencer held it or it was
/// still queued behind a full retransmit buffer when the rebuilt server answered. None of
/// them reaches the rebuilt server; what is sent after the restart does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_while_detached_from_a_restarted_server_are_counted_as_abandoned() {
    const HELD: u32 = 4;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first_scope = Scope::new();
    let first = echo_server(
        LoopbackKind::Memory,
        Arc::clone(&store),
        Duration::from_secs(30),
        &first_scope,
    )
    .await;
    let (dialer, open) = Dialer::new(first.address.clone(), first.config.clone());
    let mut config = dialer.client_config(ResumeConfig::default());
    config.session.limits.send_buffer = HELD;
    let transport = dialer.dial().await.expect("first connection");
    let client = Session::connect(transport, config)
        .await
        .expect("client established");
    let mut incoming = client.take_incoming().expect("incoming");
    send_all(&client, 0..2).await;
    echoes(&mut incoming, 2).await;

    open.send_replace(false);
    first_scope.cancel();
    let mut links = client.link_changes();
    bounded(
        "detached",
        links.wait_for(|status| status.state == LinkState::Detached),
    )
    .await
    .expect("detached");
    // The retransmit buffer takes `HELD` frames and holds one more back; the next ones
    // wait in the session's queue. Every `send` returns once the session took the frame.
    let detached = 2 * HELD + 1;
    send_all(&client, 100..100 + detached).await;
    assert_eq!(client.link_changes().borrow().abandoned, 0);

    let second_scope = Scope::new();
    let mut second = echo_server(
        LoopbackKind::Memory,
        Arc::clone(&store),
        Duration::from_secs(30),
        &second_scope,
    )
    .await;
    *dialer.target.lock().expect("target") = (second.address.clone(), second.config.clone());
    open.send_replace(true);
    let rebuilt = bounded("rebuilt", second.sessions.recv())
        .await
        .expect("session");
    assert_eq!(rebuilt.id(), client.id());
    let status = *bounded(
        "counted",
        links.wait_for(|status| status.abandoned >= u64::from(detached)),
    )
    .await
    .expect("counted");
    assert_eq!((status.resumes, status.restarts), (1, 1));

    // The session goes on: only what is sent now reaches the rebuilt server.
    send_all(&client, 200..203).await;
    assert_eq!(
        echoes(&mut incoming, 3).await,
        (200..203).map(message).collect::<Vec<_>>()
    );
    assert_eq!(
        *second.log.lock().expect("log"),
        (200..203).map(message).collect::<Vec<_>>()
    );
}

/// A resume storm: a thousand sessions on one server lose their connections at once and
/// all resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sessions_cut_at_once_all_resume() {
    const SESSIONS: usize = 1000;
    let scope = Scope::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let endpoint = Loopback::new(LoopbackKind::Memory).expect("loopback");
    let listener = liaison_transport::bind(&endpoint.address, &endpoint.config)
        .await
        .expect("bind");
    let address = listener.local_addr();
    let (mut config, resume) = server_config(store, Duration::from_secs(60));
    config.accept_queue = SESSIONS;
    let mut echo = echo_on(
        Server::serve_in(&scope, listener, config),
        address.clone(),
        endpoint.config.clone(),
        resume,
    );
    let mut clients = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let (dialer, open) = Dialer::new(address.clone(), endpoint.config.clone());
        let client = dialer.connect(ResumeConfig::default()).await;
        clients.push((dialer, open, client));
    }
    let mut servers = Vec::new();
    for _ in 0..SESSIONS {
        servers.push(
            bounded("accepted", echo.sessions.recv())
                .await
                .expect("session"),
        );
    }

    assert_eq!(echo.resume.live_sessions(), SESSIONS);
    for (dialer, _, _) in &clients {
        dialer.cut_current();
    }
    let mut tasks = Vec::new();
    for (i, (_dialer, _open, client)) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut incoming = client.take_incoming().expect("incoming");
            let i = u32::try_from(i).expect("index");
            client.send(Frame::data(1, message(i))).await.expect("sent");
            let frame = incoming.recv().await.expect("echo");
            assert_eq!(frame.payload, message(i));
            let mut links = client.link_changes();
            let _ = links.wait_for(|s| s.resumes >= 1).await;
            client
        }));
    }
    let mut resumed = Vec::new();
    for task in tasks {
        let client = bounded("storm", task).await.expect("task");
        assert_eq!(client.resumes(), 1);
        resumed.push(client);
    }
    assert_eq!(echo.resume.live_sessions(), SESSIONS);
    assert!(servers
        .iter()
        .all(|s| s.resumes() == 1 && !s.is_terminated()));
    assert!(
        echo.sessions.try_recv().is_err(),
        "no session was opened anew"
    );
}

/// Two live servers share one store (a fleet behind a load balancer): a client that loses
/// its server's connection and reconnects to the other one goes on there, the other
/// server rebuilding the session from the store and the client's state. The first server's
/// detached copy expires later without deleting the record the second one wrote. The store
/// is a parameter: every backend of the `Store` trait must pass.
async fn two_servers_share_one_store(store: Arc<dyn Store>) {
    let idle = Duration::from_secs(5);
    let (first_scope, second_scope) = (Scope::new(), Scope::new());
    let mut first = echo_server(LoopbackKind::Memory, Arc::clone(&store), idle, &first_scope).await;
    let mut second = echo_server(
        LoopbackKind::Memory,
        Arc::clone(&store),
        idle,
        &second_scope,
    )
    .await;
    let (dialer, _open) = Dialer::new(first.address.clone(), first.config.clone());
    let client = dialer
        .connect(ResumeConfig::default().with_state(|| Bytes::from_static(b"state")))
        .await;
    let on_first = first.sessions.recv().await.expect("session");
    let mut incoming = client.take_incoming().expect("incoming");
    send_all(&client, 0..3).await;
    echoes(&mut incoming, 3).await;

    // The load balancer now sends the client to the second server.
    *dialer.target.lock().expect("target") = (second.address.clone(), second.config.clone());
    dialer.cut_current();
    let on_second = second.sessions.recv().await.expect("rebuilt session");
    assert_eq!(on_second.id(), client.id());
    assert_eq!(
        on_second.resumed_state(),
        Some(&Bytes::from_static(b"state"))
    );
    send_all(&client, 3..6).await;
    assert_eq!(
        echoes(&mut incoming, 3).await,
        (3..6).map(message).collect::<Vec<_>>()
    );
    assert_eq!(client.resumes(), 1);

    // The first server's detached copy expires; the second server's record stays.
    assert_eq!(on_first.closed().await, TerminationReason::IdleTimeout);
    let key = liaison_resume::record_key(client.id().as_bytes());
    let record = store
        .get(&key)
        .await
        .expect("store")
        .expect("still recorded");
    let record = liaison_resume::ResumeRecord::decode(&record.value).expect("record");
    assert_eq!(record.incarnation, 1, "the second server's record");
    // And the client still resumes on the second server.
    dialer.cut_current();
    send_all(&client, 6..9).await;
    assert_eq!(
        echoes(&mut incoming, 3).await,
        (6..9).map(message).collect::<Vec<_>>()
    );
    assert_eq!(client.resumes(), 2);
    assert_eq!(on_second.resumes(), 1, "resumed live on the second server");
    assert_eq!(first.resume.live_sessions(), 0);
    assert_eq!(second.resume.live_sessions(), 1);
}

#[tokio::test(start_paused = true)]
async fn two_servers_share_one_memory_store() {
    two_servers_share_one_store(Arc::new(MemoryStore::new())).await;
}
