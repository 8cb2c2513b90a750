//! A server restart under a resumable session, seen from the exchange layer (PROTOCOL.md
//! §10.3, SESSION.md §8.2): calls and exchanges begun before the restart, including while
//! the client was detached, resolve `Aborted(PeerRestarted)`; none of their frames reaches
//! the rebuilt server, the frames given up are counted, and the session goes on.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{within, ROOT};
use liaison_exchange::{raw_service_fn, Context, Endpoint, ExchangeConfig, ExchangeError};
use liaison_resume::{BackoffConfig, MemoryStore, Store};
use liaison_session::{
    reconnect_fn, ClientConfig, LinkState, PskAuth, ResumeConfig, RootCapability, Scope, Server,
    ServerConfig, ServerResume, Session, TerminationReason,
};
use liaison_transport::{Address, Loopback, LoopbackKind, TransportConfig};
use tokio::sync::{mpsc, watch};

const KEY: [u8; 32] = [0x42; 32];

/// A resumable server sharing `store`, serving an echo call as root; it logs every request
/// it serves.
struct Instance {
    address: Address,
    config: TransportConfig,
    endpoints: mpsc::UnboundedReceiver<Endpoint>,
    log: Arc<Mutex<Vec<Bytes>>>,
}

async fn serve(scope: &Scope, store: &Arc<dyn Store>) -> Instance {
    let loopback = Loopback::new(LoopbackKind::Memory).expect("loopback");
    let listener = liaison_transport::bind(&loopback.address, &loopback.config)
        .await
        .expect("bind");
    let address = listener.local_addr();
    let resume = ServerResume::new(Arc::clone(store), Duration::from_secs(30));
    let config = ServerConfig::new(PskAuth::new("tests", KEY).expect("key").with_name("server"))
        .with_root(RootCapability::new(ROOT, &b"restart tests"[..]))
        .with_resume(resume);
    let mut server = Server::serve_in(scope, listener, config);
    let log: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let (tx, endpoints) = mpsc::unbounded_channel();
    let served = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(session) = server.accept().await {
            let log = Arc::clone(&served);
            let endpoint = Endpoint::builder(session)
                .root(raw_service_fn(move |request: Bytes, _ctx: Context| {
                    log.lock().expect("log").push(request.clone());
                    async move { Ok::<_, String>(request) }
                }))
                .start()
                .expect("endpoint");
            let _ = tx.send(endpoint);
        }
    });
    Instance {
        address,
        config: loopback.config,
        endpoints,
        log,
    }
}

/// Where the client reconnects, and a gate that holds its connections while closed.
#[derive(Clone)]
struct Dialer {
    target: Arc<Mutex<(Address, TransportConfig)>>,
    gate: watch::Receiver<bool>,
}

impl Dialer {
    fn config(&self) -> ClientConfig {
        let dialer = self.clone();
        ClientConfig::new(PskAuth::new("tests", KEY).expect("key").with_name("client")).with_resume(
            ResumeConfig::default()
                .with_backoff(
                    BackoffConfig::default()
                        .with_delays(Duration::from_millis(1), Duration::from_millis(20)),
                )
                .with_state(|| Bytes::from_static(b"client state"))
                .with_reconnect(reconnect_fn(move || {
                    let dialer = dialer.clone();
                    async move {
                        let mut gate = dialer.gate.clone();
                        let _ = gate.wait_for(|open| *open).await;
                        let (address, config) = dialer.target.lock().expect("target").clone();
                        liaison_transport::connect(&address, &config).await
                    }
                })),
        )
    }
}

fn aborted_by_restart<T: std::fmt::Debug>(result: &Result<T, ExchangeError>) -> bool {
    matches!(
        result,
        Err(ExchangeError::Aborted(TerminationReason::PeerRestarted))
    )
}

#[tokio::test(start_paused = true)]
async fn calls_begun_while_detached_resolve_aborted_when_the_server_restarted() {
    within(async {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let first_scope = Scope::new();
        let mut first = serve(&first_scope, &store).await;
        let (open, gate) = watch::channel(true);
        let dialer = Dialer {
            target: Arc::new(Mutex::new((first.address.clone(), first.config.clone()))),
            gate,
        };
        let transport = liaison_transport::connect(&first.address, &first.config)
            .await
            .expect("connect");
        let session = Session::connect(transport, dialer.config())
            .await
            .expect("session");
        let client = Endpoint::new(session.clone(), ExchangeConfig::default()).expect("client");
        let _first_server = first.endpoints.recv().await.expect("server endpoint");
        let root = client.root().expect("root");
        assert_eq!(
            root.call(Bytes::from_static(b"one")).await.expect("call"),
            "one"
        );
        // An exchange open across the loss: the server's handler waits for its request.
        let mut open_before = root.begin().await.expect("begin");

        // The first server goes away (its record stays in the store); the client cannot
        // reconnect until the gate opens.
        open.send_replace(false);
        first_scope.cancel();
        let mut links = session.link_changes();
        links
            .wait_for(|status| status.state == LinkState::Detached)
            .await
            .expect("detached");

        // While detached: a call begun, a message on the exchange opened before. `send`
        // takes them (the session buffers them for the server it lost).
        let call = tokio::spawn({
            let root = root.clone();
            async move { root.call(Bytes::from_static(b"while detached")).await }
        });
        open_before
            .send(Bytes::from_static(b"more"))
            .await
            .expect("buffered while detached");
        // Paused time: this returns once every task is idle, the call's Begin taken.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!call.is_finished(), "nobody could answer yet");
        assert_eq!(session.link(), LinkState::Detached);

        // A second instance sharing the store: the client resumes there, the session is
        // rebuilt from its state.
        let second_scope = Scope::new();
        let mut second = serve(&second_scope, &store).await;
        *dialer.target.lock().expect("target") = (second.address.clone(), second.config.clone());
        open.send_replace(true);
        let rebuilt = second.endpoints.recv().await.expect("rebuilt endpoint");
        assert_eq!(rebuilt.session().id(), session.id());

        // Everything begun before the restart resolves, aborted by it.
        let outcome = call.await.expect("call task");
        assert!(aborted_by_restart(&outcome), "{outcome:?}");
        let recv = open_before.recv().await;
        assert!(aborted_by_restart(&recv), "{recv:?}");
        let send = open_before.send(Bytes::from_static(b"after")).await;
        assert!(aborted_by_restart(&send), "{send:?}");

        // The loss is counted: at least the call's Begin and the message on the old
        // exchange were never acknowledged by any server that still knows them.
        let status = *session.link_changes().borrow();
        assert_eq!((status.resumes, status.restarts), (1, 1));
        assert!(status.abandoned >= 2, "{status:?}");

        // The session goes on: new calls reach the rebuilt server, which saw nothing of
        // the old exchanges (none of their frames, no violation).
        assert_eq!(
            root.call(Bytes::from_static(b"two")).await.expect("call"),
            "two"
        );
        assert_eq!(
            *second.log.lock().expect("log"),
            [Bytes::from_static(b"two")]
        );
        assert_eq!(client.stats().outgoing, 0);
        assert!(!session.is_terminated());
        assert!(!rebuilt.is_terminated());
    })
    .await;
}
