//! The resume part of the demo: a TCP connection cut in the middle of a stream and the
//! session resumed with nothing lost, and a server restarted on its redb store with the
//! session rebuilt from the client's state.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Buf as _, Bytes};
use liaison_exchange::Endpoint;
use liaison_resume::{BackoffConfig, RedbStore, Store};
use liaison_session::{
    ClientConfig, PskAuth, Reconnect, ResumeConfig, RootCapability, Scope, Server, ServerConfig,
    ServerResume, Session, TerminationReason,
};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultyTransport};
use liaison_transport::{
    Address, Loopback, LoopbackKind, Transport, TransportConfig, TransportError,
};
use liaison_wire::{Codec as _, Frame};

use crate::error::CliError;
use crate::services::{StreamRequest, Streamer};

/// How long a detached session is kept, and the client's reconnection schedule.
const KEEP_DETACHED: Duration = Duration::from_secs(30);

fn backoff() -> BackoffConfig {
    BackoffConfig::default()
        .with_delays(Duration::from_millis(2), Duration::from_millis(50))
        .with_max_elapsed(Some(Duration::from_secs(20)))
}

fn psk(key: &[u8; 32], name: &str) -> Result<PskAuth, CliError> {
    Ok(PskAuth::new("demo", key)?.with_name(name))
}

/// Dials the server (whichever address it has now) and wraps each connection in a fault
/// injector, so the demo can cut the current one.
#[derive(Clone)]
struct Dialer {
    target: Arc<Mutex<(Address, TransportConfig)>>,
    handles: Arc<Mutex<Vec<FaultHandle>>>,
}

impl Dialer {
    fn new(address: Address, config: TransportConfig) -> Self {
        Self {
            target: Arc::new(Mutex::new((address, config))),
            handles: Arc::default(),
        }
    }

    fn retarget(&self, address: Address) {
        self.target.lock().unwrap_or_else(|e| e.into_inner()).0 = address;
    }

    /// Cuts the connection in use, as a network failure would.
    fn cut(&self) {
        if let Some(handle) = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
        {
            handle.cut();
        }
    }
}

#[async_trait]
impl Reconnect for Dialer {
    async fn connect(&self) -> Result<Box<dyn Transport>, TransportError> {
        let (address, config) = self
            .target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let faulty = FaultyTransport::new(
            liaison_transport::connect(&address, &config).await?,
            FaultConfig::default(),
        );
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(faulty.handle());
        Ok(Box::new(faulty))
    }
}

/// What a cut in the middle of a stream did.
#[derive(Debug)]
pub(crate) struct CutReport {
    pub(crate) handshake: Duration,
    pub(crate) requested: u64,
    pub(crate) received: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) resumes: u32,
    pub(crate) elapsed: Duration,
}

/// Streams `count` messages over a resumable TCP session, cuts the connection when half
/// have arrived, and counts what the stream delivered once the session resumed.
pub(crate) async fn cut_mid_stream(key: &[u8; 32], count: u64) -> Result<CutReport, CliError> {
    let endpoint = Loopback::new(LoopbackKind::Tcp)?;
    let store: Arc<dyn Store> = Arc::new(liaison_resume::MemoryStore::new());
    let server_config = ServerConfig::new(psk(key, "demo-server")?)
        .with_root(RootCapability::new(1, &b"stream"[..]))
        .with_resume(ServerResume::new(store, KEEP_DETACHED));
    let mut server = Server::bind(&endpoint.address, &endpoint.config, server_config).await?;
    let dialer = Dialer::new(server.local_addr().clone(), endpoint.config.clone());
    let start = Instant::now();
    let client_config = ClientConfig::new(psk(key, "demo-client")?).with_resume(
        ResumeConfig::default()
            .with_backoff(backoff())
            .with_reconnect(dialer.clone()),
    );
    let (client, accepted) = tokio::join!(
        async { Session::connect(dialer.connect().await?, client_config).await },
        server.accept()
    );
    let (client, accepted) = (client?, accepted?);
    let handshake = start.elapsed();
    let _server = Endpoint::builder(accepted).root(Streamer).start()?;
    let client = Endpoint::new(client, Default::default())?;

    let request = client.codec().encode(&StreamRequest { count, size: 32 })?;
    let mut exchange = client.root()?.begin_with(request).await?;
    exchange.end().await?;
    let mut seen = vec![0u32; usize::try_from(count).unwrap_or(usize::MAX)];
    let mut received = 0u64;
    while let Some(mut message) = exchange.recv().await? {
        received += 1;
        if received == count / 2 {
            dialer.cut();
        }
        if message.len() >= 8 {
            let index = message.get_u64_le();
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| seen.get_mut(i)) {
                *slot += 1;
            }
        }
    }
    let lost = seen.iter().filter(|n| **n == 0).count() as u64;
    let duplicated = seen.iter().map(|n| u64::from(n.saturating_sub(1))).sum();
    let resumes = client.session().resumes();
    client.close("demo done").await;
    Ok(CutReport {
        handshake,
        requested: count,
        received,
        lost,
        duplicated,
        resumes,
        elapsed: start.elapsed(),
    })
}

/// What a server restart did to a resumable session.
#[derive(Debug)]
pub(crate) struct RestartReport {
    pub(crate) handshake: Duration,
    pub(crate) sent: u64,
    pub(crate) echoed: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) resumes: u32,
    /// The pending call registered before the restart resolved `PeerRestarted`.
    pub(crate) aborted: bool,
    /// The rebuilt session got the client's state.
    pub(crate) state_restored: bool,
    pub(crate) same_id: bool,
    pub(crate) elapsed: Duration,
}

/// Echoes every data frame of `session` on its exchange.
fn echo_frames(session: Session) {
    tokio::spawn(async move {
        let Some(mut incoming) = session.take_incoming() else {
            return;
        };
        while let Some(frame) = incoming.recv().await {
            if session
                .send(Frame::data(frame.exchange, frame.payload))
                .await
                .is_err()
            {
                return;
            }
        }
    });
}

/// A unique redb file in the temporary folder, removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One server instance on `store`: its listener, scope and resume settings.
async fn instance(
    key: &[u8; 32],
    endpoint: &Loopback,
    store: Arc<dyn Store>,
    client_state: Arc<Mutex<Option<Bytes>>>,
) -> Result<(Server, Scope), CliError> {
    let scope = Scope::new();
    let resume = ServerResume::new(store, KEEP_DETACHED).with_state_handler(move |_, _, state| {
        *client_state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state.clone());
        Ok(())
    });
    let config = ServerConfig::new(psk(key, "demo-server")?)
        .with_root(RootCapability::new(1, &b"echo"[..]))
        .with_resume(resume);
    let listener = liaison_transport::bind(&endpoint.address, &endpoint.config).await?;
    Ok((Server::serve_in(&scope, listener, config), scope))
}

/// A resumable session with a server keeping its records in a redb file; the server goes
/// away without a word, a new server opens the same file (on a new port, as behind a load
/// balancer), and the client's session goes on with it under the same id.
pub(crate) async fn server_restart(
    key: &[u8; 32],
    messages: u64,
) -> Result<RestartReport, CliError> {
    let path = TempFile(std::env::temp_dir().join(format!(
        "liaison-demo-{}-{:x}.redb",
        std::process::id(),
        rand::random::<u64>()
    )));
    let endpoint = Loopback::new(LoopbackKind::Tcp)?;
    let store: Arc<dyn Store> = Arc::new(RedbStore::create(&path.0)?);
    let restored: Arc<Mutex<Option<Bytes>>> = Arc::default();
    let (mut first, first_scope) =
        instance(key, &endpoint, Arc::clone(&store), Arc::clone(&restored)).await?;
    let dialer = Dialer::new(first.local_addr().clone(), endpoint.config.clone());
    let start = Instant::now();
    let client_config = ClientConfig::new(psk(key, "demo-client")?).with_resume(
        ResumeConfig::default()
            .with_backoff(backoff())
            .with_reconnect(dialer.clone())
            .with_state(|| Bytes::from_static(b"cart: apples, pears")),
    );
    let (client, old) = tokio::join!(
        async { Session::connect(dialer.connect().await?, client_config).await },
        first.accept()
    );
    let (client, old) = (client?, old?);
    let handshake = start.elapsed();
    echo_frames(old.clone());
    let mut incoming = client
        .take_incoming()
        .ok_or_else(|| CliError::Check("the client's incoming frames were taken".into()))?;
    let half = messages / 2;
    let mut seen = vec![0u32; usize::try_from(messages).unwrap_or(usize::MAX)];
    let mut echoed = 0u64;
    let mut record = |frame: Frame| {
        echoed += 1;
        let mut payload = frame.payload;
        if payload.len() == 8 {
            let index = payload.get_u64_le();
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| seen.get_mut(i)) {
                *slot += 1;
            }
        }
    };
    for n in 0..half {
        client
            .send(Frame::data(1, Bytes::copy_from_slice(&n.to_le_bytes())))
            .await?;
    }
    for _ in 0..half {
        let frame = incoming
            .recv()
            .await
            .ok_or_else(|| CliError::Check("the session ended before the restart".into()))?;
        record(frame);
    }
    let (_resolver, pending) = client
        .register::<()>()
        .map_err(|aborted| CliError::Check(format!("the session ended: {}", aborted.reason())))?;

    // The first server goes away: its sessions end without a word, its records stay in
    // the file. Once it has let go of the file, a new server opens it on the same port.
    first_scope.cancel();
    let _ = old.closed().await;
    drop((first, old));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&store) > 1 && Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    drop(store);
    let reopened: Arc<dyn Store> = Arc::new(RedbStore::create(&path.0)?);
    let (mut second, _second_scope) = instance(
        key,
        &Loopback::new(LoopbackKind::Tcp)?,
        reopened,
        Arc::clone(&restored),
    )
    .await?;
    dialer.retarget(second.local_addr().clone());
    let rebuilt = second.accept().await?;
    let same_id = rebuilt.id() == client.id();
    echo_frames(rebuilt);
    let aborted = matches!(
        pending.await,
        Err(aborted) if *aborted.reason() == TerminationReason::PeerRestarted
    );

    for n in half..messages {
        client
            .send(Frame::data(1, Bytes::copy_from_slice(&n.to_le_bytes())))
            .await?;
    }
    for _ in half..messages {
        let frame = incoming
            .recv()
            .await
            .ok_or_else(|| CliError::Check("the session ended after the restart".into()))?;
        record(frame);
    }
    let lost = seen.iter().filter(|n| **n == 0).count() as u64;
    let duplicated = seen.iter().map(|n| u64::from(n.saturating_sub(1))).sum();
    let resumes = client.resumes();
    client.close("demo done").await;
    let state_restored = restored
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_deref()
        == Some(&b"cart: apples, pears"[..]);
    Ok(RestartReport {
        handshake,
        sent: messages,
        echoed,
        lost,
        duplicated,
        resumes,
        aborted,
        state_restored,
        same_id,
        elapsed: start.elapsed(),
    })
}
