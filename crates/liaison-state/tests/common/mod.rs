//! Shared helpers of the state suites: the three stores (memory, redb in a temporary file,
//! Redis on a private `redis-server`), a state server listening on a loopback transport, and
//! clients connecting to it.

// Each suite uses a part of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use liaison_exchange::{Endpoint, ExchangeConfig};
use liaison_resume::{LocalRedis, MemoryStore, RedbStore, RedisStore, Store};
use liaison_session::{ClientConfig, PskAuth, RootCapability, Server, ServerConfig, Session};
use liaison_state::{StateClient, StateConfig, StateService};
use liaison_transport::{Address, Loopback, LoopbackKind, TransportConfig};
use tokio::task::JoinHandle;

/// The store behind a state server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    Memory,
    Redb,
    Redis,
}

/// A store and what keeps it alive (the redb file's directory, the Redis server).
pub(crate) struct TestStore {
    pub(crate) store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _redis: Option<Arc<LocalRedis>>,
}

impl TestStore {
    /// A fresh, empty store of `kind`.
    pub(crate) async fn new(kind: StoreKind) -> Self {
        match kind {
            StoreKind::Memory => Self {
                store: Arc::new(MemoryStore::new()),
                _dir: None,
                _redis: None,
            },
            StoreKind::Redb => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let store = RedbStore::create(dir.path().join("state.redb")).expect("redb store");
                Self {
                    store: Arc::new(store),
                    _dir: Some(dir),
                    _redis: None,
                }
            }
            StoreKind::Redis => {
                let redis = Arc::new(LocalRedis::start().await.expect("redis-server"));
                let store = RedisStore::connect(&redis.url())
                    .await
                    .expect("redis store");
                Self {
                    store: Arc::new(store),
                    _dir: None,
                    _redis: Some(redis),
                }
            }
        }
    }

    /// Another connection to the same Redis server (what a second state server uses).
    pub(crate) async fn second_redis_connection(&self) -> Arc<dyn Store> {
        let redis = self._redis.as_ref().expect("a Redis store");
        Arc::new(
            RedisStore::connect(&redis.url())
                .await
                .expect("redis store"),
        )
    }
}

const KEY: [u8; 32] = [0x5a; 32];

fn server_config() -> ServerConfig {
    ServerConfig::new(
        PskAuth::new("state-tests", KEY)
            .expect("key")
            .with_name("server"),
    )
    .with_root(RootCapability::new(1, &b"liaison-state tests"[..]))
}

fn client_config() -> ClientConfig {
    ClientConfig::new(
        PskAuth::new("state-tests", KEY)
            .expect("key")
            .with_name("client"),
    )
}

/// A state server listening on a loopback transport: every session it accepts is served
/// with one shared [`StateService`] as its root capability.
pub(crate) struct TestServer {
    pub(crate) service: StateService,
    address: Address,
    transport: TransportConfig,
    endpoints: Arc<Mutex<Vec<Endpoint>>>,
    accept: JoinHandle<()>,
}

impl TestServer {
    /// Serves `store` with `config` over a new loopback endpoint of `kind`.
    pub(crate) async fn start(
        kind: LoopbackKind,
        store: Arc<dyn Store>,
        config: StateConfig,
    ) -> Self {
        let service = StateService::new(store, config).expect("state service");
        let loopback = Loopback::new(kind).expect("loopback");
        let mut server = Server::bind(&loopback.address, &loopback.config, server_config())
            .await
            .expect("bind");
        let address = server.local_addr().clone();
        let endpoints = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let service = service.clone();
            let endpoints = Arc::clone(&endpoints);
            async move {
                while let Ok(session) = server.accept().await {
                    let endpoint = service.serve(session).expect("serve");
                    endpoints.lock().expect("endpoints").push(endpoint);
                }
            }
        });
        Self {
            service,
            address,
            transport: loopback.config,
            endpoints,
            accept,
        }
    }

    /// A new session to the server: its endpoint (to abort it) and a state client.
    pub(crate) async fn connect(&self) -> (Endpoint, StateClient) {
        let session = Session::connect_to(&self.address, &self.transport, client_config())
            .await
            .expect("client session");
        let endpoint = Endpoint::new(session, ExchangeConfig::default()).expect("endpoint");
        let client = StateClient::root(&endpoint).expect("root");
        (endpoint, client)
    }

    /// How many sessions the server accepted.
    pub(crate) fn sessions(&self) -> usize {
        self.endpoints.lock().expect("endpoints").len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept.abort();
        for endpoint in self.endpoints.lock().expect("endpoints").iter() {
            endpoint.abort();
        }
    }
}

/// Bounds a test: nothing may hang.
pub(crate) async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("the test hung")
}

/// `n` as a state.
pub(crate) fn number(n: u64) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&n.to_le_bytes())
}

/// A state as the number it holds.
pub(crate) fn read_number(state: &[u8]) -> u64 {
    u64::from_le_bytes(state.try_into().expect("an 8-byte counter"))
}
