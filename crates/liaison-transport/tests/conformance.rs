//! The transport conformance suite, written once and run against every transport (memory, TCP, Unix, QUIC, and the fault wrapper with no faults).
//!
//! Each transport is a [`Harness`]; the [`conformance!`] macro instantiates every case for it
//! in a module named after the transport, so a failing test reads `tcp::clean_close_is_end_of_stream`.
//! QUIC datagram mode is not reliable, so it has its own cases at the end.

mod common;

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use common::{pair, pattern, quic_config, unique, unix_path};
use liaison_transport::fault::{FaultConfig, FaultyTransport};
use liaison_transport::{
    bind, connect, Address, FrameReceiver, FrameSender, Transport, TransportConfig, TransportError,
};

/// Largest frame configured in the suite (the server end, unless a case says otherwise).
const MAX: usize = 4 * 1024 * 1024;

/// One transport under test.
trait Harness {
    /// Where to bind a fresh listener.
    fn bind_address() -> Address;

    /// A configuration with the given frame limit.
    fn config(max_frame: usize) -> TransportConfig {
        TransportConfig::default().with_max_frame(max_frame)
    }

    /// Wraps each end (the fault harness adds a `FaultyTransport`).
    fn wrap(transport: Box<dyn Transport>) -> Box<dyn Transport> {
        transport
    }

    /// An address where nothing listens.
    async fn dead_address() -> Address;

    /// Whether connecting to a dead address can only time out (QUIC cannot see a closed UDP
    /// port), in which case the case runs on paused time.
    const DEAD_TIMES_OUT: bool = false;
}

struct Memory;
impl Harness for Memory {
    fn bind_address() -> Address {
        Address::Memory(unique("conformance"))
    }
    async fn dead_address() -> Address {
        Address::Memory(unique("nobody-here"))
    }
}

struct Tcp;
impl Harness for Tcp {
    fn bind_address() -> Address {
        "tcp://127.0.0.1:0".parse().unwrap()
    }
    async fn dead_address() -> Address {
        let listener = bind(&Self::bind_address(), &Self::config(MAX))
            .await
            .unwrap();
        // Dropping the listener closes the port.
        listener.local_addr()
    }
}

struct Unix;
impl Harness for Unix {
    fn bind_address() -> Address {
        Address::Unix(unix_path())
    }
    async fn dead_address() -> Address {
        Address::Unix(unix_path())
    }
}

struct Quic;
impl Harness for Quic {
    fn bind_address() -> Address {
        "quic://127.0.0.1:0".parse().unwrap()
    }
    fn config(max_frame: usize) -> TransportConfig {
        quic_config(max_frame)
    }
    async fn dead_address() -> Address {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        Address::quic(socket.local_addr().unwrap())
    }
    const DEAD_TIMES_OUT: bool = true;
}

/// The fault wrapper with every fault off, around memory connections.
struct FaultyMemory;
impl Harness for FaultyMemory {
    fn bind_address() -> Address {
        Memory::bind_address()
    }
    fn wrap(transport: Box<dyn Transport>) -> Box<dyn Transport> {
        FaultyTransport::wrap(transport, FaultConfig::default())
    }
    async fn dead_address() -> Address {
        Memory::dead_address().await
    }
}

/// The fault wrapper with every fault off, around TCP connections.
struct FaultyTcp;
impl Harness for FaultyTcp {
    fn bind_address() -> Address {
        Tcp::bind_address()
    }
    fn wrap(transport: Box<dyn Transport>) -> Box<dyn Transport> {
        FaultyTransport::wrap(transport, FaultConfig::default())
    }
    async fn dead_address() -> Address {
        Tcp::dead_address().await
    }
}

/// A connected `(client, server)` pair with the given limits.
async fn connected<H: Harness>(
    client_max: usize,
    server_max: usize,
) -> (Box<dyn Transport>, Box<dyn Transport>) {
    let (client, server) = pair(
        &H::bind_address(),
        &H::config(server_max),
        &H::config(client_max),
    )
    .await;
    (H::wrap(client), H::wrap(server))
}

type Halves = (Box<dyn FrameSender>, Box<dyn FrameReceiver>);

async fn split_pair<H: Harness>() -> (Halves, Halves) {
    let (client, server) = connected::<H>(MAX, MAX).await;
    (client.split(), server.split())
}

/// A frame of `len` bytes goes from client to server and back unchanged.
async fn frame_round_trip<H: Harness>(len: usize) {
    let ((mut c_tx, mut c_rx), (mut s_tx, mut s_rx)) = split_pair::<H>().await;
    let frame = pattern(7, len);
    // Sending and receiving run together: a large frame does not fit in the socket buffers.
    let (sent, received) = tokio::join!(c_tx.send(frame.clone()), s_rx.recv());
    sent.unwrap();
    let got = received.unwrap().expect("a frame");
    assert_eq!(got.len(), len);
    assert_eq!(got, frame);
    let (sent, received) = tokio::join!(s_tx.send(got), c_rx.recv());
    sent.unwrap();
    assert_eq!(received.unwrap(), Some(frame));
}

async fn ten_thousand_frames_in_order<H: Harness>() {
    const COUNT: u32 = 10_000;
    let ((mut c_tx, _c_rx), (_s_tx, mut s_rx)) = split_pair::<H>().await;
    let send = async {
        for i in 0..COUNT {
            c_tx.feed(pattern(i, 4 + (i as usize % 97))).await.unwrap();
            if i % 64 == 63 {
                c_tx.flush().await.unwrap();
            }
        }
        c_tx.close().await.unwrap();
    };
    let receive = async {
        for i in 0..COUNT {
            let frame = s_rx.recv().await.unwrap().expect("a frame");
            assert_eq!(frame, pattern(i, 4 + (i as usize % 97)), "frame {i}");
        }
        assert_eq!(s_rx.recv().await.unwrap(), None);
    };
    tokio::join!(send, receive);
}

async fn concurrent_both_directions<H: Harness>() {
    const COUNT: u32 = 1_000;
    let ((mut c_tx, mut c_rx), (mut s_tx, mut s_rx)) = split_pair::<H>().await;
    let client_frame = |i: u32| pattern(i, 1000);
    let server_frame = |i: u32| pattern(i, 3000);
    let c_send = async {
        for i in 0..COUNT {
            c_tx.send(client_frame(i)).await.unwrap();
        }
        c_tx.close().await.unwrap();
    };
    let s_send = async {
        for i in 0..COUNT {
            s_tx.feed(server_frame(i)).await.unwrap();
        }
        s_tx.close().await.unwrap();
    };
    let c_recv = async {
        for i in 0..COUNT {
            assert_eq!(c_rx.recv().await.unwrap(), Some(server_frame(i)));
        }
        assert_eq!(c_rx.recv().await.unwrap(), None);
    };
    let s_recv = async {
        for i in 0..COUNT {
            assert_eq!(s_rx.recv().await.unwrap(), Some(client_frame(i)));
        }
        assert_eq!(s_rx.recv().await.unwrap(), None);
    };
    tokio::join!(c_send, s_send, c_recv, s_recv);
}

async fn clean_close_is_end_of_stream<H: Harness>() {
    let ((mut c_tx, mut c_rx), (mut s_tx, mut s_rx)) = split_pair::<H>().await;
    for i in 0..3 {
        c_tx.feed(pattern(i, 10)).await.unwrap();
    }
    c_tx.close().await.unwrap();
    c_tx.close().await.unwrap();
    assert!(matches!(
        c_tx.send(pattern(9, 1)).await,
        Err(TransportError::Closed)
    ));
    for i in 0..3 {
        assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(i, 10)));
    }
    assert_eq!(s_rx.recv().await.unwrap(), None);
    assert_eq!(s_rx.recv().await.unwrap(), None);
    // The other direction is still open after a half close.
    s_tx.send(pattern(42, 5)).await.unwrap();
    s_tx.close().await.unwrap();
    assert_eq!(c_rx.recv().await.unwrap(), Some(pattern(42, 5)));
    assert_eq!(c_rx.recv().await.unwrap(), None);
}

async fn close_then_drop_delivers_everything<H: Harness>() {
    let ((mut c_tx, c_rx), (_s_tx, mut s_rx)) = split_pair::<H>().await;
    c_tx.send(pattern(1, 50_000)).await.unwrap();
    c_tx.close().await.unwrap();
    drop((c_tx, c_rx));
    assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(1, 50_000)));
    assert_eq!(s_rx.recv().await.unwrap(), None);
}

/// Reads until something other than a frame arrives and checks it is an abrupt error.
async fn expect_abrupt_end(rx: &mut Box<dyn FrameReceiver>) {
    loop {
        match rx.recv().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("an abrupt drop was reported as a clean close"),
            Err(err) => {
                assert!(err.is_abrupt(), "not an abrupt error: {err:?}");
                break;
            }
        }
    }
}

async fn abrupt_drop_is_error<H: Harness>() {
    let ((mut c_tx, c_rx), (_s_tx, mut s_rx)) = split_pair::<H>().await;
    c_tx.send(pattern(1, 100)).await.unwrap();
    drop((c_tx, c_rx));
    expect_abrupt_end(&mut s_rx).await;
}

async fn dropped_sender_is_error<H: Harness>() {
    let ((mut c_tx, _c_rx), (_s_tx, mut s_rx)) = split_pair::<H>().await;
    c_tx.send(pattern(1, 100)).await.unwrap();
    drop(c_tx);
    assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(1, 100)));
    expect_abrupt_end(&mut s_rx).await;
}

async fn oversized_frame_refused_on_send<H: Harness>() {
    let ((mut c_tx, _c_rx), (_s_tx, mut s_rx)) = split_pair::<H>().await;
    match c_tx.send(Bytes::from(vec![0u8; MAX + 1])).await {
        Err(TransportError::FrameTooLarge { size, max }) => {
            assert_eq!((size, max), (MAX + 1, MAX));
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    // Nothing was written: the connection still works.
    c_tx.send(pattern(3, 3)).await.unwrap();
    assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(3, 3)));
}

async fn oversized_frame_refused_on_receive<H: Harness>() {
    const SERVER_MAX: usize = 64 * 1024;
    let (client, server) = connected::<H>(4 * SERVER_MAX, SERVER_MAX).await;
    assert_eq!(server.info().properties.max_frame, SERVER_MAX);
    let (mut c_tx, _c_rx) = client.split();
    let (_s_tx, mut s_rx) = server.split();
    c_tx.send(pattern(1, SERVER_MAX + 1)).await.unwrap();
    match s_rx.recv().await {
        Err(TransportError::FrameTooLarge { size, max }) => {
            assert_eq!((size, max), (SERVER_MAX + 1, SERVER_MAX));
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}

async fn connect_to_nowhere_fails_fast<H: Harness>() {
    if H::DEAD_TIMES_OUT {
        tokio::time::pause();
    }
    let addr = H::dead_address().await;
    let config = H::config(MAX).with_connect_timeout(Duration::from_secs(10));
    // A guard only: the connection attempt must end well before it.
    let outcome = tokio::time::timeout(Duration::from_secs(60), connect(&addr, &config))
        .await
        .expect("connecting to a dead address hung");
    match outcome {
        Err(TransportError::ConnectionRefused { .. }) => {}
        Err(TransportError::TimedOut { .. }) if H::DEAD_TIMES_OUT => {}
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("connected to a dead address"),
    }
}

async fn bind_in_use_is_refused<H: Harness>() {
    let config = H::config(MAX);
    let listener = bind(&H::bind_address(), &config).await.unwrap();
    let taken = listener.local_addr();
    match bind(&taken, &config).await {
        Err(TransportError::AddressInUse { .. }) => {}
        Err(other) => panic!("expected AddressInUse, got {other:?}"),
        Ok(_) => panic!("bound {taken} twice"),
    }
}

async fn properties_and_addresses<H: Harness>() {
    let (client, server) = connected::<H>(MAX, MAX / 2).await;
    for (transport, max) in [(&client, MAX), (&server, MAX / 2)] {
        let info = transport.info();
        assert!(info.properties.reliable);
        assert!(info.properties.ordered);
        assert_eq!(info.properties.max_frame, max);
        assert!(!info.local.is_empty() && !info.peer.is_empty());
    }
}

async fn recv_is_cancel_safe<H: Harness>() {
    const COUNT: u32 = 300;
    let ((mut c_tx, _c_rx), (_s_tx, mut s_rx)) = split_pair::<H>().await;
    let len = |i: u32| (i as usize * 997) % 40_000;
    let send = async {
        for i in 0..COUNT {
            c_tx.feed(pattern(i, len(i))).await.unwrap();
            if i % 8 == 0 {
                c_tx.flush().await.unwrap();
            }
        }
        c_tx.close().await.unwrap();
    };
    let receive = async {
        let (mut next, mut cancelled) = (0, 0u32);
        loop {
            // Poll `recv` once and drop it if it is not ready: a cancellation, often in the middle
            // of a frame on stream transports. The next call must carry on where it stopped.
            let polled = {
                let mut recv = std::pin::pin!(s_rx.recv());
                recv.as_mut().poll(&mut Context::from_waker(Waker::noop()))
            };
            match polled {
                Poll::Ready(received) => match received.unwrap() {
                    Some(frame) => {
                        assert_eq!(frame, pattern(next, len(next)), "frame {next}");
                        next += 1;
                    }
                    None => break,
                },
                Poll::Pending => {
                    cancelled += 1;
                    tokio::task::yield_now().await;
                }
            }
        }
        assert_eq!(next, COUNT);
        assert!(cancelled > 0, "recv was never cancelled");
    };
    tokio::join!(send, receive);
}

/// Frames fed as a head and a body arrive as the two joined, in order with frames fed whole,
/// whatever the sizes (bodies copied and bodies written from where they lie).
async fn frames_in_parts_arrive_joined<H: Harness>() {
    const SIZES: [usize; 9] = [0, 1, 100, 4095, 4096, 4097, 65_536, 70_000, 300_000];
    let ((mut c_tx, _c_rx), (_s_tx, mut s_rx)) = split_pair::<H>().await;
    let head = |i: u32| pattern(1000 + i, i as usize % 40);
    let body = |i: u32| pattern(i, SIZES[i as usize % SIZES.len()]);
    let joined = |i: u32| {
        let mut frame = head(i).to_vec();
        frame.extend_from_slice(&body(i));
        Bytes::from(frame)
    };
    let count = 3 * u32::try_from(SIZES.len()).unwrap();
    let send = async {
        for i in 0..count {
            let body = body(i);
            if i % 3 == 2 {
                c_tx.feed(joined(i)).await.unwrap();
            } else {
                c_tx.feed_parts(&head(i), body).await.unwrap();
            }
            if i % 4 == 3 {
                c_tx.flush().await.unwrap();
            }
        }
        // Head and body together over the limit: refused before anything is written.
        match c_tx
            .feed_parts(&[0u8; 8], Bytes::from(vec![0u8; MAX - 7]))
            .await
        {
            Err(TransportError::FrameTooLarge { size, max }) => {
                assert_eq!((size, max), (MAX + 1, MAX));
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        c_tx.close().await.unwrap();
    };
    let receive = async {
        for i in 0..count {
            let frame = s_rx.recv().await.unwrap().expect("a frame");
            assert_eq!(frame, joined(i), "frame {i}");
        }
        assert_eq!(s_rx.recv().await.unwrap(), None);
    };
    tokio::join!(send, receive);
}

macro_rules! conformance {
    ($($module:ident => $harness:ty),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test]
            async fn empty_frame() {
                frame_round_trip::<$harness>(0).await;
            }

            #[tokio::test]
            async fn one_byte_frame() {
                frame_round_trip::<$harness>(1).await;
            }

            #[tokio::test]
            async fn frame_of_64_kib() {
                frame_round_trip::<$harness>(64 * 1024).await;
            }

            #[tokio::test]
            async fn frame_of_maximum_size() {
                frame_round_trip::<$harness>(MAX).await;
            }

            #[tokio::test]
            async fn frames_in_parts_arrive_joined() {
                super::frames_in_parts_arrive_joined::<$harness>().await;
            }

            #[tokio::test]
            async fn ten_thousand_frames_in_order() {
                super::ten_thousand_frames_in_order::<$harness>().await;
            }

            #[tokio::test]
            async fn concurrent_both_directions() {
                super::concurrent_both_directions::<$harness>().await;
            }

            #[tokio::test]
            async fn clean_close_is_end_of_stream() {
                super::clean_close_is_end_of_stream::<$harness>().await;
            }

            #[tokio::test]
            async fn close_then_drop_delivers_everything() {
                super::close_then_drop_delivers_everything::<$harness>().await;
            }

            #[tokio::test]
            async fn abrupt_drop_is_error() {
                super::abrupt_drop_is_error::<$harness>().await;
            }

            #[tokio::test]
            async fn dropped_sender_is_error() {
                super::dropped_sender_is_error::<$harness>().await;
            }

            #[tokio::test]
            async fn oversized_frame_refused_on_send() {
                super::oversized_frame_refused_on_send::<$harness>().await;
            }

            #[tokio::test]
            async fn oversized_frame_refused_on_receive() {
                super::oversized_frame_refused_on_receive::<$harness>().await;
            }

            #[tokio::test]
            async fn connect_to_nowhere_fails_fast() {
                super::connect_to_nowhere_fails_fast::<$harness>().await;
            }

            #[tokio::test]
            async fn bind_in_use_is_refused() {
                super::bind_in_use_is_refused::<$harness>().await;
            }

            #[tokio::test]
            async fn properties_and_addresses() {
                super::properties_and_addresses::<$harness>().await;
            }

            #[tokio::test]
            async fn recv_is_cancel_safe() {
                super::recv_is_cancel_safe::<$harness>().await;
            }
        }
    )*};
}

conformance! {
    memory => Memory,
    tcp => Tcp,
    unix => Unix,
    quic => Quic,
    faulty_memory => FaultyMemory,
    faulty_tcp => FaultyTcp,
}

/// QUIC datagram mode: unreliable and unordered, limited to the datagram size.
mod quic_dgram {
    use super::*;

    fn address() -> Address {
        "quic+dgram://127.0.0.1:0".parse().unwrap()
    }

    async fn dgram_pair() -> (Box<dyn Transport>, Box<dyn Transport>) {
        pair(&address(), &quic_config(MAX), &quic_config(MAX)).await
    }

    #[tokio::test]
    async fn properties_reflect_datagrams() {
        let (client, server) = dgram_pair().await;
        for transport in [&client, &server] {
            let properties = transport.info().properties;
            assert!(!properties.reliable);
            assert!(!properties.ordered);
            // QUIC guarantees a little over a kilobyte at least; far below the stream limit.
            assert!(
                (1000..65_536).contains(&properties.max_frame),
                "{properties:?}"
            );
        }
    }

    #[tokio::test]
    async fn frames_arrive() {
        let (client, server) = dgram_pair().await;
        let max = client.info().properties.max_frame;
        let (mut c_tx, mut c_rx) = client.split();
        let (mut s_tx, mut s_rx) = server.split();
        let sizes = [0, 1, 100, max];
        for (i, size) in (0u32..).zip(sizes) {
            c_tx.feed(pattern(i, size)).await.unwrap();
        }
        c_tx.flush().await.unwrap();
        let mut got = Vec::new();
        for _ in sizes {
            got.push(s_rx.recv().await.unwrap().expect("a datagram"));
        }
        got.sort_by_key(Bytes::len);
        let expected: Vec<Bytes> = (0u32..).zip(sizes).map(|(i, s)| pattern(i, s)).collect();
        assert_eq!(got, expected);
        s_tx.send(pattern(9, 9)).await.unwrap();
        assert_eq!(c_rx.recv().await.unwrap(), Some(pattern(9, 9)));
    }

    #[tokio::test]
    async fn many_frames_arrive() {
        const COUNT: u32 = 200;
        let (client, server) = dgram_pair().await;
        let (mut c_tx, _c_rx) = client.split();
        let (_s_tx, mut s_rx) = server.split();
        let send = async {
            for i in 0..COUNT {
                c_tx.send(pattern(i, 500)).await.unwrap();
            }
        };
        let receive = async {
            let mut seen = Vec::new();
            for _ in 0..COUNT {
                seen.push(s_rx.recv().await.unwrap().expect("a datagram"));
            }
            seen
        };
        let ((), mut seen) = tokio::join!(send, receive);
        seen.sort();
        let mut expected: Vec<Bytes> = (0..COUNT).map(|i| pattern(i, 500)).collect();
        expected.sort();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn oversized_datagram_refused() {
        let (client, _server) = dgram_pair().await;
        let (mut c_tx, _c_rx) = client.split();
        match c_tx.send(Bytes::from(vec![0u8; 65_536])).await {
            Err(TransportError::FrameTooLarge { size, max }) => {
                assert_eq!(size, 65_536);
                assert!(max < size);
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn exact_limit_without_mtu_discovery() {
        let mut config = quic_config(MAX);
        config.quic.mtu_discovery = false;
        let (client, _server) = pair(&address(), &config, &config).await;
        let max = client.info().properties.max_frame;
        let (mut c_tx, _c_rx) = client.split();
        c_tx.send(pattern(1, max)).await.unwrap();
        assert!(matches!(
            c_tx.send(pattern(1, max + 1)).await,
            Err(TransportError::FrameTooLarge { size, max: limit }) if size == max + 1 && limit == max
        ));
    }

    #[tokio::test]
    async fn clean_close_is_end_of_stream() {
        let (client, server) = dgram_pair().await;
        let (mut c_tx, mut c_rx) = client.split();
        let (_s_tx, mut s_rx) = server.split();
        c_tx.send(pattern(1, 10)).await.unwrap();
        assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(1, 10)));
        c_tx.close().await.unwrap();
        assert_eq!(s_rx.recv().await.unwrap(), None);
        assert_eq!(s_rx.recv().await.unwrap(), None);
        assert_eq!(c_rx.recv().await.unwrap(), None);
        assert!(matches!(
            c_tx.send(pattern(1, 1)).await,
            Err(TransportError::Closed)
        ));
    }

    #[tokio::test]
    async fn abrupt_drop_is_error() {
        let (client, server) = dgram_pair().await;
        let (_s_tx, mut s_rx) = server.split();
        drop(client);
        expect_abrupt_end(&mut s_rx).await;
    }

    #[tokio::test]
    async fn connect_to_nowhere_fails_fast() {
        tokio::time::pause();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        drop(socket);
        let addr: Address = format!("quic+dgram://127.0.0.1:{port}").parse().unwrap();
        let outcome =
            tokio::time::timeout(Duration::from_secs(60), connect(&addr, &quic_config(MAX)))
                .await
                .expect("connecting to a dead address hung");
        assert!(matches!(
            outcome,
            Err(TransportError::TimedOut { .. } | TransportError::ConnectionRefused { .. })
        ));
    }

    #[tokio::test]
    async fn stream_client_cannot_join_a_datagram_server() {
        let config = quic_config(MAX);
        let listener = bind(&address(), &config).await.unwrap();
        let Address::QuicDatagram(target) = listener.local_addr() else {
            panic!("unexpected listener address");
        };
        let err = connect(&Address::Quic(target), &config)
            .await
            .err()
            .expect("the ALPN mismatch must fail the handshake");
        assert!(matches!(err, TransportError::Quic(_)), "{err:?}");
    }
}
