//! Session resume across servers (docs/SESSION.md §8, docs/PROTOCOL.md §10) over TCP with
//! the persistent stores: a fleet of two servers sharing a Redis store, where the client
//! resumes on the other node after its server dies; a server restarted on the same redb
//! file; and fleet ownership, where two servers racing to rebuild one session leave it
//! with a single owner.

mod resume_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use liaison_resume::{
    record_key, BackoffConfig, LocalRedis, MemoryStore, RedbStore, RedisStore, ResumeError,
    ResumeRecord, Store, Versioned,
};
use liaison_session::proto::ResumeTicket;
use liaison_session::{
    reconnect_fn, ClientConfig, LinkState, PskAuth, ReasonCode, ResumeConfig, Scope, Server,
    ServerConfig, ServerResume, Session, TerminationReason,
};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultyTransport};
use liaison_transport::{Address, Loopback, LoopbackKind, Transport, TransportConfig};
use liaison_wire::Frame;
use tokio::sync::{mpsc, watch};

use resume_support::{attempt, bounded, session_config};

const KEY: [u8; 32] = [0x17; 32];

/// What the client sends a server that rebuilds its session.
const STATE: &[u8] = b"open: ledger.db; cursor 42";

/// A server of the fleet: echoes every `Data` frame on its exchange, reports the sessions
/// it accepts and the states it rebuilt sessions from.
struct Node {
    address: Address,
    config: TransportConfig,
    sessions: mpsc::UnboundedReceiver<Session>,
    rebuilt: Arc<Mutex<Vec<Bytes>>>,
    resume: ServerResume,
}

async fn node(store: Arc<dyn Store>, scope: &Scope) -> Node {
    let endpoint = Loopback::new(LoopbackKind::Tcp).expect("loopback");
    let listener = liaison_transport::bind(&endpoint.address, &endpoint.config)
        .await
        .expect("bind");
    let address = listener.local_addr();
    let rebuilt: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let seen = Arc::clone(&rebuilt);
    let resume = ServerResume::new(store, Duration::from_secs(30)).with_state_handler(
        move |_id, _identity, state| {
            seen.lock().expect("rebuilt").push(state.clone());
            Ok(())
        },
    );
    let config = ServerConfig::new(PskAuth::new("fleet", KEY).expect("key").with_name("node"))
        .with_session(session_config())
        .with_resume(resume.clone());
    let mut server = Server::serve_in(scope, listener, config);
    let (tx, sessions) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(session) = server.accept().await {
            let _ = tx.send(session.clone());
            tokio::spawn(async move {
                let Some(mut incoming) = session.take_incoming() else {
                    return;
                };
                while let Some(frame) = incoming.recv().await {
                    let echo = Frame::data(frame.exchange, frame.payload);
                    if session.send(echo).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Node {
        address,
        config: endpoint.config,
        sessions,
        rebuilt,
        resume,
    }
}

/// Where the client's reconnections go: nowhere until a server is set, then there.
type Target = watch::Sender<Option<(Address, TransportConfig)>>;

/// Cuts the client's current connection.
#[derive(Clone, Default)]
struct Cutter(Arc<Mutex<Option<FaultHandle>>>);

impl Cutter {
    fn wrap(&self, transport: Box<dyn Transport>) -> Box<dyn Transport> {
        let faulty = FaultyTransport::new(transport, FaultConfig::default());
        *self.0.lock().expect("cutter") = Some(faulty.handle());
        Box::new(faulty)
    }

    fn cut(&self) {
        if let Some(handle) = self.0.lock().expect("cutter").take() {
            handle.cut();
        }
    }
}

/// A resumable client of `first` whose reconnections go to the target of the returned
/// sender (none yet: a reconnection waits for one), and what cuts its connection.
async fn client_of(first: &Node) -> (Session, Target, Cutter) {
    let (target, rx) = watch::channel::<Option<(Address, TransportConfig)>>(None);
    let cutter = Cutter::default();
    let wrapper = cutter.clone();
    let reconnect = reconnect_fn(move || {
        let mut rx = rx.clone();
        let wrapper = wrapper.clone();
        async move {
            let (address, config) = rx
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|target| target.clone())
                .ok_or(liaison_transport::TransportError::Closed)?;
            let transport = liaison_transport::connect(&address, &config).await?;
            Ok(wrapper.wrap(transport))
        }
    });
    let config = ClientConfig::new(PskAuth::new("fleet", KEY).expect("key").with_name("app"))
        .with_session(session_config())
        .with_resume(
            ResumeConfig::default()
                .with_backoff(
                    BackoffConfig::default()
                        .with_delays(Duration::from_millis(1), Duration::from_millis(20))
                        .with_max_elapsed(Some(Duration::from_secs(30))),
                )
                .with_state(|| Bytes::from_static(STATE))
                .with_reconnect(reconnect),
        );
    let transport = liaison_transport::connect(&first.address, &first.config)
        .await
        .expect("connect");
    let client = Session::connect(cutter.wrap(transport), config)
        .await
        .expect("client established");
    (client, target, cutter)
}

/// One request and its echo on exchange `exchange`.
async fn call(client: &Session, incoming: &mut liaison_session::IncomingFrames, text: &str) {
    let payload = Bytes::copy_from_slice(text.as_bytes());
    client
        .send(Frame::data(7, payload.clone()))
        .await
        .expect("sent");
    let echo = bounded(text, incoming.recv()).await.expect("an echo");
    assert_eq!(echo.exchange, 7);
    assert_eq!(echo.payload, payload, "the echo of {text:?}");
}

async fn stored_record(store: &dyn Store, client: &Session) -> ResumeRecord {
    let stored = store
        .get(&record_key(client.id().as_bytes()))
        .await
        .expect("store")
        .expect("the session is recorded");
    ResumeRecord::decode(&stored.value).expect("a record")
}

/// Case 1 of docs/SESSION.md §8 across a fleet: the client's server dies without a word,
/// its reconnection goes to another server sharing the store, which rebuilds the session
/// from the record and the client's state.
async fn resumes_on_another_node(store: Arc<dyn Store>) {
    let (scope_a, scope_b) = (Scope::new(), Scope::new());
    let mut a = node(Arc::clone(&store), &scope_a).await;
    let mut b = node(Arc::clone(&store), &scope_b).await;
    let (client, target, _cutter) = client_of(&a).await;
    let on_a = bounded("accepted on A", a.sessions.recv())
        .await
        .expect("session");
    assert_eq!(on_a.id(), client.id());
    let mut incoming = client.take_incoming().expect("incoming");
    call(&client, &mut incoming, "before 1").await;
    call(&client, &mut incoming, "before 2").await;
    assert_eq!(stored_record(store.as_ref(), &client).await.incarnation, 0);
    let (_resolver, before) = client.register::<u32>().expect("register");

    // The load balancer sends reconnections to B; A dies (no Bye, its record stays).
    target.send_replace(Some((b.address.clone(), b.config.clone())));
    scope_a.cancel();
    assert_eq!(
        bounded("A's copy ends", on_a.closed()).await,
        TerminationReason::ScopeCancelled
    );

    let on_b = bounded("rebuilt on B", b.sessions.recv())
        .await
        .expect("session");
    assert_eq!(on_b.id(), client.id(), "the same session id");
    assert_eq!(on_b.resumed_state(), Some(&Bytes::from_static(STATE)));
    assert_eq!(
        *b.rebuilt.lock().expect("rebuilt"),
        [Bytes::from_static(STATE)]
    );
    assert_eq!(
        bounded("aborted", before)
            .await
            .expect_err("aborted")
            .reason(),
        &TerminationReason::PeerRestarted,
        "what was pending on A is aborted"
    );
    let mut links = client.link_changes();
    let status = *bounded(
        "attached",
        links.wait_for(|s| s.state == LinkState::Attached),
    )
    .await
    .expect("status");
    assert_eq!((status.resumes, status.restarts), (1, 1));
    assert_eq!(client.resumes(), 1);
    assert!(!client.is_terminated());

    // Messages flow again, and new pending values resolve.
    call(&client, &mut incoming, "after 1").await;
    call(&client, &mut incoming, "after 2").await;
    assert_eq!(
        incoming.restarts(),
        1,
        "the echoes come from the rebuilt session"
    );
    let (resolver, after) = client.register::<u32>().expect("register");
    resolver.resolve(9);
    assert_eq!(bounded("resolved", after).await, Ok(9));
    assert_eq!(b.resume.live_sessions(), 1);
    assert_eq!(a.resume.live_sessions(), 0);
    assert_eq!(
        stored_record(store.as_ref(), &client).await.incarnation,
        1,
        "B owns the record now"
    );
    assert!(b.sessions.try_recv().is_err(), "no other session on B");

    assert!(client.close("done").await.is_graceful());
    assert!(bounded("B closed", on_b.closed()).await.is_graceful());
    bounded("B's copy finished", on_b.finished()).await;
    assert!(
        store
            .get(&record_key(client.id().as_bytes()))
            .await
            .expect("store")
            .is_none(),
        "a closed session leaves no record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_of_a_redis_fleet() {
    let redis = LocalRedis::start().await.expect("redis-server");
    let store = RedisStore::connect(&redis.url())
        .await
        .expect("redis store")
        .with_prefix("fleet-test:");
    resumes_on_another_node(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_sharing_a_memory_store() {
    resumes_on_another_node(Arc::new(MemoryStore::new())).await;
}

/// A single server restarts on the same redb file: the first process's store is closed,
/// the file reopened by a new store and a new server, and the client resumes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_on_the_same_redb_file_rebuilds_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.redb");
    let first_store = Arc::new(RedbStore::create(&path).expect("create"));
    let weak: Weak<RedbStore> = Arc::downgrade(&first_store);
    let scope = Scope::new();
    let mut first = node(first_store, &scope).await;
    let (client, target, _cutter) = client_of(&first).await;
    let old = bounded("accepted", first.sessions.recv())
        .await
        .expect("session");
    let mut incoming = client.take_incoming().expect("incoming");
    call(&client, &mut incoming, "before").await;
    let (_resolver, before) = client.register::<()>().expect("register");

    // The process stops: every session, task and handle of it goes, and with them the
    // file.
    scope.cancel();
    assert_eq!(
        bounded("old session", old.closed()).await,
        TerminationReason::ScopeCancelled
    );
    bounded("old session finished", old.finished()).await;
    drop(old);
    drop(first);
    // A new process on the same file, once the first one's last handle on it is gone (a
    // store operation may still be finishing on the blocking pool).
    let store = bounded("the first store is closed", async {
        loop {
            if weak.strong_count() == 0 {
                if let Ok(store) = RedbStore::open(&path) {
                    break store;
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let store: Arc<dyn Store> = Arc::new(store);
    assert_eq!(client.resumes(), 0);
    let record = stored_record(store.as_ref(), &client).await;
    assert_eq!(record.incarnation, 0, "the record survived the restart");
    let scope = Scope::new();
    let mut second = node(Arc::clone(&store), &scope).await;
    target.send_replace(Some((second.address.clone(), second.config.clone())));
    let rebuilt = bounded("rebuilt", second.sessions.recv())
        .await
        .expect("session");
    assert_eq!(rebuilt.id(), client.id());
    assert_eq!(rebuilt.resumed_state(), Some(&Bytes::from_static(STATE)));
    assert_eq!(
        bounded("aborted", before)
            .await
            .expect_err("aborted")
            .reason(),
        &TerminationReason::PeerRestarted
    );
    call(&client, &mut incoming, "after").await;
    assert_eq!(client.resumes(), 1);
    assert_eq!(stored_record(store.as_ref(), &client).await.incarnation, 1);
    assert!(client.close("done").await.is_graceful());
}

/// docs/SESSION.md §8.3: the client moves from A to B (B rebuilds the session and owns its
/// record) and back to A while A still holds its detached copy. That copy is stale (the
/// session was renumbered on B), so A does not resume it: A rebuilds the session from the
/// record, taking it over, and the client goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_detached_copy_is_not_resumed_when_the_client_comes_back() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (scope_a, scope_b) = (Scope::new(), Scope::new());
    let mut a = node(Arc::clone(&store), &scope_a).await;
    let mut b = node(Arc::clone(&store), &scope_b).await;
    let (client, target, cutter) = client_of(&a).await;
    let first_on_a = bounded("accepted on A", a.sessions.recv())
        .await
        .expect("session");
    let mut incoming = client.take_incoming().expect("incoming");
    let mut links = client.link_changes();
    call(&client, &mut incoming, "on A").await;

    // To B: rebuilt there; A keeps a detached copy for its idle timeout.
    target.send_replace(Some((b.address.clone(), b.config.clone())));
    cutter.cut();
    let on_b = bounded("rebuilt on B", b.sessions.recv())
        .await
        .expect("session");
    assert_eq!(on_b.id(), client.id());
    // Frames sent before the client knows the server rebuilt the session belong to the
    // old incarnation: wait for the resume.
    bounded(
        "resumed on B",
        links.wait_for(|s| s.resumes == 1 && s.state == LinkState::Attached),
    )
    .await
    .expect("status");
    call(&client, &mut incoming, "on B").await;
    assert_eq!(stored_record(store.as_ref(), &client).await.incarnation, 1);
    let mut first_status = first_on_a.link_changes();
    bounded(
        "A's copy detached",
        first_status.wait_for(|s| s.state == LinkState::Detached),
    )
    .await
    .expect("A's copy is running");
    assert_eq!(a.resume.live_sessions(), 1, "A still holds its copy");
    let (_resolver, pending_on_b) = client.register::<u32>().expect("register");

    // Back to A: its copy is stale; A rebuilds from the record instead.
    target.send_replace(Some((a.address.clone(), a.config.clone())));
    cutter.cut();
    let again_on_a = bounded("rebuilt on A", a.sessions.recv())
        .await
        .expect("A rebuilt the session rather than resuming its stale copy");
    assert_eq!(again_on_a.id(), client.id());
    assert_eq!(again_on_a.resumed_state(), Some(&Bytes::from_static(STATE)));
    assert_eq!(first_on_a.resumes(), 0, "the stale copy was not resumed");
    assert_eq!(
        bounded("aborted", pending_on_b)
            .await
            .expect_err("aborted")
            .reason(),
        &TerminationReason::PeerRestarted
    );
    let status = *bounded(
        "attached",
        links.wait_for(|s| s.resumes == 2 && s.state == LinkState::Attached),
    )
    .await
    .expect("status");
    assert_eq!(status.restarts, 2, "both moves rebuilt the session");
    call(&client, &mut incoming, "on A again 1").await;
    call(&client, &mut incoming, "on A again 2").await;
    assert_eq!(stored_record(store.as_ref(), &client).await.incarnation, 2);
    assert_eq!(
        a.resume.live_sessions(),
        1,
        "the rebuilt copy replaced the stale one"
    );
    assert_eq!(
        *a.rebuilt.lock().expect("rebuilt"),
        [Bytes::from_static(STATE)]
    );
}

/// A store whose first reads of a session record, once armed, wait for one another, so
/// that racing servers all read the same version of the record before any of them writes.
#[derive(Debug)]
struct Rendezvous {
    inner: MemoryStore,
    barrier: tokio::sync::Barrier,
    waiting: AtomicUsize,
}

impl Rendezvous {
    fn new(racers: usize) -> Self {
        Self {
            inner: MemoryStore::new(),
            barrier: tokio::sync::Barrier::new(racers),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The next `racers` record reads wait for one another.
    fn arm(&self, racers: usize) {
        self.waiting.store(racers, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for Rendezvous {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, ResumeError> {
        let value = self.inner.get(key).await?;
        let armed = key.starts_with(liaison_resume::RECORD_PREFIX)
            && self
                .waiting
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if armed {
            self.barrier.wait().await;
        }
        Ok(value)
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<u64>,
        ttl: Option<Duration>,
    ) -> Result<u64, ResumeError> {
        self.inner.put(key, value, expected, ttl).await
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<u64, ResumeError> {
        self.inner.set(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<bool, ResumeError> {
        self.inner.delete(key).await
    }

    async fn try_lock(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, ResumeError> {
        self.inner.try_lock(key, owner, lease).await
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<bool, ResumeError> {
        self.inner.unlock(key, owner).await
    }
}

/// Runs a resume handshake by hand over a new connection to `node` with `ticket`: `Ok`
/// with whether the server rebuilt the session, or why it was refused.
async fn resume_attempt(node: &Node, ticket: ResumeTicket) -> Result<bool, TerminationReason> {
    let config = ClientConfig::new(PskAuth::new("fleet", KEY).expect("key").with_name("app"))
        .with_session(session_config())
        .with_resume(ResumeConfig::default().with_state(|| Bytes::from_static(STATE)));
    let transport = liaison_transport::connect(&node.address, &node.config)
        .await
        .expect("connect");
    attempt(&config, ticket, transport, None).await
}

/// docs/SESSION.md §8.3: the session's server died; two servers of the fleet are asked to
/// rebuild it at the same moment, both having read the same record. The record has one
/// owner: one server rebuilds the session, the other refuses with `ResumeDenied` and a
/// reason that says why, and holds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_racing_to_rebuild_a_session_leave_one_owner() {
    let rendezvous = Arc::new(Rendezvous::new(2));
    let store: Arc<dyn Store> = Arc::clone(&rendezvous) as Arc<dyn Store>;
    let scope = Scope::new();
    let mut origin = node(Arc::clone(&store), &scope).await;
    let (client, _target, _cutter) = client_of(&origin).await;
    let old = bounded("accepted", origin.sessions.recv())
        .await
        .expect("session");
    scope.cancel();
    assert_eq!(
        bounded("origin dies", old.closed()).await,
        TerminationReason::ScopeCancelled
    );
    bounded("origin finished", old.finished()).await;
    let record = stored_record(store.as_ref(), &client).await;
    let ticket = ResumeTicket {
        session_id: client.id(),
        secret: record.secret.clone(),
        next_expected: 0,
    };

    let (scope_a, scope_b) = (Scope::new(), Scope::new());
    let mut a = node(Arc::clone(&store), &scope_a).await;
    let mut b = node(Arc::clone(&store), &scope_b).await;
    rendezvous.arm(2);
    let (on_a, on_b) = tokio::join!(
        resume_attempt(&a, ticket.clone()),
        resume_attempt(&b, ticket)
    );
    let (winner, loser, refused) = match (&on_a, &on_b) {
        (Ok(true), Err(reason)) => (&mut a, &mut b, reason.clone()),
        (Err(reason), Ok(true)) => (&mut b, &mut a, reason.clone()),
        other => panic!("expected one rebuild and one refusal, got {other:?}"),
    };
    assert!(
        matches!(
            &refused,
            TerminationReason::ResumeRefused { code: ReasonCode::ResumeDenied, message }
                if message.contains("another server of the fleet took the session over")
        ),
        "{refused}"
    );
    let rebuilt = bounded("rebuilt", winner.sessions.recv())
        .await
        .expect("session");
    assert_eq!(rebuilt.id(), client.id());
    assert_eq!(winner.resume.live_sessions(), 1);
    assert_eq!(loser.resume.live_sessions(), 0);
    assert!(
        loser.sessions.try_recv().is_err(),
        "the loser rebuilt nothing"
    );
    assert!(loser.rebuilt.lock().expect("rebuilt").is_empty());
    assert_eq!(
        stored_record(store.as_ref(), &client).await.incarnation,
        1,
        "one rebuild recorded"
    );
}
