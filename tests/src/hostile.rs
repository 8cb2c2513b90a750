//! Hostile peers: a raw client that speaks frames by hand over a real transport, a
//! transport wrapper that records what a genuine client sends, and a server harness that
//! serves an echo root on every session and records how each ended.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use liaison_exchange::Endpoint;
use liaison_session::messages::{Bye, Reject};
use liaison_session::proto::{Connection, Established, Event, ResumeTicket};
use liaison_session::{
    ClientConfig, PskAuth, RootCapability, Scope, Server, ServerConfig, SessionConfig,
    SessionError, TerminationReason,
};
use liaison_transport::{
    Address, FrameReceiver, FrameSender, Loopback, LoopbackKind, Properties, Transport,
    TransportConfig, TransportError, TransportInfo,
};
use liaison_wire::{Codec, DefaultCodec, Frame, FrameKind, Limits};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc;

use crate::Echo;

/// The pre-shared key every test peer uses.
pub const TEST_KEY: [u8; 32] = [0x5a; 32];

/// The id of the root capability [`TestServer`] serves.
pub const ROOT: u64 = 1;

/// A `psk-hmac-sha256` authenticator with [`TEST_KEY`] and this name.
pub fn psk(name: &str) -> PskAuth {
    PskAuth::new("tests", TEST_KEY)
        .expect("a 32-byte key is long enough")
        .with_name(name)
}

/// A client configuration with [`psk`] and `session`.
pub fn client_config(session: SessionConfig) -> ClientConfig {
    ClientConfig::new(psk("client")).with_session(session)
}

/// How the server side of one connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The handshake failed with this error.
    Refused(SessionError),
    /// The session was established and later ended with this reason.
    Ended(TerminationReason),
}

/// A liaison server on a loopback endpoint: every session gets an [`Echo`] root capability
/// ([`ROOT`]), and the outcome of every connection is reported in order of completion.
pub struct TestServer {
    /// Where clients connect.
    pub address: Address,
    /// The transport configuration clients connect with.
    pub transport: TransportConfig,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    scope: Scope,
}

impl TestServer {
    /// Starts a server on a fresh loopback endpoint of `kind`, with `config` (its root
    /// capability is replaced by [`ROOT`]).
    pub async fn start(kind: LoopbackKind, config: ServerConfig) -> Self {
        let endpoint = Loopback::new(kind).expect("loopback endpoint");
        let scope = Scope::new();
        let config = config
            .with_root(RootCapability::new(ROOT, &b"echo"[..]))
            .in_scope(&scope);
        let mut server = Server::bind(&endpoint.address, &endpoint.config, config)
            .await
            .expect("bind");
        let address = server.local_addr().clone();
        let (tx, outcomes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(outcome) = server.next_handshake().await {
                match outcome {
                    Ok(session) => {
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let Ok(endpoint) = Endpoint::builder(session).root(Echo).start() else {
                                return;
                            };
                            let reason = endpoint.closed().await;
                            let _ = tx.send(Outcome::Ended(reason));
                        });
                    }
                    Err(e) => {
                        let _ = tx.send(Outcome::Refused(e));
                    }
                }
            }
        });
        Self {
            address,
            transport: endpoint.config,
            outcomes,
            scope,
        }
    }

    /// The next connection outcome.
    pub async fn next_outcome(&mut self) -> Outcome {
        self.outcomes.recv().await.expect("the server runs")
    }

    /// Outcomes reported so far, without waiting.
    pub fn drain_outcomes(&mut self) -> Vec<Outcome> {
        let mut out = Vec::new();
        while let Ok(outcome) = self.outcomes.try_recv() {
            out.push(outcome);
        }
        out
    }

    /// Connects a well-behaved client (PSK, `session`), makes one echo call on the root
    /// capability and closes: what every test checks still works while it attacks.
    pub async fn echo_once(&self, session: SessionConfig) -> Result<(), String> {
        let session = liaison_session::Session::connect_to(
            &self.address,
            &self.transport,
            client_config(session),
        )
        .await
        .map_err(|e| format!("connect: {e}"))?;
        let endpoint =
            Endpoint::new(session, Default::default()).map_err(|e| format!("endpoint: {e}"))?;
        let root = endpoint.root().map_err(|e| format!("root: {e}"))?;
        let reply = root
            .call(Bytes::from_static(b"still serving"))
            .await
            .map_err(|e| format!("call: {e}"))?;
        endpoint.close("done").await;
        if reply == Bytes::from_static(b"still serving") {
            Ok(())
        } else {
            Err(format!("echo answered {reply:?}"))
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.scope.cancel();
    }
}

/// How a raw peer's connection ended, seen from the raw peer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Farewell {
    /// The server sent `Bye`.
    Bye(Bye),
    /// The server sent `Reject`.
    Reject(Reject),
    /// The server closed the transport without a `Bye` or `Reject`.
    Closed,
    /// The transport failed (reset, lost).
    Failed(TransportError),
}

/// A client that writes frames by hand over a real transport, for tests that play a hostile
/// peer. It can run a genuine handshake first ([`establish`](Self::establish)), then send
/// whatever it likes.
pub struct RawPeer {
    tx: Box<dyn FrameSender>,
    rx: Box<dyn FrameReceiver>,
    properties: Properties,
    /// Frames this peer sent, in order (the handshake included).
    pub sent: Vec<Frame>,
    /// Frames this peer received, in order.
    pub received: Vec<Frame>,
}

impl RawPeer {
    /// Connects a transport to `address`.
    pub async fn connect(
        address: &Address,
        config: &TransportConfig,
    ) -> Result<Self, TransportError> {
        let transport = liaison_transport::connect(address, config).await?;
        let properties = transport.info().properties;
        let (tx, rx) = transport.split();
        Ok(Self {
            tx,
            rx,
            properties,
            sent: Vec::new(),
            received: Vec::new(),
        })
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: Frame) -> Result<(), TransportError> {
        self.tx.send(frame.to_bytes()).await?;
        self.sent.push(frame);
        Ok(())
    }

    /// Sends one message of raw bytes (not necessarily a frame).
    pub async fn send_bytes(&mut self, bytes: Bytes) -> Result<(), TransportError> {
        self.tx.send(bytes).await
    }

    /// Sends many frames, flushing once.
    pub async fn send_all(
        &mut self,
        frames: impl IntoIterator<Item = Frame>,
    ) -> Result<(), TransportError> {
        for frame in frames {
            self.tx.feed(frame.to_bytes()).await?;
        }
        self.tx.flush().await
    }

    /// The next frame from the server (`None` at a clean end); bytes that do not decode as
    /// a frame are an error here, since the server must never send any.
    pub async fn recv(&mut self) -> Result<Option<Frame>, String> {
        match self.rx.recv().await {
            Ok(Some(bytes)) => {
                let frame = Frame::decode(bytes, &Limits::default())
                    .map_err(|e| format!("the server sent an undecodable frame: {e}"))?;
                self.received.push(frame.clone());
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads until the server says goodbye or the connection ends, answering nothing.
    pub async fn farewell(&mut self) -> Farewell {
        farewell(self.rx.as_mut(), &mut self.received).await
    }

    /// The sending and receiving halves, to write and read at once.
    pub fn into_split(self) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        (self.tx, self.rx)
    }

    /// Runs a genuine client handshake with `config` through the sans-IO
    /// [`Connection`], then leaves the session to the caller: what the core would do next
    /// (acks, pings) is not done.
    pub async fn establish(&mut self, config: &ClientConfig) -> Result<Established, SessionError> {
        let start = Instant::now();
        let mut conn = Connection::client(config, None, Box::new(StdRng::from_entropy()), start)?;
        conn.set_transport_properties(start, &self.properties)?;
        loop {
            let now = Instant::now();
            let mut wrote = false;
            while let Some(frame) = conn.poll_transmit(now) {
                self.tx.feed(frame.to_bytes()).await?;
                self.sent.push(frame);
                wrote = true;
            }
            if wrote {
                self.tx.flush().await?;
            }
            while let Some(event) = conn.poll_event() {
                match event {
                    Event::Established(established) => return Ok(*established),
                    Event::Terminated(reason) => return Err(reason.into()),
                    _ => {}
                }
            }
            let deadline = conn
                .poll_timeout()
                .unwrap_or_else(|| now + Duration::from_secs(60));
            match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                Ok(Ok(Some(bytes))) => conn.handle_bytes(Instant::now(), bytes),
                // The server hung up before the session was established.
                Ok(Ok(None)) => {
                    return Err(SessionError::Terminated(TerminationReason::TransportClosed))
                }
                Ok(Err(e)) => return Err(SessionError::Transport(e)),
                Err(_elapsed) => conn.handle_timeout(Instant::now()),
            }
        }
    }
}

impl RawPeer {
    /// Runs a resume attempt with `ticket` through the sans-IO [`Connection`], as a
    /// reconnecting client would, except that the `Resume` frame's payload is replaced by
    /// `proof` if given (a forged or replayed proof). Returns how the attempt ended: `Ok`
    /// once the server answered that the session resumed.
    pub async fn resume(
        &mut self,
        config: &ClientConfig,
        ticket: ResumeTicket,
        proof: Option<Bytes>,
    ) -> Result<(), TerminationReason> {
        let start = Instant::now();
        let mut conn = Connection::client_resume(
            config,
            ticket,
            None,
            Box::new(StdRng::from_entropy()),
            start,
        )
        .map_err(|e| match e {
            SessionError::Terminated(reason) => reason,
            other => TerminationReason::ProtocolViolation {
                origin: liaison_session::Origin::Local,
                detail: other.to_string(),
            },
        })?;
        let _ = conn.set_transport_properties(start, &self.properties);
        loop {
            let now = Instant::now();
            while let Some(mut frame) = conn.poll_transmit(now) {
                if frame.kind == FrameKind::Resume {
                    if let Some(proof) = &proof {
                        frame.payload = proof.clone();
                    }
                }
                if self.tx.send(frame.to_bytes()).await.is_err() {
                    conn.handle_transport_closed();
                }
                self.sent.push(frame);
            }
            while let Some(event) = conn.poll_event() {
                match event {
                    Event::Resumed { .. } => return Ok(()),
                    Event::Terminated(reason) => return Err(reason),
                    _ => {}
                }
            }
            let deadline = conn
                .poll_timeout()
                .unwrap_or_else(|| now + Duration::from_secs(60));
            match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                Ok(Ok(Some(bytes))) => {
                    if let Ok(frame) = Frame::decode(bytes.clone(), &Limits::default()) {
                        self.received.push(frame);
                    }
                    conn.handle_bytes(Instant::now(), bytes);
                }
                Ok(Ok(None) | Err(_)) => conn.handle_transport_closed(),
                Err(_elapsed) => conn.handle_timeout(Instant::now()),
            }
        }
    }
}

/// Wraps `inner` so that every frame its sending half sends is also pushed to `log`: what
/// a genuine client sent, for a test to replay.
pub fn recording(inner: Box<dyn Transport>, log: Arc<Mutex<Vec<Bytes>>>) -> Box<dyn Transport> {
    Box::new(Recording { inner, log })
}

struct Recording {
    inner: Box<dyn Transport>,
    log: Arc<Mutex<Vec<Bytes>>>,
}

impl Transport for Recording {
    fn info(&self) -> &TransportInfo {
        self.inner.info()
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        let (sender, receiver) = self.inner.split();
        (
            Box::new(RecordingSender {
                inner: sender,
                log: self.log,
            }),
            receiver,
        )
    }
}

struct RecordingSender {
    inner: Box<dyn FrameSender>,
    log: Arc<Mutex<Vec<Bytes>>>,
}

#[async_trait]
impl FrameSender for RecordingSender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(frame.clone());
        self.inner.feed(frame).await
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.inner.flush().await
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}

/// Reads from `rx` until the server says goodbye (`Bye`, `Reject`) or the connection ends;
/// every other frame is pushed to `others`.
pub async fn farewell(rx: &mut dyn FrameReceiver, others: &mut Vec<Frame>) -> Farewell {
    let codec = DefaultCodec::default();
    loop {
        match rx.recv().await {
            Ok(Some(bytes)) => {
                let Ok(frame) = Frame::decode(bytes, &Limits::default()) else {
                    continue;
                };
                match frame.kind {
                    FrameKind::Bye => {
                        if let Ok(bye) = codec.decode::<Bye>(&frame.payload) {
                            return Farewell::Bye(bye);
                        }
                    }
                    FrameKind::Reject => {
                        if let Ok(reject) = codec.decode::<Reject>(&frame.payload) {
                            return Farewell::Reject(reject);
                        }
                    }
                    _ => others.push(frame),
                }
            }
            Ok(None) => return Farewell::Closed,
            Err(e) => return Farewell::Failed(e),
        }
    }
}
