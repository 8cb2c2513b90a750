//! Shared helpers of the integration suites: one listener / connector per transport, test
//! transports that record or corrupt frames, a peer that goes silent, and a minimal
//! request / reply over `Data` frames.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use liaison_session::proto::Connection;
use liaison_session::{
    Aborted, ClientConfig, Eventual, PskAuth, Resolver, ServerConfig, Session, SessionConfig,
};
use liaison_transport::{
    Address, FrameReceiver, FrameSender, Listener, QuicClientTls, QuicConfig, QuicServerTls,
    Transport, TransportConfig, TransportError, TransportInfo,
};
use liaison_wire::{Frame, FrameKind};

/// Which transport a suite runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Memory,
    Tcp,
    Unix,
    Quic,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A bound listener and what a client needs to reach it.
pub(crate) struct Net {
    pub(crate) listener: Box<dyn Listener>,
    pub(crate) addr: Address,
    pub(crate) client: TransportConfig,
}

/// QUIC transport configurations: a self-signed server the client trusts, and with
/// `client_identity` mutual TLS. Also returns the DER of the server's certificate.
pub(crate) fn quic_configs(
    client_identity: Option<liaison_transport::TlsIdentity>,
) -> (TransportConfig, TransportConfig, Bytes) {
    let server_tls = QuicServerTls::self_signed(&["localhost"]).expect("server cert");
    let server_cert = Bytes::copy_from_slice(server_tls.cert_der().as_ref());
    let mut client_tls = QuicClientTls::trust_certificates(vec![server_tls.cert_der().clone()])
        .with_server_name("localhost");
    let server_tls = match client_identity {
        Some(identity) => {
            let roots = vec![identity.cert_der().clone()];
            client_tls = client_tls.with_identity(identity);
            server_tls.require_client_certificates(roots)
        }
        None => server_tls,
    };
    let server =
        TransportConfig::default().with_quic(QuicConfig::default().with_server_tls(server_tls));
    let client =
        TransportConfig::default().with_quic(QuicConfig::default().with_client_tls(client_tls));
    (server, client, server_cert)
}

pub(crate) async fn listen(kind: Kind) -> Net {
    let (addr, server, client): (Address, TransportConfig, TransportConfig) = match kind {
        Kind::Memory => (
            format!("mem://{}", unique("session"))
                .parse()
                .expect("address"),
            TransportConfig::default(),
            TransportConfig::default(),
        ),
        Kind::Tcp => (
            "tcp://127.0.0.1:0".parse().expect("address"),
            TransportConfig::default(),
            TransportConfig::default(),
        ),
        Kind::Unix => {
            let path = std::env::temp_dir().join(format!("{}.sock", unique("liaison-session")));
            (
                format!("unix://{}", path.display())
                    .parse()
                    .expect("address"),
                TransportConfig::default(),
                TransportConfig::default(),
            )
        }
        Kind::Quic => {
            let (server, client, _) = quic_configs(None);
            (
                "quic://127.0.0.1:0".parse().expect("address"),
                server,
                client,
            )
        }
    };
    let listener = liaison_transport::bind(&addr, &server).await.expect("bind");
    let addr = listener.local_addr();
    Net {
        listener,
        addr,
        client,
    }
}

pub(crate) const KEY: [u8; 32] = [0x5a; 32];

pub(crate) fn psk(name: &str) -> PskAuth {
    PskAuth::new("tenant", KEY).expect("key").with_name(name)
}

/// Timers for tests: keepalive 1 s, idle timeout 30 s, handshake deadline 5 s.
pub(crate) fn session_config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.keepalive_interval = Duration::from_secs(1);
    config.idle_timeout = Duration::from_secs(30);
    config.handshake_timeout = Duration::from_secs(5);
    config
}

pub(crate) fn client_config() -> ClientConfig {
    ClientConfig::new(psk("worker")).with_session(session_config())
}

pub(crate) fn server_config() -> ServerConfig {
    ServerConfig::new(psk("hub")).with_session(session_config())
}

/// A transport whose sending half passes every frame through `edit` first (`None` sends
/// nothing), to record, replace or corrupt what a real session sends, and counts its
/// writes (flushes).
pub(crate) struct Tamper {
    inner: Box<dyn Transport>,
    edit: Arc<dyn Fn(usize, Bytes) -> Option<Bytes> + Send + Sync>,
    flushes: Arc<AtomicU64>,
}

impl Tamper {
    pub(crate) fn wrap(
        inner: Box<dyn Transport>,
        edit: impl Fn(usize, Bytes) -> Option<Bytes> + Send + Sync + 'static,
    ) -> Box<dyn Transport> {
        Self::counting(inner, edit, Arc::default())
    }

    /// As [`wrap`](Self::wrap), adding one to `flushes` for every write.
    pub(crate) fn counting(
        inner: Box<dyn Transport>,
        edit: impl Fn(usize, Bytes) -> Option<Bytes> + Send + Sync + 'static,
        flushes: Arc<AtomicU64>,
    ) -> Box<dyn Transport> {
        Box::new(Self {
            inner,
            edit: Arc::new(edit),
            flushes,
        })
    }
}

impl Transport for Tamper {
    fn info(&self) -> &TransportInfo {
        self.inner.info()
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        let (sender, receiver) = self.inner.split();
        (
            Box::new(TamperSender {
                inner: sender,
                edit: self.edit,
                count: 0,
                flushes: self.flushes,
            }),
            receiver,
        )
    }
}

struct TamperSender {
    inner: Box<dyn FrameSender>,
    edit: Arc<dyn Fn(usize, Bytes) -> Option<Bytes> + Send + Sync>,
    count: usize,
    flushes: Arc<AtomicU64>,
}

#[async_trait]
impl FrameSender for TamperSender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        let index = self.count;
        self.count += 1;
        match (self.edit)(index, frame) {
            Some(frame) => self.inner.feed(frame).await,
            None => Ok(()),
        }
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.inner.flush().await
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}

/// Runs the server side of a handshake over `transport` with the sans-IO core, then stops
/// reading and writing while keeping the transport open: a peer that died without closing.
pub(crate) async fn handshake_then_play_dead(
    transport: Box<dyn Transport>,
    config: &ServerConfig,
) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
    let now = || tokio::time::Instant::now().into_std();
    let mut conn = Connection::server(
        config,
        None,
        Box::new(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5)),
        now(),
    )
    .expect("server core");
    let (mut tx, mut rx) = transport.split();
    while !conn.is_established() {
        let bytes = rx.recv().await.expect("recv").expect("a frame");
        conn.handle_bytes(now(), bytes);
        while let Some(frame) = conn.poll_transmit(now()) {
            tx.send(frame.to_bytes()).await.expect("send");
        }
        assert!(!conn.is_terminated(), "{:?}", conn.termination_reason());
    }
    (tx, rx)
}

/// A raw client: sends `Hello` and returns the server's answer frame.
pub(crate) async fn raw_frame(rx: &mut Box<dyn FrameReceiver>) -> Frame {
    let bytes = rx.recv().await.expect("recv").expect("a frame");
    Frame::decode(bytes, &liaison_wire::Limits::default()).expect("frame")
}

/// The minimal request / reply the exchange layer will generalise: a request is a `Data`
/// frame whose exchange id is the request id; the reply is a `Data` frame on the same id.
pub(crate) struct Requester {
    session: Session,
    waiting: Arc<Mutex<HashMap<u64, Resolver<Bytes>>>>,
    next: AtomicU64,
}

impl Requester {
    /// Takes the session's incoming frames and resolves replies as they arrive.
    pub(crate) fn new(session: Session) -> Arc<Self> {
        let mut incoming = session.take_incoming().expect("incoming");
        let waiting: Arc<Mutex<HashMap<u64, Resolver<Bytes>>>> = Arc::default();
        let table = Arc::clone(&waiting);
        tokio::spawn(async move {
            while let Some(frame) = incoming.recv().await {
                if frame.kind == FrameKind::Data {
                    let resolver = table.lock().expect("lock").remove(&frame.exchange);
                    if let Some(resolver) = resolver {
                        resolver.resolve(frame.payload);
                    }
                }
            }
        });
        Arc::new(Self {
            session,
            waiting,
            next: AtomicU64::new(1),
        })
    }

    /// Sends a request; the eventual resolves with the reply or `Aborted`.
    pub(crate) async fn request(&self, payload: &'static [u8]) -> Result<Eventual<Bytes>, Aborted> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (resolver, eventual) = self.session.register::<Bytes>()?;
        self.waiting.lock().expect("lock").insert(id, resolver);
        if let Err(e) = self.session.send(Frame::data(id, payload)).await {
            // The session ended between registering and sending: the eventual is aborted.
            assert!(self.session.is_terminated(), "{e}");
        }
        Ok(eventual)
    }
}

/// Serves requests on `session`: answers each `Data` frame with `reply:` + its payload on
/// the same exchange, except payloads starting with `hold`, which are never answered.
pub(crate) fn serve_requests(session: &Session) {
    let mut incoming = session.take_incoming().expect("incoming");
    let session = session.clone();
    tokio::spawn(async move {
        while let Some(frame) = incoming.recv().await {
            if frame.kind == FrameKind::Data && !frame.payload.starts_with(b"hold") {
                let mut reply = b"reply:".to_vec();
                reply.extend_from_slice(&frame.payload);
                if session
                    .send(Frame::data(frame.exchange, reply))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
}
