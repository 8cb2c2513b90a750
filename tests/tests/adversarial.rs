//! Hostile peers against a real server over TCP: half-open handshakes, oversized length
//! claims, exchange floods, huge `NeedSeq` range sets, credit overflow, replayed
//! authentication proofs, frames of the wrong kind, and forged and replayed resume proofs.
//! Each attack gets a typed error and a clean termination on both sides, within a time and
//! a memory bound, and the server keeps serving a well-behaved client afterwards.
//!
//! Every test runs alone (a lock serialises them) under a counting global allocator whose
//! limit is set to what the test may allocate on top of what was live when it started: an
//! allocation of an attacker-chosen size fails the run at once.

use std::alloc::System;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use cap::Cap;
use liaison_exchange::{Endpoint, Remote};
use liaison_resume::{BackoffConfig, MemoryStore, ResumeSecret};
use liaison_session::proto::ResumeTicket;
use liaison_session::{
    reconnect_fn, ClientConfig, LinkState, Origin, ReasonCode, ResumeConfig, SequencingMode,
    ServerConfig, ServerResume, Session, SessionConfig, SessionError, TerminationReason,
};
use liaison_tests::hostile::{
    self, client_config, farewell, psk, Farewell, Outcome, RawPeer, TestServer, ROOT,
};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultyTransport};
use liaison_transport::{Address, LoopbackKind, Transport};
use liaison_wire::{Codec, Frame, FrameKind, Limits, VersionOffer, HEADER_LEN, SUPPORTED_VERSIONS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

static SERIAL: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

/// Runs `test` alone on a fresh two-worker runtime, failing it past `time`, with at most
/// `memory` bytes allocated beyond what was live when it started.
fn bounded(memory: usize, time: Duration, test: impl Future<Output = ()>) {
    // A failing test reports (and symbolises its backtrace) without the limit.
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = ALLOCATOR.set_limit(usize::MAX);
            report(info);
        }));
    });
    let _alone = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    ALLOCATOR
        .set_limit(ALLOCATOR.allocated() + memory)
        .expect("the limit is above what is allocated");
    let outcome = runtime.block_on(async { tokio::time::timeout(time, test).await });
    drop(runtime);
    ALLOCATOR
        .set_limit(usize::MAX)
        .expect("lifting the limit always works");
    outcome.unwrap_or_else(|_| panic!("the test did not finish within {time:?}"));
}

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.handshake_timeout = Duration::from_secs(5);
    config.linger = Duration::from_millis(200);
    config
}

fn server_config(session: SessionConfig) -> ServerConfig {
    ServerConfig::new(psk("server")).with_session(session)
}

async fn tcp_server(session: SessionConfig) -> TestServer {
    TestServer::start(LoopbackKind::Tcp, server_config(session)).await
}

/// A raw peer with an established session in `mode` on `server`.
async fn established(server: &TestServer, mode: SequencingMode) -> RawPeer {
    let mut peer = RawPeer::connect(&server.address, &server.transport)
        .await
        .expect("connect");
    let config: ClientConfig = client_config(session_config()).with_sequencing(mode);
    peer.establish(&config).await.expect("a genuine handshake");
    peer
}

/// The `ExchangeBegin` payload of PROTOCOL.md §9.1 with no first message.
fn begin_payload(target: u64, credit: u32) -> Bytes {
    let mut payload = BytesMut::with_capacity(13);
    payload.put_u64_le(target);
    payload.put_u32_le(credit);
    payload.put_u8(0);
    payload.freeze()
}

fn socket_addr(address: &Address) -> SocketAddr {
    let text = address.to_string();
    text.strip_prefix("tcp://")
        .and_then(|rest| rest.parse().ok())
        .unwrap_or_else(|| panic!("{text} is a TCP address"))
}

/// A frame as TCP carries it: a 4-byte big-endian length, then the frame.
fn tcp_message(frame: &[u8]) -> Vec<u8> {
    let len = u32::try_from(frame.len()).expect("a small frame");
    [&len.to_be_bytes()[..], frame].concat()
}

/// Asserts that the server ended the raw peer's session for a violation of the session
/// layer: `Bye` with `ProtocolViolation` naming it on the wire, the same reason locally.
fn assert_session_violation(farewell: &Farewell, outcome: &Outcome, needle: &str) {
    match farewell {
        Farewell::Bye(bye) => {
            assert_eq!(
                ReasonCode::from(bye.code),
                ReasonCode::ProtocolViolation,
                "{bye:?}"
            );
            assert!(
                bye.message.contains(needle),
                "the Bye names the violation ({needle}): {bye:?}"
            );
        }
        other => panic!("expected a Bye for `{needle}`, got {other:?}"),
    }
    match outcome {
        Outcome::Ended(TerminationReason::ProtocolViolation {
            origin: Origin::Local,
            detail,
        }) => assert!(detail.contains(needle), "{detail}"),
        other => panic!("expected a local protocol violation `{needle}`, got {other:?}"),
    }
}

/// Asserts that the server ended the raw peer's session for a violation of the exchange
/// layer (PROTOCOL.md §9.6): a `Bye` with `ProtocolViolation` naming the violation
/// (§5.3), the same reason locally.
fn assert_exchange_violation(farewell: &Farewell, outcome: &Outcome, needle: &str) {
    let Farewell::Bye(bye) = farewell else {
        panic!("expected a Bye for `{needle}`, got {farewell:?}");
    };
    assert_eq!(
        ReasonCode::from(bye.code),
        ReasonCode::ProtocolViolation,
        "{bye:?}"
    );
    assert!(
        bye.message.contains(needle),
        "the Bye names the violation ({needle}): {bye:?}"
    );
    let detail = match outcome {
        Outcome::Ended(TerminationReason::ProtocolViolation {
            origin: Origin::Local,
            detail,
        }) => detail,
        other => panic!("expected the server to end the session (`{needle}`), got {other:?}"),
    };
    assert!(detail.contains(needle), "{detail}");
}

async fn still_serving(server: &TestServer) {
    server
        .echo_once(session_config())
        .await
        .expect("the server keeps serving a well-behaved client");
}

// -----------------------------------------------------------------------------------------
// Handshake budget (docs/SESSION.md §5, DESIGN.md "Security model")
// -----------------------------------------------------------------------------------------

/// 1,000 connections that never finish the handshake (silent, a half-written frame, or a
/// `Hello` and then nothing) hold no more than the handshake budget: a real client connects
/// meanwhile, and every one of them is dropped at the deadline.
#[test]
fn half_open_handshakes_do_not_block_a_real_client_and_end_at_the_deadline() {
    const ATTACKERS: usize = 1000;
    const DEADLINE: Duration = Duration::from_secs(3);
    bounded(256 * MIB, Duration::from_secs(30), async {
        let mut session = session_config();
        session.handshake_timeout = DEADLINE;
        let mut config = server_config(session);
        config.max_pending_handshakes = ATTACKERS + 64;
        let mut server = TestServer::start(LoopbackKind::Tcp, config).await;
        let addr = socket_addr(&server.address);

        let hello = Frame::hello(&VersionOffer::new(SUPPORTED_VERSIONS).expect("offer")).to_bytes();
        let started = Instant::now();
        let mut attackers = Vec::with_capacity(ATTACKERS);
        for i in 0..ATTACKERS {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            match i % 3 {
                0 => {}
                1 => {
                    let message = tcp_message(&hello);
                    stream.write_all(&message[..10]).await.expect("write");
                }
                _ => stream.write_all(&tcp_message(&hello)).await.expect("write"),
            }
            attackers.push(stream);
        }

        // A real client gets in while every attacker still holds its connection.
        still_serving(&server).await;
        let mut open = 0;
        for stream in &attackers {
            let mut probe = [0u8; 64];
            match stream.try_read(&mut probe) {
                Ok(0) => {}
                Ok(_) => open += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                Err(_) => {}
            }
        }
        assert_eq!(
            open, ATTACKERS,
            "the client connected while every attacker still held its connection"
        );

        // Every attacker's connection ends at the deadline; a `Hello` got a `Welcome`, and
        // the end may carry a `Reject` (HandshakeTimeout), never more.
        let mut ends = tokio::task::JoinSet::new();
        for mut stream in attackers {
            ends.spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut total = 0usize;
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return (Instant::now(), total),
                        Ok(n) => total += n,
                    }
                }
            });
        }
        let mut latest = started;
        while let Some(joined) = ends.join_next().await {
            let (at, bytes) = joined.expect("reader");
            assert!(bytes < 1024, "a half-open peer got {bytes} bytes");
            latest = latest.max(at);
            let waited = at - started;
            assert!(
                waited >= DEADLINE / 2,
                "an attacker was dropped after {waited:?}, before the deadline"
            );
        }
        let all_dropped = latest - started;
        assert!(
            all_dropped < DEADLINE + Duration::from_secs(5),
            "the last attacker was dropped after {all_dropped:?}"
        );

        // The failures the server reported are typed; the real client's session is the only
        // one established.
        let outcomes = server.drain_outcomes();
        assert!(!outcomes.is_empty());
        for outcome in &outcomes {
            assert!(
                matches!(
                    outcome,
                    Outcome::Refused(
                        SessionError::HandshakeTimeout
                            | SessionError::Protocol { .. }
                            | SessionError::Transport(_)
                    ) | Outcome::Ended(TerminationReason::Closed {
                        origin: Origin::Remote,
                        ..
                    })
                ),
                "{outcome:?}"
            );
        }
        assert!(outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Refused(SessionError::HandshakeTimeout))));
        still_serving(&server).await;
    });
}

// -----------------------------------------------------------------------------------------
// Oversized claims (PROTOCOL.md §5.3: never allocate the claimed size)
// -----------------------------------------------------------------------------------------

/// A header claiming a 4 GiB payload, at both levels: the transport's length prefix and the
/// frame header's payload length, before and after establishment. Each is refused before
/// anything of that size is allocated.
#[test]
fn a_header_claiming_4_gib_is_refused_before_allocating() {
    bounded(64 * MIB, Duration::from_secs(20), async {
        let mut server = tcp_server(session_config()).await;
        let addr = socket_addr(&server.address);

        // The TCP length prefix claims 4 GiB - 2 (`u32::MAX` itself is the transport's
        // end-of-stream marker).
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(&(u32::MAX - 1).to_be_bytes())
            .await
            .expect("write");
        stream.write_all(&[0u8; 64]).await.expect("write");
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf).await;
        // Nothing but, at most, the transport's own end-of-stream marker (a length of
        // `u32::MAX`, liaison-transport's codec) is sent to a peer that is not a client.
        assert!(
            buf.is_empty() || buf == u32::MAX.to_be_bytes(),
            "nothing is sent to a non-client: {buf:?}"
        );
        match server.next_outcome().await {
            Outcome::Refused(SessionError::Transport(e)) => {
                assert!(e.to_string().contains("exceeds the maximum"), "{e}");
            }
            other => panic!("expected a transport refusal, got {other:?}"),
        }

        // A `Hello` header claiming a 4 GiB payload: not a liaison client.
        let mut header = Frame::control(FrameKind::Hello, Bytes::new())
            .to_bytes()
            .to_vec();
        header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut peer = RawPeer::connect(&server.address, &server.transport)
            .await
            .expect("connect");
        peer.send_bytes(Bytes::from(header)).await.expect("send");
        assert!(matches!(
            peer.farewell().await,
            Farewell::Closed | Farewell::Failed(_)
        ));
        match server.next_outcome().await {
            Outcome::Refused(SessionError::Protocol {
                origin: Origin::Local,
                detail,
            }) => assert!(detail.contains("exceeds the limit"), "{detail}"),
            other => panic!("expected a protocol refusal, got {other:?}"),
        }

        // An established session: a `Data` header claiming 4 GiB, then a little payload.
        let mut peer = established(&server, SequencingMode::None).await;
        let mut header = Frame::data(1, Bytes::new()).to_bytes().to_vec();
        header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        header.extend_from_slice(&[7u8; 100]);
        assert_eq!(header.len(), HEADER_LEN + 100);
        peer.send_bytes(Bytes::from(header)).await.expect("send");
        let bye = peer.farewell().await;
        assert_session_violation(&bye, &server.next_outcome().await, "exceeds the limit");

        still_serving(&server).await;
    });
}

// -----------------------------------------------------------------------------------------
// Exchange limits and credit (PROTOCOL.md §9.5, §9.7)
// -----------------------------------------------------------------------------------------

/// A peer opening 10,000 exchanges when 8 may be open: those past the server's limit are
/// refused (`TooManyExchanges`) or, once past the negotiated limit, the session ends with a
/// protocol error; the server never holds more than the limit.
#[test]
fn an_exchange_flood_past_the_limit_is_refused() {
    const LIMIT: u32 = 8;
    const FLOOD: u64 = 10_000;
    bounded(64 * MIB, Duration::from_secs(20), async {
        let mut session = session_config();
        session.limits.max_exchanges = LIMIT;
        let mut server = tcp_server(session).await;
        let peer = established(&server, SequencingMode::None).await;
        let (mut tx, mut rx) = peer.into_split();
        let reader = tokio::spawn(async move {
            let mut others = Vec::new();
            let end = farewell(rx.as_mut(), &mut others).await;
            (end, others)
        });
        for chunk in (0..FLOOD).collect::<Vec<_>>().chunks(500) {
            for &i in chunk {
                let frame = Frame::on_exchange(
                    FrameKind::ExchangeBegin,
                    2 * i + 1,
                    begin_payload(ROOT, 64),
                );
                if tx.feed(frame.to_bytes()).await.is_err() {
                    break;
                }
            }
            if tx.flush().await.is_err() {
                break;
            }
        }
        let (end, others) = reader.await.expect("reader");
        let refused = others
            .iter()
            .filter(|f| {
                f.kind == FrameKind::ExchangeCancel && f.payload.get(..2) == Some(&[2u8, 0][..])
            })
            .count();
        assert_exchange_violation(&end, &server.next_outcome().await, "exchange");
        assert!(
            refused as u64 <= FLOOD - u64::from(LIMIT),
            "{refused} refusals for {FLOOD} exchanges"
        );
        still_serving(&server).await;
    });
}

/// Credit that takes an exchange's total above `u32::MAX` ends the session (PROTOCOL.md
/// §9.5), whether it comes in one grant or in several.
#[test]
fn credits_that_overflow_end_the_session() {
    bounded(64 * MIB, Duration::from_secs(20), async {
        let mut server = tcp_server(session_config()).await;
        for grants in [vec![u32::MAX], vec![1 << 31, 1 << 31]] {
            let mut peer = established(&server, SequencingMode::None).await;
            let mut frames = vec![Frame::on_exchange(
                FrameKind::ExchangeBegin,
                1,
                begin_payload(ROOT, 64),
            )];
            frames.extend(grants.iter().map(|&g| Frame::exchange_credit(1, g)));
            peer.send_all(frames).await.expect("send");
            let bye = peer.farewell().await;
            assert_exchange_violation(&bye, &server.next_outcome().await, "credit");
        }
        still_serving(&server).await;
    });
}

// -----------------------------------------------------------------------------------------
// Sequencing (PROTOCOL.md §8.2)
// -----------------------------------------------------------------------------------------

/// A `NeedSeq` claiming a million ranges (and one that really carries 4,000, over the
/// 1,024 a receiver accepts) is refused before any range is built.
#[test]
fn a_need_seq_with_a_million_ranges_is_refused() {
    bounded(64 * MIB, Duration::from_secs(20), async {
        let mut server = tcp_server(session_config()).await;
        for (count, carried) in [(1_000_000u32, 1usize), (4000, 4000)] {
            let mut peer = established(&server, SequencingMode::Ordered).await;
            let mut payload = BytesMut::with_capacity(4 + 16 * carried);
            payload.put_u32_le(count);
            for i in 0..carried as u64 {
                payload.put_u64_le(3 * i);
                payload.put_u64_le(3 * i);
            }
            peer.send(Frame::control(FrameKind::NeedSeq, payload.freeze()))
                .await
                .expect("send");
            let bye = peer.farewell().await;
            assert_session_violation(&bye, &server.next_outcome().await, "range");
        }
        still_serving(&server).await;
    });
}

// -----------------------------------------------------------------------------------------
// Authentication (docs/SESSION.md §3.2)
// -----------------------------------------------------------------------------------------

/// A recorded `psk-hmac-sha256` handshake replayed on a new connection: the server's fresh
/// nonce makes the old client proof worthless, and the peer is told only "authentication
/// failed".
#[test]
fn a_replayed_authentication_proof_is_refused() {
    bounded(64 * MIB, Duration::from_secs(20), async {
        let mut server = tcp_server(session_config()).await;
        let recorded = {
            let mut peer = established(&server, SequencingMode::None).await;
            peer.send(Frame::bye(
                liaison_wire::DefaultCodec::default()
                    .encode(&liaison_session::messages::Bye::new(
                        ReasonCode::Closed,
                        "bye",
                    ))
                    .expect("encode"),
                false,
            ))
            .await
            .expect("send");
            assert!(matches!(
                server.next_outcome().await,
                Outcome::Ended(TerminationReason::Closed {
                    origin: Origin::Remote,
                    ..
                })
            ));
            peer.sent
        };
        let kinds: Vec<FrameKind> = recorded.iter().map(|f| f.kind).collect();
        assert_eq!(
            &kinds[..3],
            [FrameKind::Hello, FrameKind::AuthProof, FrameKind::AuthProof],
            "a PSK handshake: Hello, ClientStart, ClientProof"
        );

        // Step by step, as a real client would, and all at once.
        for stepwise in [true, false] {
            let mut peer = RawPeer::connect(&server.address, &server.transport)
                .await
                .expect("connect");
            if stepwise {
                for frame in &recorded[..3] {
                    peer.send(frame.clone()).await.expect("send");
                    if frame.kind == FrameKind::Hello || peer.sent.len() == 2 {
                        let answer = peer.recv().await.expect("recv").expect("an answer");
                        assert!(
                            matches!(answer.kind, FrameKind::Welcome | FrameKind::AuthChallenge),
                            "{answer:?}"
                        );
                    }
                }
            } else {
                peer.send_all(recorded[..4].iter().cloned())
                    .await
                    .expect("send");
            }
            match peer.farewell().await {
                Farewell::Reject(reject) => {
                    assert_eq!(
                        ReasonCode::from(reject.code),
                        ReasonCode::AuthenticationFailed
                    );
                    assert_eq!(reject.message, "authentication failed");
                }
                other => panic!("expected a Reject, got {other:?}"),
            }
            match server.next_outcome().await {
                Outcome::Refused(SessionError::AuthenticationFailed {
                    origin: Origin::Local,
                    ..
                }) => {}
                other => panic!("expected a local authentication failure, got {other:?}"),
            }
        }
        still_serving(&server).await;
    });
}

// -----------------------------------------------------------------------------------------
// Frames of the wrong kind (PROTOCOL.md §4, §8, §9.6; docs/SESSION.md §6.1)
// -----------------------------------------------------------------------------------------

/// A valid session sending frames its state does not allow: each ends the session with a
/// typed reason that names what was wrong, on both sides.
#[test]
fn frames_of_the_wrong_kind_for_the_state_end_the_session() {
    bounded(64 * MIB, Duration::from_secs(30), async {
        let mut server = tcp_server(session_config()).await;
        let hello = Frame::hello(&VersionOffer::new(SUPPORTED_VERSIONS).expect("offer"));
        let session_layer: Vec<(&str, SequencingMode, Bytes, &str)> = vec![
            ("a Hello", SequencingMode::None, hello.to_bytes(), "Hello"),
            (
                "an AuthProof",
                SequencingMode::None,
                Frame::control(FrameKind::AuthProof, Bytes::new()).to_bytes(),
                "AuthProof",
            ),
            (
                "a server's Welcome",
                SequencingMode::Ordered,
                Frame::control(FrameKind::Welcome, Bytes::new()).to_bytes(),
                "Welcome",
            ),
            (
                "an unknown kind",
                SequencingMode::None,
                {
                    let mut raw = Frame::control(FrameKind::Ping, Bytes::new())
                        .to_bytes()
                        .to_vec();
                    raw[0] = 0x7f;
                    Bytes::from(raw)
                },
                "kind",
            ),
            (
                "an unnumbered exchange frame in an ordered session",
                SequencingMode::Ordered,
                Frame::on_exchange(FrameKind::ExchangeBegin, 1, begin_payload(ROOT, 4)).to_bytes(),
                "sequence number",
            ),
            (
                "an ack of a frame never sent",
                SequencingMode::Ordered,
                Frame::ack(1000).to_bytes(),
                "ack",
            ),
        ];
        for (what, mode, raw, needle) in session_layer {
            let mut peer = established(&server, mode).await;
            peer.send_bytes(raw).await.expect("send");
            let bye = peer.farewell().await;
            let outcome = server.next_outcome().await;
            eprintln!("{what}: {bye:?}");
            assert_session_violation(&bye, &outcome, needle);
        }

        let exchange_layer: Vec<(&str, Frame, &str)> = vec![
            (
                "Data on an exchange never opened",
                Frame::data(7, &b"x"[..]),
                "never opened",
            ),
            (
                "an ExchangeBegin with the server's parity",
                Frame::on_exchange(FrameKind::ExchangeBegin, 2, begin_payload(ROOT, 4)),
                "parity",
            ),
            (
                "an ExchangeBegin with id 0",
                Frame::on_exchange(FrameKind::ExchangeBegin, 0, begin_payload(ROOT, 4)),
                "0",
            ),
            (
                "an ExchangeBegin with reserved flags in its payload",
                Frame::on_exchange(FrameKind::ExchangeBegin, 1, {
                    let mut p = begin_payload(ROOT, 4).to_vec();
                    p[12] = 0x80;
                    Bytes::from(p)
                }),
                "flag",
            ),
        ];
        for (what, frame, needle) in exchange_layer {
            let mut peer = established(&server, SequencingMode::None).await;
            peer.send(frame).await.expect("send");
            let bye = peer.farewell().await;
            let outcome = server.next_outcome().await;
            eprintln!("{what}: {bye:?}");
            assert_exchange_violation(&bye, &outcome, needle);
        }
        still_serving(&server).await;
    });
}

// -----------------------------------------------------------------------------------------
// Resume proofs (PROTOCOL.md §10.1)
// -----------------------------------------------------------------------------------------

/// A resumable client of a [`TestServer`]: every connection it dials is recorded and can be
/// cut.
struct ResumableClient {
    session: Session,
    root: Remote,
    _endpoint: Endpoint,
    handles: Arc<Mutex<Vec<FaultHandle>>>,
    sent: Arc<Mutex<Vec<Bytes>>>,
}

impl ResumableClient {
    async fn connect(server: &TestServer) -> Self {
        let handles: Arc<Mutex<Vec<FaultHandle>>> = Arc::default();
        let sent: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let dial = {
            let (address, config) = (server.address.clone(), server.transport.clone());
            let (handles, sent) = (Arc::clone(&handles), Arc::clone(&sent));
            move || {
                let (address, config) = (address.clone(), config.clone());
                let (handles, sent) = (Arc::clone(&handles), Arc::clone(&sent));
                async move {
                    let inner = liaison_transport::connect(&address, &config).await?;
                    let faulty = FaultyTransport::new(
                        hostile::recording(inner, sent),
                        FaultConfig::default(),
                    );
                    handles
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(faulty.handle());
                    Ok::<Box<dyn Transport>, _>(Box::new(faulty))
                }
            }
        };
        let first = dial().await.expect("connect");
        let resume = ResumeConfig::default()
            .with_backoff(
                BackoffConfig::default()
                    .with_delays(Duration::from_millis(1), Duration::from_millis(20))
                    .with_max_elapsed(Some(Duration::from_secs(10))),
            )
            .with_reconnect(reconnect_fn(dial));
        let session = Session::connect(first, client_config(session_config()).with_resume(resume))
            .await
            .expect("a resumable session");
        assert!(session.is_resumable());
        let endpoint = Endpoint::new(session.clone(), Default::default()).expect("endpoint");
        let root = endpoint.root().expect("root capability");
        Self {
            session,
            root,
            _endpoint: endpoint,
            handles,
            sent,
        }
    }

    async fn echo(&self, text: &'static str) {
        let reply = self
            .root
            .call(Bytes::from_static(text.as_bytes()))
            .await
            .expect("the session serves calls");
        assert_eq!(reply, Bytes::from_static(text.as_bytes()));
    }

    /// Cuts the current connection, makes a call through the resume and returns the
    /// `Resume` frame the client sent.
    async fn cut_and_resume(&self) -> Frame {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let resumes = self.session.resumes();
        if let Some(handle) = self
            .handles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
        {
            handle.cut();
        }
        self.echo("across the cut").await;
        let mut links = self.session.link_changes();
        let _ = links.wait_for(|link| link.resumes > resumes).await;
        assert_eq!(self.session.resumes(), resumes + 1);
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|bytes| Frame::decode(bytes.clone(), &Limits::default()).ok())
            .find(|frame| frame.kind == FrameKind::Resume)
            .expect("the client sent a Resume")
    }
}

/// The server reports a connection that resumed a live session (not a new session, not an
/// end).
async fn assert_resumed_live(server: &mut TestServer, client: &ResumableClient) {
    match server.next_outcome().await {
        Outcome::Refused(SessionError::ResumedLive(id)) => assert_eq!(id, client.session.id()),
        other => panic!("expected the live session resumed, got {other:?}"),
    }
}

/// A server keeping sessions resumable for 30 s in memory.
async fn resumable_server() -> (TestServer, ServerResume) {
    let resume = ServerResume::new(Arc::new(MemoryStore::new()), Duration::from_secs(30));
    let config = server_config(session_config()).with_resume(resume.clone());
    (TestServer::start(LoopbackKind::Tcp, config).await, resume)
}

/// An attacker who knows a live session's id (it travels in the clear in `Resume`) tries to
/// take it over on a new connection, with its own proof or a captured one: the server
/// refuses with `ResumeDenied`, the live session is untouched (same link, still serving,
/// and it resumes for real afterwards), and the server keeps serving other clients.
async fn resume_attack(replay: bool) {
    let (mut server, resume) = resumable_server().await;
    let client = ResumableClient::connect(&server).await;
    client.echo("before").await;
    let captured = client.cut_and_resume().await;
    assert_eq!(resume.live_sessions(), 1);
    assert_resumed_live(&mut server, &client).await;

    let attacker = client_config(session_config()).with_resume(ResumeConfig::default());
    let ticket = ResumeTicket {
        session_id: client.session.id(),
        // Not the session's secret: the attacker never saw it.
        secret: ResumeSecret::from_bytes([0xa5; 32]),
        next_expected: 0,
    };
    let proof = replay.then(|| captured.payload.clone());
    for attempt in 0..3 {
        let mut peer = RawPeer::connect(&server.address, &server.transport)
            .await
            .expect("connect");
        let started = Instant::now();
        let outcome = peer.resume(&attacker, ticket.clone(), proof.clone()).await;
        assert!(
            matches!(
                &outcome,
                Err(TerminationReason::ResumeRefused {
                    code: ReasonCode::ResumeDenied,
                    ..
                })
            ),
            "attempt {attempt}: {outcome:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refused at once, not at a deadline"
        );
        match server.next_outcome().await {
            Outcome::Refused(SessionError::Terminated(TerminationReason::ResumeRefused {
                code: ReasonCode::ResumeDenied,
                ..
            })) => {}
            other => panic!("expected a resume refused as denied, got {other:?}"),
        }
    }

    // The live session is untouched: still attached, still serving, nothing ended.
    assert_eq!(client.session.link(), LinkState::Attached);
    assert_eq!(client.session.resumes(), 1);
    assert_eq!(resume.live_sessions(), 1);
    client.echo("after the attack").await;
    // And it still resumes for real.
    client.cut_and_resume().await;
    assert_eq!(client.session.resumes(), 2);
    assert_resumed_live(&mut server, &client).await;
    client.echo("after the second resume").await;
    let ended = server.drain_outcomes();
    assert!(ended.is_empty(), "no session ended: {ended:?}");
    still_serving(&server).await;
    assert!(client.session.close("done").await.is_graceful());
}

/// PROTOCOL.md §10.1: the right session id with a proof made without its secret.
#[test]
fn a_forged_resume_proof_is_refused() {
    bounded(64 * MIB, Duration::from_secs(20), resume_attack(false));
}

/// PROTOCOL.md §10.1: a proof captured from a real resume, replayed on a new connection
/// (where the server chose a fresh nonce).
#[test]
fn a_replayed_resume_proof_is_refused() {
    bounded(64 * MIB, Duration::from_secs(20), resume_attack(true));
}
