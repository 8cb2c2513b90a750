//! The exchange rules of PROTOCOL.md §9 against a hand-driven peer: the frames a unary call
//! and a refusal put on the wire, and the violations that end the session as protocol
//! violations (§5.3) that the peer is told of.

mod common;

use bytes::Bytes;
use common::{session_config, sessions, within, Echo, Kind, ROOT};
use liaison_exchange::payload::{Begin, Cancel};
use liaison_exchange::{raw_service_fn, CancelCode, Context, Endpoint, ExchangeConfig};
use liaison_session::{IncomingFrames, Origin, ReasonCode, Session, TerminationReason};
use liaison_wire::{Frame, FrameKind};

/// A server endpoint serving `Echo` as root, and the raw client session with its frames.
async fn raw_client(window: u32) -> (Session, IncomingFrames, Endpoint) {
    raw_client_with(window, false).await
}

/// As [`raw_client`]; with `accept`, exchanges for unserved capabilities wait (unread) for
/// `accept` instead of being refused.
async fn raw_client_with(window: u32, accept: bool) -> (Session, IncomingFrames, Endpoint) {
    let (client, server) = sessions(Kind::Memory, session_config(4)).await;
    let mut config = ExchangeConfig::default();
    config.window = window;
    config.max_exchanges = 2;
    let builder = Endpoint::builder(server).config(config).root(Echo);
    let builder = if accept {
        builder.accept_unrouted()
    } else {
        builder
    };
    let server = builder.start().expect("server");
    let incoming = client.take_incoming().expect("incoming");
    (client, incoming, server)
}

fn begin(id: u64, target: u64, message: Option<&'static [u8]>, end: bool) -> Frame {
    Begin {
        target,
        credit: 8,
        message: message.map(Bytes::from_static),
    }
    .frame(id, end)
}

/// Sends `frame` and checks that the server ends the session, telling the client why.
async fn violation(frame: Frame, expected: &str) {
    let (client, _incoming, server) = raw_client(4).await;
    client.send(frame).await.expect("send");
    ended_by_violation(&client, &server, expected).await;
}

/// Checks that the server ended the session as a protocol violation naming `expected`
/// (PROTOCOL.md §5.3): locally, and with a `Bye` of code 2 (`ProtocolViolation`) that the
/// client received.
async fn ended_by_violation(client: &Session, server: &Endpoint, expected: &str) {
    let told = client.closed().await;
    let found = server.closed().await;
    let TerminationReason::ProtocolViolation {
        origin: Origin::Local,
        detail,
    } = &found
    else {
        panic!("the server ends the session as a violation it found: {found:?}");
    };
    assert!(
        detail.starts_with("exchange protocol violation") && detail.contains(expected),
        "{detail}"
    );
    // The client's reason comes from the `Bye` it received: the code on the wire was 2.
    assert_eq!(
        told,
        TerminationReason::ProtocolViolation {
            origin: Origin::Remote,
            detail: detail.clone(),
        }
    );
    assert_eq!(ReasonCode::from(&told), ReasonCode::ProtocolViolation);
    assert!(server.is_terminated());
    assert!(client.is_terminated());
}

#[tokio::test]
async fn a_unary_call_is_one_frame_each_way() {
    within(async {
        let (client, mut incoming, server) = raw_client(4).await;
        let unary = server.export(raw_service_fn(|request: Bytes, _ctx: Context| async move {
            Ok::<_, String>(request)
        }));
        client
            .send(begin(1, unary.id(), Some(b"hello"), true))
            .await
            .expect("send");
        let reply = incoming.recv().await.expect("reply");
        assert_eq!(reply.kind, FrameKind::Data);
        assert_eq!(reply.exchange, 1);
        assert!(reply.is_end());
        assert_eq!(reply.payload, "hello");
    })
    .await;
}

#[tokio::test]
async fn a_streaming_exchange_gets_its_window_at_once() {
    within(async {
        let (client, mut incoming, _server) = raw_client(4).await;
        client
            .send(begin(1, ROOT, None, false))
            .await
            .expect("send");
        let credit = incoming.recv().await.expect("credit");
        assert_eq!(credit.kind, FrameKind::ExchangeCredit);
        assert_eq!((credit.exchange, credit.credit()), (1, Ok(3)));
    })
    .await;
}

#[tokio::test]
async fn unknown_capabilities_and_excess_exchanges_are_refused() {
    within(async {
        let (client, mut incoming, _server) = raw_client(4).await;
        client
            .send(begin(1, 77, Some(b"x"), true))
            .await
            .expect("send");
        let refusal = incoming.recv().await.expect("refusal");
        assert_eq!(
            (refusal.kind, refusal.exchange),
            (FrameKind::ExchangeCancel, 1)
        );
        let cancel = Cancel::decode(&refusal.payload).expect("cancel payload");
        assert_eq!(cancel.code, CancelCode::UnknownCapability);

        // The server takes two exchanges at once; the third is refused.
        for id in [3, 5, 7] {
            client
                .send(begin(id, ROOT, Some(b"x"), false))
                .await
                .expect("send");
        }
        let mut refused = Vec::new();
        while refused.is_empty() {
            let frame = incoming.recv().await.expect("a frame");
            if frame.kind == FrameKind::ExchangeCancel {
                refused.push((
                    frame.exchange,
                    Cancel::decode(&frame.payload).expect("cancel payload").code,
                ));
            }
        }
        assert_eq!(refused, [(7, CancelCode::TooManyExchanges)]);
    })
    .await;
}

#[tokio::test]
async fn data_for_an_exchange_never_opened() {
    within(violation(Frame::data(9, &b"x"[..]), "never opened")).await;
}

#[tokio::test]
async fn begin_with_the_receivers_parity() {
    within(violation(begin(2, ROOT, None, false), "parity")).await;
}

#[tokio::test]
async fn malformed_begin() {
    within(violation(
        Frame::on_exchange(FrameKind::ExchangeBegin, 1, &b"short"[..]),
        "ExchangeBegin 1",
    ))
    .await;
}

#[tokio::test]
async fn data_beyond_credit() {
    within(async {
        // Nobody reads the exchange: it waits for `accept`.
        let (client, _incoming, server) = raw_client_with(4, true).await;
        client.send(begin(1, 50, None, false)).await.expect("send");
        // One implicit message plus the three granted: the fifth is too many.
        for i in 0..5u8 {
            client.send(Frame::data(1, vec![i])).await.expect("send");
        }
        ended_by_violation(&client, &server, "beyond the credit").await;
    })
    .await;
}

#[tokio::test]
async fn reused_exchange_id() {
    within(async {
        let (client, _incoming, server) = raw_client(4).await;
        client
            .send(begin(3, ROOT, None, false))
            .await
            .expect("send");
        client
            .send(begin(1, ROOT, None, false))
            .await
            .expect("send");
        ended_by_violation(&client, &server, "ids must increase").await;
    })
    .await;
}

#[tokio::test]
async fn a_first_message_too_large_for_the_begin_goes_in_a_data_frame() {
    within(async {
        let mut config = session_config(4);
        config.limits.max_frame_payload = 64 * 1024;
        let (client, server) = sessions(Kind::Memory, config).await;
        let _server = Endpoint::builder(server)
            .root(raw_service_fn(|request: Bytes, _ctx: Context| async move {
                Ok::<_, String>(request)
            }))
            .start()
            .expect("server");
        let client = Endpoint::new(client, ExchangeConfig::default()).expect("client");
        let root = client.root().expect("root");
        // The largest message a Data frame carries does not fit beside the Begin's fields.
        let largest = Bytes::from(vec![5u8; 64 * 1024]);
        assert_eq!(root.call(largest.clone()).await.expect("call"), largest);
        let too_large = root.call(Bytes::from(vec![5u8; 64 * 1024 + 1])).await;
        assert!(
            matches!(
                too_large,
                Err(liaison_exchange::ExchangeError::MessageTooLarge {
                    size: 65_537,
                    max: 65_536
                })
            ),
            "{too_large:?}"
        );
        assert_eq!(client.stats().outgoing, 0);
    })
    .await;
}
