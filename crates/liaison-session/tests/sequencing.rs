//! Sequenced sessions over transports that lose, duplicate and reorder frames: the
//! fault-injection wrapper around memory, TCP and QUIC datagrams. Ordered mode delivers
//! every frame exactly once and in order, unordered mode exactly once; a sender that no
//! longer holds requested frames bows out with a typed reason on both sides; a refused mode
//! is `ModeRejected` on both sides.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use liaison_session::{
    ClientConfig, ClientModePolicy, HandshakeFailure, Origin, Overflow, PskAuth, SequencingMode,
    Server, ServerConfig, Session, SessionConfig, SessionError, TerminationReason,
};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultyTransport};
use liaison_transport::{
    Address, FrameReceiver, FrameSender, Listener, QuicClientTls, QuicConfig, QuicServerTls,
    Transport, TransportConfig, TransportError, TransportInfo,
};
use liaison_wire::{Frame, FrameKind, RangeSet};

/// Bounds a test on real time: nothing may hang.
async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("the test hung")
}

fn psk(name: &str) -> PskAuth {
    PskAuth::new("tenant", [0x5a; 32])
        .expect("key")
        .with_name(name)
}

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.keepalive_interval = Duration::from_secs(1);
    config.idle_timeout = Duration::from_secs(30);
    config.handshake_timeout = Duration::from_secs(20);
    config.retransmit.initial_rto = Duration::from_millis(40);
    config.retransmit.max_rto = Duration::from_millis(640);
    config
}

fn client_config(mode: SequencingMode) -> ClientConfig {
    ClientConfig::new(psk("worker"))
        .with_session(session_config())
        .with_sequencing(mode)
}

fn server_config() -> ServerConfig {
    ServerConfig::new(psk("hub")).with_session(session_config())
}

/// 5 % loss, some duplication and reordering, per direction.
fn faults(seed: u64) -> FaultConfig {
    FaultConfig::default()
        .with_seed(seed)
        .with_drop(0.05)
        .with_duplicate(0.02)
        .with_reorder(0.05)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    Tcp,
    QuicDatagram,
}

/// A connected pair of transports of `kind`, each end wrapped in the fault injector.
async fn lossy_pair(kind: Kind, seed: u64) -> (Box<dyn Transport>, Box<dyn Transport>) {
    let (client, server, _) = lossy_pair_with_handles(kind, seed).await;
    (client, server)
}

/// As [`lossy_pair`], with the injectors' handles (client's, server's).
async fn lossy_pair_with_handles(
    kind: Kind,
    seed: u64,
) -> (Box<dyn Transport>, Box<dyn Transport>, [FaultHandle; 2]) {
    let (client, server) = raw_pair(kind).await;
    let client = FaultyTransport::new(client, faults(seed));
    let server = FaultyTransport::new(server, faults(seed ^ 0xff));
    assert!(!client.info().properties.reliable);
    let handles = [client.handle(), server.handle()];
    (Box::new(client), Box::new(server), handles)
}

async fn raw_pair(kind: Kind) -> (Box<dyn Transport>, Box<dyn Transport>) {
    let (addr, server_config, client_config): (Address, _, _) = match kind {
        Kind::Memory => {
            let (a, b) = liaison_transport::memory::pair(256, 16 << 20);
            return (Box::new(a), Box::new(b));
        }
        Kind::Tcp => (
            "tcp://127.0.0.1:0".parse().expect("address"),
            TransportConfig::default(),
            TransportConfig::default(),
        ),
        Kind::QuicDatagram => {
            let server_tls = QuicServerTls::self_signed(&["localhost"]).expect("certificate");
            let client_tls = QuicClientTls::trust_certificates(vec![server_tls.cert_der().clone()])
                .with_server_name("localhost");
            (
                "quic+dgram://127.0.0.1:0".parse().expect("address"),
                TransportConfig::default()
                    .with_quic(QuicConfig::default().with_server_tls(server_tls)),
                TransportConfig::default()
                    .with_quic(QuicConfig::default().with_client_tls(client_tls)),
            )
        }
    };
    let mut listener: Box<dyn Listener> = liaison_transport::bind(&addr, &server_config)
        .await
        .expect("bind");
    let local = listener.local_addr();
    let (client, server) = tokio::join!(
        liaison_transport::connect(&local, &client_config),
        listener.accept()
    );
    (client.expect("connect"), server.expect("accept"))
}

/// Frame `i` of `side`: a `Data` frame on one of a few exchanges, END on every fifth.
fn message(side: u8, i: u32) -> Frame {
    let mut payload = vec![side];
    payload.extend_from_slice(&i.to_le_bytes());
    payload.resize(16 + (i as usize % 64), side);
    let frame = Frame::data(u64::from(i % 5) + 1, payload);
    if i % 5 == 4 {
        frame.with_end()
    } else {
        frame
    }
}

/// Sends `n` frames on `session` while taking `n` from it; returns what arrived.
async fn exchange_frames(session: &Session, side: u8, n: u32) -> Vec<Frame> {
    let mut incoming = session.take_incoming().expect("incoming");
    let sender = session.clone();
    let send = tokio::spawn(async move {
        for i in 0..n {
            sender.send(message(side, i)).await.expect("send");
        }
    });
    let mut received = Vec::new();
    while received.len() < n as usize {
        let frame = incoming.recv().await.expect("the session ended early");
        received.push(frame);
    }
    send.await.expect("sender task");
    // Nothing more may come: every frame exactly once.
    assert!(incoming.try_recv().is_none(), "a frame arrived twice");
    received
}

async fn sequenced_both_ways(kind: Kind, mode: SequencingMode, seed: u64) {
    const N: u32 = 400;
    let (client_end, server_end, faults) = lossy_pair_with_handles(kind, seed).await;
    let (client, server) = tokio::try_join!(
        Session::connect(client_end, client_config(mode)),
        Session::accept(server_end, server_config()),
    )
    .expect("a session over the lossy link");
    assert_eq!(client.config().sequencing, mode);
    assert_eq!(server.config().sequencing, mode);
    let (at_client, at_server) = tokio::join!(
        exchange_frames(&client, 0, N),
        exchange_frames(&server, 1, N),
    );
    for (received, from) in [(at_server, 0u8), (at_client, 1u8)] {
        let expected: Vec<Frame> = (0..N).map(|i| message(from, i)).collect();
        match mode {
            SequencingMode::Ordered => assert_eq!(received, expected),
            _ => {
                let key = |f: &Frame| f.payload.clone();
                let mut received = received;
                let mut expected = expected;
                received.sort_by_key(key);
                expected.sort_by_key(key);
                assert_eq!(received, expected);
            }
        }
    }
    // The link did lose, duplicate and reorder frames in both directions.
    for handle in &faults {
        let stats = handle.stats();
        assert!(
            stats.dropped > 0 && stats.duplicated > 0 && stats.reordered > 0,
            "{stats:?}"
        );
    }
    let closed = client.close("done").await;
    assert_eq!(
        closed,
        TerminationReason::Closed {
            origin: Origin::Local,
            reason: "done".into()
        }
    );
    assert_eq!(
        server.closed().await,
        TerminationReason::Closed {
            origin: Origin::Remote,
            reason: "done".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn memory_ordered_exactly_once_in_order() {
    within(sequenced_both_ways(
        Kind::Memory,
        SequencingMode::Ordered,
        1,
    ))
    .await;
}

#[tokio::test(start_paused = true)]
async fn memory_unordered_exactly_once() {
    within(sequenced_both_ways(
        Kind::Memory,
        SequencingMode::Unordered,
        2,
    ))
    .await;
}

#[tokio::test]
async fn tcp_ordered_exactly_once_in_order() {
    within(sequenced_both_ways(Kind::Tcp, SequencingMode::Ordered, 3)).await;
}

#[tokio::test]
async fn tcp_unordered_exactly_once() {
    within(sequenced_both_ways(Kind::Tcp, SequencingMode::Unordered, 4)).await;
}

#[tokio::test]
async fn quic_datagram_ordered_exactly_once_in_order() {
    within(sequenced_both_ways(
        Kind::QuicDatagram,
        SequencingMode::Ordered,
        5,
    ))
    .await;
}

#[tokio::test]
async fn quic_datagram_unordered_exactly_once() {
    within(sequenced_both_ways(
        Kind::QuicDatagram,
        SequencingMode::Unordered,
        6,
    ))
    .await;
}

#[tokio::test]
async fn quic_datagram_frames_fit_a_datagram() {
    within(async {
        let (client_end, server_end) = lossy_pair(Kind::QuicDatagram, 7).await;
        let max_frame = client_end.info().properties.max_frame;
        let (client, server) = tokio::try_join!(
            Session::connect(client_end, client_config(SequencingMode::Ordered)),
            Session::accept(server_end, server_config()),
        )
        .expect("session");
        let room = u32::try_from(max_frame - 32).expect("small");
        assert!(client.config().limits.max_frame_payload <= room);
        assert!(server.config().limits.max_frame_payload <= room);
        let too_large = Frame::data(1, vec![0u8; max_frame]);
        assert!(matches!(
            client.send(too_large).await,
            Err(SessionError::InvalidFrame(_))
        ));
        let mut incoming = server.take_incoming().expect("incoming");
        let largest = Frame::data(1, vec![7u8; room as usize]);
        client.send(largest.clone()).await.expect("a full frame");
        assert_eq!(incoming.recv().await, Some(largest));
        client.close("done").await;
    })
    .await;
}

#[tokio::test]
async fn no_sequencing_over_an_unreliable_transport_is_refused() {
    let (client_end, _server_end) = lossy_pair(Kind::Memory, 8).await;
    match Session::connect(client_end, client_config(SequencingMode::None)).await {
        Err(SessionError::InvalidConfig(message)) => {
            assert!(message.contains("reliable"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

/// A transport whose sending half drops every frame while its gate is shut: a long
/// outage of one direction, without ending the connection.
struct Gated {
    inner: Box<dyn Transport>,
    info: TransportInfo,
    shut: Arc<AtomicBool>,
}

impl Gated {
    fn wrap(inner: Box<dyn Transport>, shut: Arc<AtomicBool>) -> Box<dyn Transport> {
        let mut info = inner.info().clone();
        info.properties.reliable = false;
        Box::new(Self { inner, info, shut })
    }
}

impl Transport for Gated {
    fn info(&self) -> &TransportInfo {
        &self.info
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        let (sender, receiver) = self.inner.split();
        (
            Box::new(GatedSender {
                inner: sender,
                shut: self.shut,
            }),
            receiver,
        )
    }
}

struct GatedSender {
    inner: Box<dyn FrameSender>,
    shut: Arc<AtomicBool>,
}

#[async_trait]
impl FrameSender for GatedSender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        if self.shut.load(Ordering::Acquire) {
            return Ok(());
        }
        self.inner.feed(frame).await
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.inner.flush().await
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_sender_that_forgot_requested_frames_bows_out_on_both_sides() {
    within(async {
        let (a, b) = liaison_transport::memory::pair(256, 1 << 20);
        let shut = Arc::new(AtomicBool::new(false));
        let client_end = Gated::wrap(Box::new(a), Arc::clone(&shut));
        let server_end = FaultyTransport::wrap(Box::new(b), faults(9));
        let mut client_config = client_config(SequencingMode::Ordered);
        client_config.session.limits.send_buffer = 4;
        client_config.session.retransmit.overflow = Overflow::DropOldest;
        let (client, server) = tokio::try_join!(
            Session::connect(client_end, client_config),
            Session::accept(server_end, server_config()),
        )
        .expect("session");
        let mut incoming = server.take_incoming().expect("incoming");
        client.send(message(0, 0)).await.expect("send");
        assert_eq!(incoming.recv().await, Some(message(0, 0)));
        // Frame 0 is acknowledged before the outage.
        tokio::time::sleep(Duration::from_millis(500)).await;

        // A long outage of the client's direction while it sends 20 more frames: with a
        // retransmit buffer of 4 that forgets the oldest, frames 1..=16 are gone when the
        // link comes back and the server asks for them.
        shut.store(true, Ordering::Release);
        for i in 1..=20 {
            client
                .send(message(0, i))
                .await
                .expect("DropOldest never blocks");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        shut.store(false, Ordering::Release);

        let gone: RangeSet = [1..=16].into_iter().collect();
        assert_eq!(
            client.closed().await,
            TerminationReason::BowedOut {
                ranges: gone.clone()
            }
        );
        let reason = server.closed().await;
        assert_eq!(
            reason,
            TerminationReason::SequenceAbandoned { ranges: gone }
        );
        assert!(reason.to_string().contains("1..16"), "{reason}");
        assert_eq!(reason.origin(), Some(Origin::Remote));
        // Nothing after the gap was delivered: the loss is never silent.
        assert_eq!(incoming.recv().await, None);
        assert!(matches!(
            client.send(message(0, 21)).await,
            Err(SessionError::Terminated(TerminationReason::BowedOut { .. }))
        ));
    })
    .await;
}

fn mode_rejected(origin: Origin) -> TerminationReason {
    TerminationReason::HandshakeFailed(HandshakeFailure::ModeRejected {
        origin,
        requested: SequencingMode::Ordered,
        offered: SequencingMode::Unordered,
    })
}

#[tokio::test(start_paused = true)]
async fn a_refused_mode_is_mode_rejected_on_both_sides() {
    within(async {
        let (client_end, server_end) = lossy_pair(Kind::Memory, 10).await;
        let server_config = server_config()
            .with_sequencing_modes([SequencingMode::None, SequencingMode::Unordered]);
        let (client, server) = tokio::join!(
            Session::connect(client_end, client_config(SequencingMode::Ordered)),
            Session::accept(server_end, server_config),
        );
        match client {
            Err(SessionError::ModeRejected {
                origin: Origin::Local,
                requested: SequencingMode::Ordered,
                offered: SequencingMode::Unordered,
            }) => {}
            other => panic!("expected ModeRejected, got {other:?}"),
        }
        // The server set its mode and was established; the client's NACK ends it.
        let server = server.expect("the server answered");
        assert_eq!(server.config().sequencing, SequencingMode::Unordered);
        assert_eq!(server.closed().await, mode_rejected(Origin::Remote));
        assert!(matches!(
            SessionError::from(mode_rejected(Origin::Remote)),
            SessionError::ModeRejected {
                origin: Origin::Remote,
                ..
            }
        ));
    })
    .await;
}

#[tokio::test]
async fn a_refused_mode_registers_again_as_the_policy_says() {
    within(async {
        let addr: Address = "mem://sequencing-reregister".parse().expect("address");
        let transport = TransportConfig::default();
        let listener = liaison_transport::bind(&addr, &transport)
            .await
            .expect("bind");
        let mut server = Server::serve(
            listener,
            server_config().with_sequencing_modes([SequencingMode::Unordered]),
        );
        let client = client_config(SequencingMode::Ordered)
            .with_mode_policy(ClientModePolicy::Reregister { attempts: 2 });
        let connect =
            tokio::spawn(async move { Session::connect_to(&addr, &transport, client).await });
        // The first registration and two more, each NACKed.
        for _ in 0..3 {
            let session = server.accept().await.expect("a registration");
            assert_eq!(session.closed().await, mode_rejected(Origin::Remote));
        }
        assert!(matches!(
            connect.await.expect("client task"),
            Err(SessionError::ModeRejected {
                origin: Origin::Local,
                ..
            })
        ));
        // A client that asks for the mode the server sets gets a session.
        let (a, b) = liaison_transport::memory::pair(64, 1 << 20);
        let (client, server) = tokio::try_join!(
            Session::connect(Box::new(a), client_config(SequencingMode::Unordered)),
            Session::accept(
                Box::new(b),
                server_config().with_sequencing_modes([SequencingMode::Unordered])
            ),
        )
        .expect("agreed");
        assert_eq!(client.config().sequencing, SequencingMode::Unordered);
        client.close("done").await;
        server.closed().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn session_frames_stay_unsequenced_and_the_session_owns_acks() {
    within(async {
        let (a, b) = liaison_transport::memory::pair(64, 1 << 20);
        let (client, server) = tokio::try_join!(
            Session::connect(Box::new(a), client_config(SequencingMode::Ordered)),
            Session::accept(Box::new(b), server_config()),
        )
        .expect("session");
        for kind in [
            FrameKind::Ack,
            FrameKind::NeedSeq,
            FrameKind::Ping,
            FrameKind::Bye,
        ] {
            assert!(
                client
                    .send(Frame::control(kind, Bytes::new()))
                    .await
                    .is_err(),
                "{kind}"
            );
        }
        client.close("done").await;
        server.closed().await;
    })
    .await;
}
