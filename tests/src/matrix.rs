//! One cell of the integration matrix: a transport, a link, a way to end the session and a
//! workload. [`run_cell`] establishes a session over that transport and link, runs the
//! workload, checks that no message was lost, duplicated or misrouted, ends the session the
//! chosen way while values are still pending, and checks that every one of them resolved
//! and that the capabilities are revoked.
//!
//! Exchanges assume the session delivers their frames in order (PROTOCOL.md §9), which an
//! unordered session over a reordering link does not: there the workload runs on the
//! session's own data path and checks what unordered mode promises, every frame exactly
//! once, in any order. The state service, which lives on exchanges, is no exception: over
//! an unordered session its cells carry state records (key, version, value) one per frame
//! on the data path instead.
//!
//! The ending [`Ending::CutResume`] runs the workload over a resumable session served by a
//! [`Server`] with a resume store: the client's first connection is cut in the middle of
//! the workload, exchanges and eventual values open across the cut, and the client resumes
//! through its reconnect source (docs/SESSION.md §8). A resumable session is sequenced:
//! on the plain link the client's `with_resume` turns "no sequencing" into ordered, and an
//! unordered session asked for explicitly stays unordered and resumable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use liaison_exchange::{Endpoint, ExchangeError, Remote};
use liaison_resume::{BackoffConfig, MemoryStore};
use liaison_session::{
    reconnect_fn, ClientConfig, IncomingFrames, LinkState, Origin, ResumeConfig, RootCapability,
    Scope, SequencingMode, Server, ServerConfig, ServerResume, Session, SessionConfig,
    TerminationReason,
};
use liaison_state::{State, StateClient, StateConfig, StateService};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultyTransport};
use liaison_transport::{
    Address, Loopback, LoopbackKind, Transport, TransportConfig, TransportError,
};
use liaison_wire::{Frame, FrameKind};

use crate::hostile::psk;
use crate::{connected_pair, Echo, FaultyListener};

/// The link between the two ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Link {
    /// The transport as it is: no sequencing where the transport is reliable (QUIC
    /// datagrams, which are not, get ordered sequencing).
    Plain,
    /// Fault injection (loss, duplication, reordering) under an ordered session.
    LossyOrdered,
    /// Fault injection under an unordered session.
    LossyUnordered,
}

/// How the session ends once the workload is done and values are still pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// The client closes gracefully.
    Close,
    /// The client aborts.
    Abort,
    /// The scope the client session belongs to is cancelled.
    ScopeCancel,
    /// The client's transport is cut in the middle of the workload; the client resumes
    /// through its reconnect source, the workload completes, and the client closes
    /// gracefully.
    CutResume,
}

/// What the client does over the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Workload {
    /// Concurrent unary calls, each answered with its own request.
    RequestResponse,
    /// Concurrent exchanges, each streaming messages both ways.
    Streaming,
    /// The state service exported as the root capability: reads, locks, commits and
    /// concurrent writers of one key.
    State,
}

const CALLS: usize = 12;
const STREAMS: u64 = 3;
const MESSAGES: u64 = 8;
/// Bound on everything a cell waits for.
const PATIENCE: Duration = Duration::from_secs(15);

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.keepalive_interval = Duration::from_secs(1);
    config.idle_timeout = Duration::from_secs(10);
    config.handshake_timeout = Duration::from_secs(10);
    config.linger = Duration::from_millis(500);
    config.retransmit.initial_rto = Duration::from_millis(30);
    config.retransmit.max_rto = Duration::from_millis(500);
    config
}

/// As [`session_config`], with a short handshake timeout: a resume attempt whose answer
/// was lost gives up and reconnects after it.
fn resume_session_config() -> SessionConfig {
    let mut config = session_config();
    config.handshake_timeout = Duration::from_secs(2);
    config
}

fn state_service() -> StateService {
    let config = StateConfig::default().with_poll_interval(Duration::from_millis(5));
    StateService::new(Arc::new(MemoryStore::new()), config).expect("a valid state config")
}

/// The server's endpoint for `workload`: the state service or [`Echo`] as root.
fn serve(session: Session, workload: Workload) -> Endpoint {
    match workload {
        Workload::State => state_service().serve(session),
        Workload::RequestResponse | Workload::Streaming => {
            Endpoint::builder(session).root(Echo).start()
        }
    }
    .expect("server endpoint")
}

/// The fault injection of a lossy link.
fn lossy(seed: u64) -> FaultConfig {
    FaultConfig::default()
        .with_seed(seed)
        .with_drop(0.05)
        .with_duplicate(0.02)
        .with_reorder(0.05)
}

fn seed(kind: LoopbackKind, link: Link, ending: Ending, workload: Workload) -> u64 {
    let name = format!("{kind}/{link:?}/{ending:?}/{workload:?}");
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn message(stream: u64, index: u64) -> Bytes {
    Bytes::from(format!("stream {stream} message {index}"))
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {PATIENCE:?}"))
}

/// Runs one cell of the matrix; panics with what broke.
pub async fn run_cell(kind: LoopbackKind, link: Link, ending: Ending, workload: Workload) {
    if ending == Ending::CutResume {
        return resume_cell(kind, link, workload).await;
    }
    let seed = seed(kind, link, ending, workload);
    let (a, b) = connected_pair(kind).await;
    let (a, b): (Box<dyn Transport>, Box<dyn Transport>) = match link {
        Link::Plain => (a, b),
        Link::LossyOrdered | Link::LossyUnordered => (
            FaultyTransport::wrap(a, lossy(seed)),
            FaultyTransport::wrap(b, lossy(seed ^ 0xff)),
        ),
    };
    let mode = match link {
        Link::Plain if kind == LoopbackKind::QuicDatagram => SequencingMode::Ordered,
        Link::Plain => SequencingMode::None,
        Link::LossyOrdered => SequencingMode::Ordered,
        Link::LossyUnordered => SequencingMode::Unordered,
    };
    let scope = Scope::new();
    let client_config = ClientConfig::new(psk("client"))
        .with_session(session_config())
        .with_sequencing(mode)
        .in_scope(&scope);
    let server_config = ServerConfig::new(psk("server"))
        .with_session(session_config())
        .with_root(RootCapability::new(1, &b"echo"[..]));
    let (client, server) = within(
        "the handshake",
        futures_join(
            Session::connect(a, client_config),
            Session::accept(b, server_config),
        ),
    )
    .await;
    let (client, server) = (client.expect("connect"), server.expect("accept"));
    if link == Link::LossyUnordered {
        return unordered_cell(client, server, &scope, ending, workload).await;
    }
    let server = serve(server, workload);
    let client = Endpoint::new(client, Default::default()).expect("endpoint");
    let root = client.root().expect("root capability");

    match workload {
        Workload::RequestResponse => within("the calls", calls(&root, 0..CALLS)).await,
        Workload::Streaming => within("the streams", streams(&root, None)).await,
        Workload::State => within("the state operations", state_operations(&root)).await,
    }

    // Values still pending when the session ends: an exchange waiting for a reply and a
    // value registered with the session.
    let mut hanging = root.begin().await.expect("an exchange opens");
    let waiting = tokio::spawn(async move { hanging.recv().await });
    let (_resolver, eventual) = client.session().register::<()>().expect("registers");
    let reason = end(client.session(), &scope, ending).await;

    let pending = within("the pending exchange", waiting)
        .await
        .expect("the waiting task");
    match pending {
        Err(e) if e.is_aborted() || e.is_revoked() => {}
        other => panic!("the pending exchange resolved with {other:?}, not Aborted"),
    }
    let aborted = within("the pending value", eventual)
        .await
        .expect_err("a value pending at termination resolves Aborted");
    assert_eq!(aborted.reason(), &reason);
    let after = within(
        "a call after the end",
        root.call(Bytes::from_static(b"late")),
    )
    .await;
    assert!(
        matches!(&after, Err(e) if e.is_revoked() || e.is_aborted()),
        "a capability fails fast after the end: {after:?}"
    );

    let seen = within("the server's end", server.closed()).await;
    if link == Link::Plain {
        let expected = match ending {
            Ending::Close | Ending::CutResume => TerminationReason::Closed {
                origin: Origin::Remote,
                reason: "matrix done".into(),
            },
            Ending::Abort => TerminationReason::Aborted {
                origin: Origin::Remote,
            },
            Ending::ScopeCancel => TerminationReason::Closed {
                origin: Origin::Remote,
                reason: seen_reason(&seen),
            },
        };
        assert_eq!(seen, expected, "the server's termination reason");
    }
}

/// Ends `session` the way `ending` says and checks the reason it reports.
async fn end(session: &Session, scope: &Scope, ending: Ending) -> TerminationReason {
    let reason = match ending {
        Ending::Close | Ending::CutResume => session.close("matrix done").await,
        Ending::Abort => {
            session.abort();
            within("the abort", session.closed()).await
        }
        Ending::ScopeCancel => {
            scope.cancel();
            within("the scope's end", session.closed()).await
        }
    };
    let expected = match ending {
        Ending::Close | Ending::CutResume => TerminationReason::Closed {
            origin: Origin::Local,
            reason: "matrix done".into(),
        },
        Ending::Abort => TerminationReason::Aborted {
            origin: Origin::Local,
        },
        Ending::ScopeCancel => TerminationReason::ScopeCancelled,
    };
    assert_eq!(reason, expected, "the client's termination reason");
    reason
}

/// What the client sends over an unordered session's data path: (exchange id, payload).
fn unordered_frames(workload: Workload) -> Vec<(u64, Bytes)> {
    match workload {
        Workload::RequestResponse => (0..CALLS as u64)
            .map(|i| (2 * i + 1, Bytes::from(format!("request {i}"))))
            .collect(),
        Workload::Streaming => (0..STREAMS)
            .flat_map(|s| (0..MESSAGES).map(move |i| (2 * s + 1, message(s, i))))
            .collect(),
        // State records, one per frame: an unordered session has no exchanges to run the
        // state service on (PROTOCOL.md §9).
        Workload::State => (0..STATE_KEYS)
            .flat_map(|k| {
                (1..=STATE_VERSIONS)
                    .map(move |v| (2 * k + 1, Bytes::from(format!("key {k} version {v}"))))
            })
            .collect(),
    }
}

/// Serves an echo of every `Data` frame on its exchange id on `server`'s data path.
fn echo_data_path(server: &Session) {
    let mut requests = server.take_incoming().expect("first take");
    let echo = server.clone();
    tokio::spawn(async move {
        while let Some(frame) = requests.recv().await {
            if frame.kind == FrameKind::Data
                && echo
                    .send(Frame::data(frame.exchange, frame.payload))
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
}

/// Sends `frames` on `client`'s data path and checks that each comes back exactly once, in
/// any order.
async fn exactly_once(client: &Session, replies: &mut IncomingFrames, frames: &[(u64, Bytes)]) {
    let sender = client.clone();
    let to_send = frames.to_vec();
    let sending = tokio::spawn(async move {
        for (id, payload) in to_send {
            sender.send(Frame::data(id, payload)).await.expect("send");
        }
    });
    let mut expected: HashMap<(u64, Bytes), usize> = HashMap::new();
    for item in frames {
        *expected.entry(item.clone()).or_default() += 1;
    }
    within("the echoes", async {
        for _ in 0..frames.len() {
            let frame = replies.recv().await.expect("a reply before the end");
            let key = (frame.exchange, frame.payload);
            let left = expected
                .get_mut(&key)
                .unwrap_or_else(|| panic!("a frame never sent, or twice: {key:?}"));
            assert!(*left > 0, "a duplicate: {key:?}");
            *left -= 1;
        }
    })
    .await;
    assert!(
        expected.values().all(|&n| n == 0),
        "every frame came back once"
    );
    sending.await.expect("sender");
}

/// A cell over an unordered session: the server echoes every `Data` frame on its exchange
/// id; the client checks that each frame it sent comes back exactly once.
async fn unordered_cell(
    client: Session,
    server: Session,
    scope: &Scope,
    ending: Ending,
    workload: Workload,
) {
    echo_data_path(&server);
    let mut replies = client.take_incoming().expect("first take");
    exactly_once(&client, &mut replies, &unordered_frames(workload)).await;

    let (_resolver, eventual) = client.register::<()>().expect("registers");
    let capability = client.revocable(());
    let reason = end(&client, scope, ending).await;
    let aborted = within("the pending value", eventual)
        .await
        .expect_err("a value pending at termination resolves Aborted");
    assert_eq!(aborted.reason(), &reason);
    assert!(capability.check().is_err(), "revoked after the end");
    within("the server's end", server.closed()).await;
}

// -----------------------------------------------------------------------------------------
// Cut and resume
// -----------------------------------------------------------------------------------------

/// The client's connections: each dialled one goes through fault injection (lossy or not),
/// and the first one can be cut.
#[derive(Clone)]
struct Dialer {
    address: Address,
    config: TransportConfig,
    faults: FaultConfig,
    dialled: Arc<AtomicU64>,
    handles: Arc<Mutex<Vec<FaultHandle>>>,
}

impl Dialer {
    async fn dial(&self) -> Result<Box<dyn Transport>, TransportError> {
        let inner = liaison_transport::connect(&self.address, &self.config).await?;
        let n = self.dialled.fetch_add(1, Ordering::SeqCst);
        let faults = self.faults.with_seed(self.faults.seed.wrapping_add(n));
        let faulty = FaultyTransport::new(inner, faults);
        self.handles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(faulty.handle());
        Ok(Box::new(faulty))
    }

    /// Cuts the first connection.
    fn cut(&self) {
        let handles = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        handles.first().expect("a first connection").cut();
    }

    fn connections(&self) -> u64 {
        self.dialled.load(Ordering::SeqCst)
    }
}

/// A cell whose client transport is cut in the middle of the workload and resumed.
async fn resume_cell(kind: LoopbackKind, link: Link, workload: Workload) {
    let seed = seed(kind, link, Ending::CutResume, workload);
    let (client_faults, server_faults) = match link {
        Link::Plain => (FaultConfig::default(), FaultConfig::default()),
        Link::LossyOrdered | Link::LossyUnordered => (lossy(seed), lossy(seed ^ 0xff)),
    };
    let endpoint = Loopback::new(kind).expect("loopback endpoint");
    let listener = liaison_transport::bind(&endpoint.address, &endpoint.config)
        .await
        .expect("bind");
    let address = listener.local_addr();
    let listener = Box::new(FaultyListener::new(listener, server_faults));
    let server_scope = Scope::new();
    let server_config = ServerConfig::new(psk("server"))
        .with_session(resume_session_config())
        .with_root(RootCapability::new(1, &b"echo"[..]))
        .with_resume(ServerResume::new(
            Arc::new(MemoryStore::new()),
            Duration::from_secs(10),
        ));
    let mut server = Server::serve_in(&server_scope, listener, server_config);

    let dialer = Dialer {
        address,
        config: endpoint.config,
        faults: client_faults,
        dialled: Arc::default(),
        handles: Arc::default(),
    };
    let reconnect = {
        let dialer = dialer.clone();
        reconnect_fn(move || {
            let dialer = dialer.clone();
            async move { dialer.dial().await }
        })
    };
    let resume = ResumeConfig::default()
        .with_backoff(
            BackoffConfig::default()
                .with_delays(Duration::from_millis(1), Duration::from_millis(50))
                .with_max_elapsed(Some(PATIENCE)),
        )
        .with_reconnect(reconnect);
    let mut client_config = ClientConfig::new(psk("client")).with_session(resume_session_config());
    if link == Link::LossyUnordered {
        client_config = client_config.with_sequencing(SequencingMode::Unordered);
    }
    let client_config = client_config.with_resume(resume);
    let mode = if link == Link::LossyUnordered {
        SequencingMode::Unordered
    } else {
        SequencingMode::Ordered
    };
    assert_eq!(
        client_config.sequencing, mode,
        "a resumable session is sequenced; unordered stays unordered"
    );

    let first = dialer.dial().await.expect("first connection");
    let (client, server_session) = within(
        "the handshake",
        futures_join(Session::connect(first, client_config), server.accept()),
    )
    .await;
    let (client, server_session) = (client.expect("connect"), server_session.expect("accept"));
    assert!(client.is_resumable() && server_session.is_resumable());
    assert_eq!(client.id(), server_session.id());
    assert_eq!(client.config().sequencing, mode);

    // A value pending across the cut resolves Ok after it.
    let (resolver, eventual) = client.register::<u64>().expect("registers");

    let endpoints = if link == Link::LossyUnordered {
        echo_data_path(&server_session);
        let mut replies = client.take_incoming().expect("first take");
        let frames = unordered_frames(workload);
        let (before, after) = frames.split_at(frames.len() / 2);
        exactly_once(&client, &mut replies, before).await;
        dialer.cut();
        exactly_once(&client, &mut replies, after).await;
        None
    } else {
        let server_endpoint = serve(server_session.clone(), workload);
        let client_endpoint = Endpoint::new(client.clone(), Default::default()).expect("endpoint");
        let root = client_endpoint.root().expect("root capability");
        let cut = || dialer.cut();
        match workload {
            Workload::RequestResponse => within("the calls", calls_across(&root, cut)).await,
            Workload::Streaming => within("the streams", streams(&root, Some(&cut))).await,
            Workload::State => within("the state operations", state_across(&root, cut)).await,
        }
        Some((root, client_endpoint, server_endpoint))
    };

    resolver.resolve(7);
    assert_eq!(
        within("the pending value", eventual).await,
        Ok(7),
        "a value pending across the cut resolves Ok"
    );
    let counts = (
        client.resumes(),
        server_session.resumes(),
        dialer.connections(),
    );
    // Over a lossy link a lost `ResumeAck` is sent again when the client repeats its
    // `Resume`, so one reconnection makes one resume there too.
    assert_eq!(
        counts,
        (1, 1, 2),
        "one resume on each side, one reconnection"
    );
    assert_eq!(client.link(), LinkState::Attached);

    let reason = within("the close", client.close("matrix done")).await;
    assert_eq!(
        reason,
        TerminationReason::Closed {
            origin: Origin::Local,
            reason: "matrix done".into(),
        }
    );
    let seen = within("the server's end", server_session.closed()).await;
    if link != Link::LossyUnordered {
        // A sequenced close: the Bye is delivered even over a lossy link.
        assert_eq!(
            seen,
            TerminationReason::Closed {
                origin: Origin::Remote,
                reason: "matrix done".into(),
            },
            "the server's termination reason"
        );
    }
    if let Some((root, _client_endpoint, _server_endpoint)) = endpoints {
        let after = within(
            "a call after the end",
            root.call(Bytes::from_static(b"late")),
        )
        .await;
        assert!(
            matches!(&after, Err(e) if e.is_revoked() || e.is_aborted()),
            "a capability fails fast after the end: {after:?}"
        );
    }
}

fn seen_reason(reason: &TerminationReason) -> String {
    match reason {
        TerminationReason::Closed { reason, .. } => reason.clone(),
        _ => String::new(),
    }
}

async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

async fn calls(root: &Remote, range: std::ops::Range<usize>) {
    let expected = range.len();
    let mut tasks = tokio::task::JoinSet::new();
    for i in range {
        let root = root.clone();
        tasks.spawn(async move {
            let request = Bytes::from(format!("request {i}"));
            let reply = root.call(request.clone()).await?;
            Ok::<_, ExchangeError>((request, reply))
        });
    }
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        let (request, reply) = joined.expect("task").expect("the call completes");
        assert_eq!(reply, request, "each call gets its own reply");
        answered += 1;
    }
    assert_eq!(answered, expected);
}

/// Half the calls, then an exchange opened before the cut and used across it, the cut, and
/// the other half issued while the link is down or coming back.
async fn calls_across(root: &Remote, cut: impl FnOnce()) {
    calls(root, 0..CALLS / 2).await;
    let mut spanning = root.begin().await.expect("an exchange opens");
    spanning.send(message(99, 0)).await.expect("send");
    assert_eq!(
        spanning.recv().await.expect("recv"),
        Some(message(99, 0)),
        "echoed before the cut"
    );
    cut();
    calls(root, CALLS / 2..CALLS).await;
    spanning
        .send(message(99, 1))
        .await
        .expect("send after the cut");
    spanning.end().await.expect("end");
    assert_eq!(
        spanning.recv().await.expect("recv"),
        Some(message(99, 1)),
        "the exchange open across the cut goes on"
    );
    assert_eq!(spanning.recv().await.expect("recv"), None, "then ends");
}

/// Concurrent streams; with `cut`, each stream sends and reads back half its messages,
/// then the link is cut, then every stream sends the rest.
async fn streams(root: &Remote, cut: Option<&dyn Fn()>) {
    let halfway = Arc::new(tokio::sync::Barrier::new(
        usize::try_from(STREAMS).unwrap_or(usize::MAX) + 1,
    ));
    let (cut_done, after_cut) = tokio::sync::watch::channel(cut.is_none());
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..STREAMS {
        let root = root.clone();
        let halfway = Arc::clone(&halfway);
        let mut after_cut = after_cut.clone();
        let across = cut.is_some();
        tasks.spawn(async move {
            let mut exchange = root.begin().await?;
            let mut received = Vec::new();
            for i in 0..MESSAGES {
                if across && i == MESSAGES / 2 {
                    while (received.len() as u64) < i {
                        match exchange.recv().await? {
                            Some(back) => received.push(back),
                            None => break,
                        }
                    }
                    halfway.wait().await;
                    let _ = after_cut.wait_for(|done| *done).await;
                }
                exchange.send(message(s, i)).await?;
            }
            exchange.end().await?;
            while let Some(back) = exchange.recv().await? {
                received.push(back);
            }
            Ok::<_, ExchangeError>((s, received))
        });
    }
    if let Some(cut) = cut {
        halfway.wait().await;
        cut();
        cut_done.send_replace(true);
    }
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let (s, received) = joined.expect("task").expect("the stream completes");
        let expected: Vec<Bytes> = (0..MESSAGES).map(|i| message(s, i)).collect();
        assert_eq!(
            received, expected,
            "stream {s}: every message once, in order, its own"
        );
        done += 1;
    }
    assert_eq!(done, STREAMS);
}

const STATE_KEYS: u64 = 3;
const STATE_VERSIONS: u64 = 4;
const WRITERS: usize = 3;

fn appended(old: Option<&State>, tag: &str) -> Bytes {
    let mut value = old.map(|s| s.value.to_vec()).unwrap_or_default();
    value.extend_from_slice(tag.as_bytes());
    Bytes::from(value)
}

/// A read of a missing key, a lock and commit, concurrent writers of one key (the lock
/// serialises them, none is lost) and a read of the result.
async fn state_operations(root: &Remote) {
    let states = StateClient::new(root.clone());
    let missing = states.get("cart").await;
    assert!(
        matches!(&missing, Err(e) if e.is_not_found()),
        "nothing stored yet: {missing:?}"
    );
    let guard = states.lock("cart").await.expect("locks");
    assert_eq!(guard.state(), None);
    let first = guard.commit(&b"cart:"[..]).await.expect("commits");
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let states = states.clone();
        writers.spawn(async move {
            states
                .update("cart", |old| appended(old, &format!("w{w};")))
                .await
        });
    }
    let mut versions = Vec::new();
    while let Some(joined) = writers.join_next().await {
        let state = joined.expect("task").expect("each writer commits");
        assert!(state.version > first);
        versions.push(state.version);
    }
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), WRITERS, "every write got its own version");
    let last = states.get("cart").await.expect("reads");
    assert_eq!(Some(&last.version), versions.last());
    let text = String::from_utf8(last.value.to_vec()).expect("text");
    assert!(text.starts_with("cart:"), "{text}");
    for w in 0..WRITERS {
        assert_eq!(
            text.matches(&format!("w{w};")).count(),
            1,
            "writer {w} once: {text}"
        );
    }
}

/// A committed state, a lock taken before the cut and committed after it on the same
/// exchange, a read while the link comes back, and the lock free again afterwards.
async fn state_across(root: &Remote, cut: impl FnOnce()) {
    let states = StateClient::new(root.clone());
    let first = states
        .update("cart", |old| appended(old, "a;"))
        .await
        .expect("commits");
    let guard = states.lock("cart").await.expect("locks");
    assert_eq!(guard.version(), Some(first.version));
    cut();
    let reader = {
        let states = states.clone();
        tokio::spawn(async move { states.get("cart").await })
    };
    let second = guard
        .commit(&b"a;b;"[..])
        .await
        .expect("the lock holder's exchange survives the resume");
    assert!(second > first.version);
    let read = reader.await.expect("task").expect("reads across the cut");
    assert!(
        read.version == first.version || read.version == second,
        "a read sees a committed state: {read:?}"
    );
    let last = states.get("cart").await.expect("reads");
    assert_eq!(
        (last.value, last.version),
        (Bytes::from_static(b"a;b;"), second)
    );
    let again = states.lock("cart").await.expect("the lock was released");
    again.release().await.expect("releases");
}
