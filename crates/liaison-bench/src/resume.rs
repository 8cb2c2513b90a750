//! Resume latency: how long a resumable session takes, once its client has a new
//! connection after a cut, to deliver the first message the cut lost; in microseconds and
//! in round trips of the same transport, measured in the same run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_resume::{BackoffConfig, MemoryStore};
use liaison_session::{
    reconnect_fn, ClientConfig, PskAuth, ResumeConfig, Server, ServerConfig, ServerResume, Session,
};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultyTransport};
use liaison_transport::{Address, Loopback, LoopbackKind, Transport, TransportConfig};
use liaison_wire::Frame;
use tokio::sync::mpsc;

use crate::report::{Figure, Row};

const KEY: [u8; 32] = [0x3c; 32];
/// Size of a raw ping-pong message.
const PING: usize = 16;
/// Longest wait for one step of a measurement; reaching it aborts the benchmark.
const STEP: Duration = Duration::from_secs(30);

/// How many cuts and ping-pongs are timed, after how many untimed ones.
#[derive(Debug, Clone, Copy)]
struct Plan {
    warmup_cuts: usize,
    cuts: usize,
    warmup_pings: usize,
    pings: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                warmup_cuts: 5,
                cuts: 50,
                warmup_pings: 100,
                pings: 500,
            }
        } else {
            Self {
                warmup_cuts: 20,
                cuts: 200,
                warmup_pings: 500,
                pings: 5_000,
            }
        }
    }
}

/// Latencies of one run, sorted.
struct Sample(Vec<Duration>);

impl Sample {
    fn new(mut values: Vec<Duration>) -> Self {
        values.sort_unstable();
        Self(values)
    }

    /// The value at `per_mille` thousandths (nearest rank), in microseconds.
    fn quantile_us(&self, per_mille: usize) -> f64 {
        let n = self.0.len();
        let rank = (per_mille * n).div_ceil(1000).clamp(1, n.max(1));
        self.0
            .get(rank - 1)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    }
}

/// The rows of the resume group: median and p99 resume latency over TCP and over QUIC
/// loopback, each beside the raw ping-pong round trip of the same transport.
pub(crate) async fn rows(quick: bool) -> Vec<Row> {
    let plan = Plan::new(quick);
    let mut rows = Vec::new();
    for (kind, name) in [(LoopbackKind::Tcp, "TCP"), (LoopbackKind::Quic, "QUIC")] {
        let rtt = raw_rtt(kind, plan).await.quantile_us(500);
        let resumes = resume_latencies(kind, plan).await;
        let baseline = Figure {
            name: format!("raw {name} frame ping-pong, median round trip"),
            value: rtt,
        };
        eprintln!("  {:<44} {rtt:>14.1}", baseline.name);
        for (label, per_mille) in [("median", 500), ("p99", 990)] {
            let subject = Figure {
                name: format!("liaison resume, {name}, {label}"),
                value: resumes.quantile_us(per_mille),
            };
            eprintln!(
                "  {:<44} {:>14.1}   ({:.1} round trips)",
                subject.name,
                subject.value,
                subject.value / rtt
            );
            rows.push(Row {
                bench: format!(
                    "resume latency, {name} loopback, {label} of {} cuts (ratio: round trips)",
                    plan.cuts
                ),
                unit: "µs",
                subject,
                baselines: vec![baseline.clone()],
            });
        }
    }
    rows
}

/// Round trips of a 16-byte frame over a bare transport of `kind` (no session).
async fn raw_rtt(kind: LoopbackKind, plan: Plan) -> Sample {
    let endpoint = Loopback::new(kind).expect("loopback endpoint");
    let mut listener = liaison_transport::bind(&endpoint.address, &endpoint.config)
        .await
        .expect("bind");
    let address = listener.local_addr();
    let echo = tokio::spawn(async move {
        let Ok(transport) = listener.accept().await else {
            return;
        };
        let (mut tx, mut rx) = transport.split();
        while let Ok(Some(frame)) = rx.recv().await {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    let transport = liaison_transport::connect(&address, &endpoint.config)
        .await
        .expect("connect");
    let (mut tx, mut rx) = transport.split();
    let ping = Bytes::from(vec![7u8; PING]);
    let mut rtts = Vec::with_capacity(plan.pings);
    for i in 0..plan.warmup_pings + plan.pings {
        let start = Instant::now();
        tx.send(ping.clone()).await.expect("ping sent");
        let pong = tokio::time::timeout(STEP, rx.recv())
            .await
            .expect("pong in time")
            .expect("pong")
            .expect("the echo is open");
        assert_eq!(pong.len(), PING);
        if i >= plan.warmup_pings {
            rtts.push(start.elapsed());
        }
    }
    let _ = tx.close().await;
    echo.abort();
    Sample::new(rtts)
}

/// Where the client's connections go, and what the benchmark reads from them: when the
/// last one was handed to the session, and the handle that cuts it.
#[derive(Clone)]
struct Dialer {
    address: Address,
    config: TransportConfig,
    connected: Arc<Mutex<Option<Instant>>>,
    cut: Arc<Mutex<Option<FaultHandle>>>,
}

impl Dialer {
    async fn dial(&self) -> Result<Box<dyn Transport>, liaison_transport::TransportError> {
        let inner = liaison_transport::connect(&self.address, &self.config).await?;
        let faulty = FaultyTransport::new(inner, FaultConfig::default());
        *lock(&self.cut) = Some(faulty.handle());
        // The moment the reconnect source returns the new transport.
        *lock(&self.connected) = Some(Instant::now());
        Ok(Box::new(faulty))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Cuts a resumable session's connection `plan.cuts` times (after untimed warm-up cuts),
/// sends one message into each cut, and times each from the new connection to that
/// message's arrival at the server's application.
async fn resume_latencies(kind: LoopbackKind, plan: Plan) -> Sample {
    let endpoint = Loopback::new(kind).expect("loopback endpoint");
    let auth = || PskAuth::new("bench", KEY).expect("a valid key");
    let resume = ServerResume::new(Arc::new(MemoryStore::new()), Duration::from_secs(60));
    let mut server = Server::bind(
        &endpoint.address,
        &endpoint.config,
        ServerConfig::new(auth()).with_resume(resume),
    )
    .await
    .expect("bind");
    let dialer = Dialer {
        address: server.local_addr().clone(),
        config: endpoint.config.clone(),
        connected: Arc::default(),
        cut: Arc::default(),
    };
    let reconnect = {
        let dialer = dialer.clone();
        reconnect_fn(move || {
            let dialer = dialer.clone();
            async move { dialer.dial().await }
        })
    };
    let client_config = ClientConfig::new(auth()).with_resume(
        ResumeConfig::default()
            .with_backoff(
                BackoffConfig::default()
                    .with_delays(Duration::from_micros(100), Duration::from_millis(5))
                    .with_max_elapsed(Some(STEP)),
            )
            .with_reconnect(reconnect),
    );
    let first = dialer.dial().await.expect("connect");
    let (client, accepted) = tokio::join!(Session::connect(first, client_config), server.accept());
    let client = client.expect("client established");
    let accepted = accepted.expect("server established");

    // The server's application: reports when each message arrives.
    let (arrivals, mut arrived) = mpsc::unbounded_channel::<(Bytes, Instant)>();
    let mut incoming = accepted.take_incoming().expect("incoming");
    let reader = tokio::spawn(async move {
        while let Some(frame) = incoming.recv().await {
            if arrivals.send((frame.payload, Instant::now())).is_err() {
                return;
            }
        }
    });

    let mut links = client.link_changes();
    let mut latencies = Vec::with_capacity(plan.cuts);
    for i in 0..plan.warmup_cuts + plan.cuts {
        let resumes = links.borrow_and_update().resumes;
        *lock(&dialer.connected) = None;
        let handle = lock(&dialer.cut).take().expect("a connection to cut");
        handle.cut();
        let payload = Bytes::copy_from_slice(&(i as u64).to_le_bytes());
        client
            .send(Frame::data(1, payload.clone()))
            .await
            .expect("sent into the cut");
        let (got, at) = tokio::time::timeout(STEP, arrived.recv())
            .await
            .expect("delivered in time")
            .expect("the server's application is running");
        assert_eq!(got, payload, "delivered once, in order");
        let connected = lock(&dialer.connected)
            .take()
            .expect("delivered over a new connection");
        tokio::time::timeout(STEP, links.wait_for(|s| s.resumes > resumes))
            .await
            .expect("resumed in time")
            .expect("the client session is running");
        if i >= plan.warmup_cuts {
            latencies.push(at.saturating_duration_since(connected));
        }
    }
    assert_eq!(
        accepted.resumes() as usize,
        plan.warmup_cuts + plan.cuts,
        "every cut resumed the same session"
    );
    client.close("done").await;
    reader.abort();
    Sample::new(latencies)
}
