//! `Session::deliver_to`: incoming frames handed to a [`FrameSink`] on the session's own
//! task, over every transport: frames received before the sink was set come first, every
//! frame arrives once and in order (also when the sink comes after the session ended), what
//! the sink sends while it runs is written, and it never overtakes a frame another task
//! queued before it.

// This suite uses a few of the shared helpers only.
#[allow(dead_code)]
mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use common::{client_config, listen, server_config, Kind};
use liaison_session::{FrameSink, Server, Session};
use liaison_wire::{Frame, FrameKind};
use tokio::sync::mpsc;

/// Bounds a test on real time: nothing may hang.
async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test hung")
}

/// A connected pair over `kind`: the client's session and the server's.
async fn pair(kind: Kind) -> (Session, Session) {
    let net = listen(kind).await;
    let mut server = Server::serve(net.listener, server_config());
    let client = Session::connect_to(&net.addr, &net.client, client_config())
        .await
        .expect("client session");
    let accepted = server.accept().await.expect("server session");
    (client, accepted)
}

/// Sends `frame` on `session` from synchronous code (inside a sink): the send must be taken
/// at once.
fn send_now(session: &Session, frame: Frame) {
    let mut send = pin!(session.send(frame));
    match send.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result.expect("the session takes the frame"),
        Poll::Pending => panic!("the session's queue has room: a send is taken at once"),
    }
}

/// What a test sink does with each frame besides passing its payload on.
type OnFrame = Box<dyn Fn(&Frame) + Send + Sync>;

/// Passes each frame's payload on, after `on_frame`.
struct Recorder {
    seen: mpsc::UnboundedSender<Bytes>,
    on_frame: OnFrame,
}

impl FrameSink for Recorder {
    fn deliver(&self, frames: &mut Vec<(u32, Frame)>) {
        for (restarts, frame) in frames.drain(..) {
            assert_eq!(restarts, 0, "no peer restarts here");
            assert_eq!(frame.kind, FrameKind::Data);
            (self.on_frame)(&frame);
            let _ = self.seen.send(frame.payload);
        }
    }
}

/// Installs a recorder on `session`; returns what it sees.
fn record(session: &Session, on_frame: OnFrame) -> mpsc::UnboundedReceiver<Bytes> {
    let (seen, rx) = mpsc::unbounded_channel();
    assert!(session.deliver_to(Arc::new(Recorder { seen, on_frame })));
    rx
}

fn numbered(i: u32) -> Frame {
    Frame::data(1, Bytes::from(i.to_be_bytes().to_vec()))
}

async fn expect_numbers(rx: &mut mpsc::UnboundedReceiver<Bytes>, range: std::ops::Range<u32>) {
    for i in range {
        let payload = rx.recv().await.expect("a frame");
        assert_eq!(payload.as_ref(), i.to_be_bytes(), "frame {i}");
    }
}

/// Frames queued before the sink is set reach it first, then the later ones, each once and
/// in order; afterwards the session has no incoming stream to take.
async fn frames_before_the_sink_come_first(kind: Kind) {
    let (client, server) = pair(kind).await;
    for i in 0..100 {
        client.send(numbered(i)).await.expect("send");
    }
    if kind == Kind::Memory {
        // Paused clock: the runtime advances it only once every task waits, by then the
        // server's task has queued all 100 frames for the incoming stream.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut seen = record(&server, Box::new(|_| {}));
    assert!(server.take_incoming().is_none(), "the sink has the frames");
    assert!(!server.deliver_to(Arc::new(Recorder {
        seen: mpsc::unbounded_channel().0,
        on_frame: Box::new(|_| {}),
    })));
    for i in 100..200 {
        client.send(numbered(i)).await.expect("send");
    }
    expect_numbers(&mut seen, 0..200).await;
    client.close("done").await;
    assert!(seen.recv().await.is_none(), "nothing after the close");
}

/// A sink set after the session ended still gets every frame received before the end.
async fn a_sink_set_after_the_end_gets_what_came_before(kind: Kind) {
    let (client, server) = pair(kind).await;
    for i in 0..50 {
        client.send(numbered(i)).await.expect("send");
    }
    client.close("done").await;
    server.finished().await;
    let mut seen = record(&server, Box::new(|_| {}));
    expect_numbers(&mut seen, 0..50).await;
    assert!(seen.recv().await.is_none(), "nothing more");
}

/// A sink that answers each frame at once, from the session's task: every reply reaches the
/// peer, in order.
async fn a_sink_answers_at_once(kind: Kind) {
    let (client, server) = pair(kind).await;
    let replier = server.clone();
    let _seen = record(
        &server,
        Box::new(move |frame| {
            let mut reply = b"reply:".to_vec();
            reply.extend_from_slice(&frame.payload);
            send_now(&replier, Frame::data(frame.exchange, reply));
        }),
    );
    let mut replies = client.take_incoming().expect("incoming");
    for i in 0..500u32 {
        client.send(numbered(i)).await.expect("send");
    }
    for i in 0..500u32 {
        let reply = replies.recv().await.expect("a reply");
        let mut expected = b"reply:".to_vec();
        expected.extend_from_slice(&i.to_be_bytes());
        assert_eq!(reply.payload.as_ref(), expected, "reply {i}");
    }
    client.close("done").await;
    server.closed().await;
}

/// A frame another task queued while the sink runs goes out before what the sink sends
/// after it: the sink's frame does not skip a queue that is not empty.
async fn a_sink_never_overtakes_a_queued_frame(kind: Kind) {
    let (client, server) = pair(kind).await;
    let replier = server.clone();
    let runtime = tokio::runtime::Handle::current();
    let _seen = record(
        &server,
        Box::new(move |frame| {
            // Another thread queues `first` while the session task is in the sink; its
            // send completes without the session task (the queue has room).
            let other = replier.clone();
            let exchange = frame.exchange;
            let handle = runtime.clone();
            std::thread::spawn(move || {
                handle
                    .block_on(other.send(Frame::data(exchange, &b"first"[..])))
                    .expect("queued");
            })
            .join()
            .expect("the queueing thread");
            send_now(&replier, Frame::data(exchange, &b"second"[..]));
        }),
    );
    let mut replies = client.take_incoming().expect("incoming");
    client.send(numbered(0)).await.expect("send");
    let first = replies.recv().await.expect("a frame");
    let second = replies.recv().await.expect("a frame");
    assert_eq!(
        (first.payload.as_ref(), second.payload.as_ref()),
        (&b"first"[..], &b"second"[..])
    );
    client.close("done").await;
    server.closed().await;
}

macro_rules! suite {
    ($($name:ident => $kind:expr, $paused:literal;)*) => {$(
        mod $name {
            use super::*;

            const KIND: Kind = $kind;

            #[tokio::test(start_paused = $paused)]
            async fn frames_before_the_sink_come_first() {
                super::frames_before_the_sink_come_first(KIND).await;
            }

            #[tokio::test]
            async fn a_sink_set_after_the_end_gets_what_came_before() {
                within(super::a_sink_set_after_the_end_gets_what_came_before(KIND)).await;
            }

            #[tokio::test]
            async fn a_sink_answers_at_once() {
                within(super::a_sink_answers_at_once(KIND)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_sink_never_overtakes_a_queued_frame() {
                within(super::a_sink_never_overtakes_a_queued_frame(KIND)).await;
            }
        }
    )*};
}

suite! {
    memory => Kind::Memory, true;
    tcp => Kind::Tcp, false;
    quic => Kind::Quic, false;
}
