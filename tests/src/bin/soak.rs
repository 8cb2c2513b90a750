//! The soak run behind `cargo xtask soak --minutes N`: random workloads (concurrent
//! streaming exchanges of random counts and sizes) with random faults (loss, duplication,
//! reordering) over every transport, each session ended at random by a close, an abort or
//! a scope cancellation, for N minutes. Some sessions are resumable: they run against a
//! server with a resume store, their connections are cut after a random number of frames,
//! and they resume through their reconnect source. Prints messages sent, delivered, lost,
//! duplicated, resumes, aborts and peak memory per transport; exits non-zero if any message
//! was lost or duplicated, or a session failed.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use liaison_exchange::{Endpoint, ExchangeError, Remote};
use liaison_resume::{BackoffConfig, MemoryStore};
use liaison_session::{
    reconnect_fn, ClientConfig, ResumeConfig, RootCapability, Scope, SequencingMode, Server,
    ServerConfig, ServerResume, Session, SessionConfig, SessionError,
};
use liaison_tests::hostile::psk;
use liaison_tests::memory::peak_rss_kib;
use liaison_tests::{connected_pair, Echo, FaultyListener};
use liaison_transport::fault::{FaultConfig, FaultyTransport};
use liaison_transport::{Loopback, LoopbackKind, Transport};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TRANSPORTS: [LoopbackKind; 5] = [
    LoopbackKind::Memory,
    LoopbackKind::Tcp,
    LoopbackKind::Unix,
    LoopbackKind::Quic,
    LoopbackKind::QuicDatagram,
];

/// Sessions run at once.
const WORKERS: u64 = 4;

/// Connections a resumable client tries before its session is established.
const CONNECT_ATTEMPTS: u32 = 3;

/// Bound on one session, from connect to its end.
const SESSION_BOUND: Duration = Duration::from_secs(120);

/// Counters of one transport.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sessions: u64,
    lossy: u64,
    sent: u64,
    delivered: u64,
    lost: u64,
    duplicated: u64,
    /// Resumable sessions (their connections are cut at random).
    resumable: u64,
    /// Resumes after a transport cut, as the clients count them (`Session::resumes`).
    resumes: u64,
    aborts: u64,
    failures: u64,
}

impl Tally {
    fn add(&mut self, other: &Self) {
        self.sessions += other.sessions;
        self.lossy += other.lossy;
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.resumable += other.resumable;
        self.resumes += other.resumes;
        self.aborts += other.aborts;
        self.failures += other.failures;
    }
}

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.keepalive_interval = Duration::from_secs(1);
    config.idle_timeout = Duration::from_secs(20);
    config.handshake_timeout = Duration::from_secs(20);
    config.linger = Duration::from_millis(500);
    config.retransmit.initial_rto = Duration::from_millis(30);
    config.retransmit.max_rto = Duration::from_millis(640);
    config
}

/// Message `index` of exchange `exchange` in session `round`, padded to `size` bytes.
fn message(round: u64, exchange: u64, index: u64, size: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(size.max(24));
    out.put_u64_le(round);
    out.put_u64_le(exchange);
    out.put_u64_le(index);
    out.resize(size.max(24), u8::try_from(index % 251).unwrap_or(0));
    out.freeze()
}

/// Compares what came back with what was sent: (delivered, lost, duplicated). A message
/// back out of order counts as lost and duplicated.
fn compare(sent: &[Bytes], received: &[Bytes]) -> (u64, u64, u64) {
    let in_order = sent
        .iter()
        .zip(received)
        .take_while(|(s, r)| s == r)
        .count();
    let delivered = in_order as u64;
    let lost = (sent.len() - in_order) as u64;
    let duplicated = (received.len() - in_order) as u64;
    (delivered, lost, duplicated)
}

async fn stream(
    root: Remote,
    round: u64,
    exchange: u64,
    messages: u64,
    size: usize,
) -> Result<(Vec<Bytes>, Vec<Bytes>), ExchangeError> {
    let sent: Vec<Bytes> = (0..messages)
        .map(|i| message(round, exchange, i, size))
        .collect();
    let (mut tx, mut rx) = root.begin().await?.split();
    let writer = async {
        for m in &sent {
            tx.send(m.clone()).await?;
        }
        tx.end().await
    };
    let reader = async {
        let mut received = Vec::new();
        while let Some(m) = rx.recv().await? {
            received.push(m);
        }
        Ok::<_, ExchangeError>(received)
    };
    let (written, received) = tokio::join!(writer, reader);
    written?;
    Ok((sent, received?))
}

/// Fault injection of a lossy link, its rates drawn from `rng` (seeds set per connection).
fn lossy_faults(rng: &mut StdRng) -> FaultConfig {
    FaultConfig::default()
        .with_drop(rng.gen_range(0.0..0.1))
        .with_duplicate(rng.gen_range(0.0..0.05))
        .with_reorder(rng.gen_range(0.0..0.1))
}

/// A connected (client, server) session pair over `kind`, not resumable.
async fn plain_pair(
    rng: &mut StdRng,
    kind: LoopbackKind,
    lossy: bool,
    scope: &Scope,
) -> Result<(Session, Session, Option<Server>), String> {
    let (a, b) = connected_pair(kind).await;
    let (a, b): (Box<dyn Transport>, Box<dyn Transport>) = if lossy {
        let faults = lossy_faults(rng);
        (
            FaultyTransport::wrap(a, faults.with_seed(rng.gen())),
            FaultyTransport::wrap(b, faults.with_seed(rng.gen())),
        )
    } else {
        (a, b)
    };
    let mode = if lossy || kind == LoopbackKind::QuicDatagram {
        SequencingMode::Ordered
    } else {
        SequencingMode::None
    };
    let (client, server) = tokio::join!(
        Session::connect(
            a,
            ClientConfig::new(psk("soak-client"))
                .with_session(session_config())
                .with_sequencing(mode)
                .in_scope(scope),
        ),
        Session::accept(
            b,
            ServerConfig::new(psk("soak-server"))
                .with_session(session_config())
                .with_root(RootCapability::new(1, &b"echo"[..])),
        )
    );
    Ok((
        client.map_err(|e| format!("connect: {e}"))?,
        server.map_err(|e| format!("accept: {e}"))?,
        None,
    ))
}

/// A resumable (client, server) session pair over `kind`: the server runs with a resume
/// store; the client's first connection is cut after a random number of frames, and each
/// later one with some probability; lossy links are lossy on every connection.
async fn resumable_pair(
    rng: &mut StdRng,
    kind: LoopbackKind,
    lossy: bool,
    scope: &Scope,
) -> Result<(Session, Session, Option<Server>), String> {
    let mut config = session_config();
    // A resume attempt whose answer was lost gives up after this and reconnects.
    config.handshake_timeout = Duration::from_secs(2);
    let faults = if lossy {
        lossy_faults(rng)
    } else {
        FaultConfig::default()
    };
    let endpoint = Loopback::new(kind).map_err(|e| format!("loopback: {e}"))?;
    let listener = liaison_transport::bind(&endpoint.address, &endpoint.config)
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let address = listener.local_addr();
    let listener = FaultyListener::new(listener, faults.with_seed(rng.gen()));
    let mut server = Server::serve(
        Box::new(listener),
        ServerConfig::new(psk("soak-server"))
            .with_session(config.clone())
            .with_root(RootCapability::new(1, &b"echo"[..]))
            .with_resume(ServerResume::new(
                Arc::new(MemoryStore::new()),
                Duration::from_secs(10),
            )),
    );
    let base: u64 = rng.gen();
    let first_cut = rng.gen_range(8..400u64);
    let dialled = Arc::new(AtomicU64::new(0));
    let transport = endpoint.config;
    let dial = move || {
        let (address, transport, faults) = (address.clone(), transport.clone(), faults);
        let n = dialled.fetch_add(1, Ordering::SeqCst);
        async move {
            let inner = liaison_transport::connect(&address, &transport).await?;
            let mut rng = StdRng::seed_from_u64(base ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut faults = faults.with_seed(rng.gen());
            if n == 0 {
                faults = faults.with_cut_after(first_cut);
            } else if rng.gen_bool(0.3) {
                faults = faults.with_cut_after(rng.gen_range(8..400));
            }
            Ok::<Box<dyn Transport>, _>(FaultyTransport::wrap(inner, faults))
        }
    };
    let resume = ResumeConfig::default()
        .with_backoff(
            BackoffConfig::default()
                .with_delays(Duration::from_millis(1), Duration::from_millis(100))
                .with_max_elapsed(Some(Duration::from_secs(60))),
        )
        .with_reconnect(reconnect_fn(dial.clone()));
    let client_config = ClientConfig::new(psk("soak-client"))
        .with_session(config)
        .with_resume(resume)
        .in_scope(scope);
    // A cut may come before the session is established (a lossy handshake repeats its
    // flights): no session exists yet to resume, and the client connects again, as an
    // application would.
    let mut attempts = 0;
    let client = loop {
        attempts += 1;
        let transport = dial().await.map_err(|e| format!("connect: {e}"))?;
        match Session::connect(transport, client_config.clone()).await {
            Ok(client) => break client,
            Err(SessionError::Transport(_)) if attempts < CONNECT_ATTEMPTS => {}
            Err(e) => return Err(format!("connect: {e}")),
        }
    };
    // The server may have established a session whose answer the client never got.
    let accepted = loop {
        let session = server.accept().await.map_err(|e| format!("accept: {e}"))?;
        if session.id() == client.id() {
            break session;
        }
    };
    Ok((client, accepted, Some(server)))
}

/// One session with a random workload, faults and ending.
async fn session(rng: &mut StdRng, round: u64, kind: LoopbackKind) -> Result<Tally, String> {
    let mut tally = Tally {
        sessions: 1,
        ..Tally::default()
    };
    let lossy = rng.gen_bool(0.5);
    tally.lossy = u64::from(lossy);
    let resumable = rng.gen_bool(0.4);
    let scope = Scope::new();
    let (client, server, _listening) = if resumable {
        tally.resumable = 1;
        resumable_pair(rng, kind, lossy, &scope).await?
    } else {
        plain_pair(rng, kind, lossy, &scope).await?
    };
    let client_session = client.clone();
    let server_session = server.clone();
    let server = Endpoint::builder(server)
        .root(Echo)
        .start()
        .map_err(|e| format!("server endpoint: {e}"))?;
    let client =
        Endpoint::new(client, Default::default()).map_err(|e| format!("client endpoint: {e}"))?;
    let root = client.root().map_err(|e| format!("root: {e}"))?;

    let exchanges = rng.gen_range(1..=16u64);
    let messages = rng.gen_range(1..=48u64);
    let largest = if kind == LoopbackKind::QuicDatagram {
        1000
    } else {
        4096
    };
    let size = rng.gen_range(24..=largest);
    let mut tasks = tokio::task::JoinSet::new();
    for x in 0..exchanges {
        tasks.spawn(stream(root.clone(), round, x, messages, size));
    }
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.map_err(|e| format!("task: {e}"))?;
        let (sent, received) = match outcome {
            Ok(done) => done,
            Err(e) => {
                // What the server saw says which side gave up first.
                let seen = tokio::time::timeout(Duration::from_secs(15), server.closed()).await;
                return Err(format!(
                    "exchange: {e} (resumable: {resumable}, lossy: {lossy}, client resumes: {}, \
                     server: {seen:?}, server resumes: {})",
                    client_session.resumes(),
                    server_session.resumes()
                ));
            }
        };
        let (delivered, lost, duplicated) = compare(&sent, &received);
        tally.sent += sent.len() as u64;
        tally.delivered += delivered;
        tally.lost += lost;
        tally.duplicated += duplicated;
    }

    match rng.gen_range(0..3) {
        0 => {
            client.close("soak done").await;
        }
        1 => {
            client.abort();
            client.closed().await;
            tally.aborts += 1;
        }
        _ => {
            scope.cancel();
            client.closed().await;
        }
    }
    server.closed().await;
    tally.resumes = u64::from(client_session.resumes());
    Ok(tally)
}

/// What one worker ran: its counters per transport, and a line for each failed session.
type WorkerReport = (BTreeMap<String, Tally>, Vec<String>);

async fn worker(seed: u64, worker: u64, deadline: Instant) -> WorkerReport {
    let mut rng = StdRng::seed_from_u64(seed ^ worker.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut round = worker;
    while Instant::now() < deadline {
        let kind = TRANSPORTS[rng.gen_range(0..TRANSPORTS.len())];
        let outcome = tokio::time::timeout(SESSION_BOUND, session(&mut rng, round, kind)).await;
        let tally = tallies.entry(kind.to_string()).or_default();
        let failure = match outcome {
            Ok(Ok(done)) => {
                tally.add(&done);
                None
            }
            Ok(Err(error)) => Some(format!("session {round} over {kind} failed: {error}")),
            Err(_) => Some(format!(
                "session {round} over {kind} did not end within {SESSION_BOUND:?}"
            )),
        };
        if let Some(line) = failure {
            // As it happens, and again after the table.
            eprintln!("soak: {line}");
            tally.sessions += 1;
            tally.failures += 1;
            failed.push(line);
        }
        round += WORKERS;
    }
    (tallies, failed)
}

fn parse_minutes() -> Result<(f64, u64), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut minutes = 2.0;
    let mut seed = rand::random();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--minutes" => {
                minutes = value
                    .parse::<f64>()
                    .ok()
                    .filter(|m| m.is_finite() && *m > 0.0)
                    .ok_or_else(|| format!("--minutes takes a positive number, not `{value}`"))?;
            }
            "--seed" => {
                seed = value
                    .parse()
                    .map_err(|_| format!("--seed takes a whole number, not `{value}`"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (--minutes N, --seed S)"
                ))
            }
        }
    }
    Ok((minutes, seed))
}

fn main() -> ExitCode {
    let (minutes, seed) = match parse_minutes() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("soak: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(minutes * 60.0);
    println!("soak: {minutes} min, {WORKERS} sessions at a time, seed {seed}");
    let (tallies, failed) = runtime.block_on(async {
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..WORKERS {
            workers.spawn(worker(seed, w, deadline));
        }
        let mut all: BTreeMap<String, Tally> = BTreeMap::new();
        let mut failed = Vec::new();
        while let Some(joined) = workers.join_next().await {
            let (tallies, lines) = joined.expect("a soak worker");
            for (kind, tally) in tallies {
                all.entry(kind).or_default().add(&tally);
            }
            failed.extend(lines);
        }
        (all, failed)
    });
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "{:<16} {:>8} {:>6} {:>9} {:>10} {:>10} {:>6} {:>10} {:>7} {:>6} {:>8}",
        "transport",
        "sessions",
        "lossy",
        "resumable",
        "sent",
        "delivered",
        "lost",
        "duplicated",
        "resumes",
        "aborts",
        "failures"
    );
    let mut total = Tally::default();
    for (kind, tally) in &tallies {
        total.add(tally);
        print_row(kind, tally);
    }
    print_row("total", &total);
    let peak = peak_rss_kib().map_or_else(
        || "unknown".into(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    );
    println!("elapsed {elapsed:.1} s, peak memory (VmHWM) {peak}");
    for line in &failed {
        println!("failed: {line}");
    }

    if total.lost == 0 && total.duplicated == 0 && total.failures == 0 && total.sessions > 0 {
        println!("soak: ok");
        ExitCode::SUCCESS
    } else {
        println!("soak: FAILED");
        ExitCode::FAILURE
    }
}

fn print_row(name: &str, t: &Tally) {
    println!(
        "{:<16} {:>8} {:>6} {:>9} {:>10} {:>10} {:>6} {:>10} {:>7} {:>6} {:>8}",
        name,
        t.sessions,
        t.lossy,
        t.resumable,
        t.sent,
        t.delivered,
        t.lost,
        t.duplicated,
        t.resumes,
        t.aborts,
        t.failures
    );
}
