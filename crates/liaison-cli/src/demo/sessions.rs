//! The session part of the demo: authenticated sessions over every transport, concurrent
//! exchanges on each, an ordered session over a lossy link, and termination.

use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_exchange::{service_fn, Context, Endpoint, ExchangeError};
use liaison_session::{
    ClientConfig, PskAuth, RootCapability, SequencingMode, Server, ServerConfig, Session,
    TerminationReason,
};
use liaison_transport::fault::{FaultConfig, FaultStats, FaultyTransport};
use liaison_transport::{memory, Loopback, LoopbackKind, Transport};

use crate::error::CliError;
use crate::services::Echo;

fn psk(key: &[u8; 32], name: &str) -> Result<PskAuth, CliError> {
    Ok(PskAuth::new("demo", key)?.with_name(name))
}

/// What one session over one transport showed.
#[derive(Debug)]
pub(crate) struct SessionReport {
    pub(crate) transport: LoopbackKind,
    pub(crate) version: u16,
    pub(crate) client_sees: String,
    pub(crate) server_sees: String,
    pub(crate) handshake: Duration,
    pub(crate) exchanges: u64,
    pub(crate) echoes: Echoes,
    pub(crate) elapsed: Duration,
}

/// Establishes a PSK-authenticated session over `kind` and runs `exchanges` concurrent echo
/// exchanges of `per_exchange` messages each, interleaved, checking every echo.
pub(crate) async fn over(
    kind: LoopbackKind,
    key: &[u8; 32],
    exchanges: u64,
    per_exchange: u64,
) -> Result<SessionReport, CliError> {
    let endpoint = Loopback::new(kind)?;
    let server_config =
        ServerConfig::new(psk(key, "demo-server")?).with_root(RootCapability::new(1, &b"echo"[..]));
    let mut server = Server::bind(&endpoint.address, &endpoint.config, server_config).await?;
    let address = server.local_addr().clone();
    let start = Instant::now();
    let client_config = ClientConfig::new(psk(key, "demo-client")?);
    let (client, accepted) = tokio::join!(
        Session::connect_to(&address, &endpoint.config, client_config),
        server.accept()
    );
    let (client, accepted) = (client?, accepted?);
    let handshake = start.elapsed();
    let report_base = (
        client.version(),
        client.peer_identity().to_string(),
        accepted.peer_identity().to_string(),
    );
    let _server = Endpoint::builder(accepted).root(Echo).start()?;
    let client = Endpoint::new(client, Default::default())?;
    let echoes = run_exchanges(&client, exchanges, per_exchange).await?;
    client.close("demo done").await;
    let (version, client_sees, server_sees) = report_base;
    Ok(SessionReport {
        transport: kind,
        version,
        client_sees,
        server_sees,
        handshake,
        exchanges,
        echoes,
        elapsed: start.elapsed(),
    })
}

/// The message `index` of exchange `exchange`: both numbers, so a mix-up shows.
fn message(exchange: u64, index: u64) -> Bytes {
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&exchange.to_le_bytes());
    body.extend_from_slice(&index.to_le_bytes());
    body.extend_from_slice(b"liaison!");
    Bytes::from(body)
}

/// What came back on the exchanges of one run, counted message by message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Echoes {
    /// Messages that came back.
    pub(crate) echoed: u64,
    /// Messages that came back unchanged, on their own exchange, in their place.
    pub(crate) intact: u64,
    /// Messages sent that never came back.
    pub(crate) lost: u64,
    /// Messages that came back more than once (each extra copy counts).
    pub(crate) duplicated: u64,
}

impl Echoes {
    fn add(&mut self, other: Self) {
        self.echoed += other.echoed;
        self.intact += other.intact;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
    }
}

/// Tallies the echoes of one exchange `exchange` that sent `sent` messages.
struct Tally {
    exchange: u64,
    seen: Vec<bool>,
    echoes: Echoes,
}

impl Tally {
    fn new(exchange: u64, sent: u64) -> Self {
        Self {
            exchange,
            seen: vec![false; usize::try_from(sent).unwrap_or(usize::MAX)],
            echoes: Echoes::default(),
        }
    }

    /// Counts `back`, expected to be message `position` of the exchange.
    fn record(&mut self, back: &Bytes, position: u64) {
        self.echoes.echoed += 1;
        self.echoes.intact += u64::from(*back == message(self.exchange, position));
        let index = (back.len() == 24 && back[..8] == self.exchange.to_le_bytes()[..])
            .then(|| {
                let mut index = [0u8; 8];
                index.copy_from_slice(&back[8..16]);
                u64::from_le_bytes(index)
            })
            .and_then(|index| usize::try_from(index).ok());
        if let Some(slot) = index.and_then(|index| self.seen.get_mut(index)) {
            if *slot {
                self.echoes.duplicated += 1;
            }
            *slot = true;
        }
    }

    fn finish(mut self) -> Echoes {
        self.echoes.lost = self.seen.iter().filter(|seen| !**seen).count() as u64;
        self.echoes
    }
}

/// Runs the exchanges concurrently and counts what came back.
pub(crate) async fn run_exchanges(
    client: &Endpoint,
    exchanges: u64,
    per_exchange: u64,
) -> Result<Echoes, CliError> {
    let root = client.root()?;
    let mut tasks = tokio::task::JoinSet::new();
    for x in 0..exchanges {
        let root = root.clone();
        tasks.spawn(async move {
            let mut exchange = root.begin().await?;
            let mut tally = Tally::new(x, per_exchange);
            for i in 0..per_exchange {
                exchange.send(message(x, i)).await?;
                // Interleave: read every other message back before sending more.
                if i % 2 == 1 {
                    for j in i - 1..=i {
                        if let Some(back) = exchange.recv().await? {
                            tally.record(&back, j);
                        }
                    }
                }
            }
            exchange.end().await?;
            let mut next = per_exchange - per_exchange % 2;
            while let Some(back) = exchange.recv().await? {
                tally.record(&back, next);
                next += 1;
            }
            Ok::<_, ExchangeError>(tally.finish())
        });
    }
    let mut total = Echoes::default();
    while let Some(joined) = tasks.join_next().await {
        total.add(joined.map_err(|e| CliError::Check(format!("exchange task: {e}")))??);
    }
    Ok(total)
}

/// What the ordered session over the lossy link showed.
#[derive(Debug)]
pub(crate) struct LossyReport {
    pub(crate) client_faults: FaultStats,
    pub(crate) server_faults: FaultStats,
    pub(crate) handshake: Duration,
    pub(crate) echoes: Echoes,
    pub(crate) elapsed: Duration,
}

/// An ordered session over a memory link that drops `loss` of the frames each way (and
/// duplicates and reorders some), running the same concurrent exchanges.
pub(crate) async fn lossy(
    key: &[u8; 32],
    loss: f64,
    seed: u64,
    exchanges: u64,
    per_exchange: u64,
) -> Result<LossyReport, CliError> {
    let (a, b) = memory::pair(1024, 1 << 20);
    let faults = |seed| {
        FaultConfig::default()
            .with_seed(seed)
            .with_drop(loss)
            .with_duplicate(loss / 2.0)
            .with_reorder(loss / 2.0)
    };
    let a = FaultyTransport::new(Box::new(a), faults(seed));
    let b = FaultyTransport::new(Box::new(b), faults(seed + 1));
    let (client_faults, server_faults) = (a.handle(), b.handle());
    let start = Instant::now();
    let (client, server) = tokio::join!(
        Session::connect(
            Box::new(a) as Box<dyn Transport>,
            ClientConfig::new(psk(key, "demo-client")?).with_sequencing(SequencingMode::Ordered)
        ),
        Session::accept(
            Box::new(b) as Box<dyn Transport>,
            ServerConfig::new(psk(key, "demo-server")?)
                .with_root(RootCapability::new(1, &b"echo"[..]))
        )
    );
    let handshake = start.elapsed();
    let _server = Endpoint::builder(server?).root(Echo).start()?;
    let client = Endpoint::new(client?, Default::default())?;
    let echoes = run_exchanges(&client, exchanges, per_exchange).await?;
    client.close("demo done").await;
    Ok(LossyReport {
        client_faults: client_faults.stats(),
        server_faults: server_faults.stats(),
        handshake,
        echoes,
        elapsed: start.elapsed(),
    })
}

/// What ending a session did to the calls still waiting on it.
#[derive(Debug)]
pub(crate) struct TerminationReport {
    pub(crate) handshake: Duration,
    pub(crate) pending: u64,
    pub(crate) aborted: u64,
    pub(crate) reason: String,
    pub(crate) revoked_after: bool,
}

/// Starts `pending` calls to a service that never answers, closes the session from the
/// server, and checks that every call resolved `Aborted` and the capability is revoked.
pub(crate) async fn termination(
    key: &[u8; 32],
    pending: u64,
) -> Result<TerminationReport, CliError> {
    let (a, b) = memory::pair(256, 1 << 20);
    let start = Instant::now();
    let (client, server) = tokio::join!(
        Session::connect(Box::new(a), ClientConfig::new(psk(key, "demo-client")?)),
        Session::accept(
            Box::new(b),
            ServerConfig::new(psk(key, "demo-server")?)
                .with_root(RootCapability::new(1, &b"slow"[..]))
        )
    );
    let never = service_fn(|_: u64, ctx: Context| async move {
        ctx.cancelled().await;
        Err::<u64, String>("cancelled".into())
    });
    let handshake = start.elapsed();
    let server = Endpoint::builder(server?).root(never).start()?;
    let client = Endpoint::new(client?, Default::default())?;
    let root = client.root()?.typed::<u64, u64>();
    let calls: Vec<_> = (0..pending).map(|n| tokio::spawn(root.call(&n))).collect();
    // Let every call reach the server before the session ends.
    while u64::from(server.stats().incoming) < pending {
        tokio::task::yield_now().await;
    }
    let reason = server.close("server shutting down").await;
    let mut aborted = 0;
    for call in calls {
        match call.await {
            Ok(Err(error)) if error.is_aborted() => aborted += 1,
            other => {
                return Err(CliError::Check(format!(
                    "a pending call ended with {other:?}"
                )))
            }
        }
    }
    let revoked_after = root.call(&0).await.is_err_and(|e| e.is_revoked());
    Ok(TerminationReport {
        handshake,
        pending,
        aborted,
        reason: describe(&client.closed().await, &reason),
        revoked_after,
    })
}

fn describe(client_saw: &TerminationReason, server_saw: &TerminationReason) -> String {
    format!("client: {client_saw}; server: {server_saw}")
}
