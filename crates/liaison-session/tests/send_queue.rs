//! Sending without waiting: `Session::try_send_as_of` takes a frame while the send queue has
//! room and gives it back when the queue is full; `Session::send_ready` waits for room. Over
//! TCP, frames taken either way reach the peer once and in order.

// This suite uses a few of the shared helpers only.
#[allow(dead_code)]
mod common;

use std::future::Future;
use std::time::Duration;

use common::{client_config, listen, server_config, Kind};
use liaison_session::{Server, Session, SessionError};
use liaison_wire::{Frame, FrameKind};

/// Frames the client's send queue holds.
const QUEUE: u32 = 4;

/// Bounds a test on real time: nothing may hang.
async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test hung")
}

fn frame(n: u64) -> Frame {
    Frame::data(n, n.to_be_bytes().to_vec())
}

// One thread: nothing takes frames from the queue while the test fills it.
#[tokio::test(flavor = "current_thread")]
async fn a_full_send_queue_gives_the_frame_back_until_there_is_room() {
    within(async {
        let net = listen(Kind::Tcp).await;
        let mut server = Server::serve(net.listener, server_config());
        let mut config = client_config();
        config.session.limits.send_buffer = QUEUE;
        let client = Session::connect_to(&net.addr, &net.client, config)
            .await
            .expect("client session");
        let accepted = server.accept().await.expect("server session");
        let mut incoming = accepted.take_incoming().expect("incoming");
        let restarts = client.link_changes().borrow().restarts;

        for n in 0..u64::from(QUEUE) {
            assert!(
                client
                    .try_send_as_of(restarts, frame(n))
                    .expect("taken")
                    .is_none(),
                "frame {n} fits the queue"
            );
        }
        let back = client
            .try_send_as_of(restarts, frame(99))
            .expect("not an error: the queue is full")
            .expect("the frame comes back");
        assert_eq!(back, frame(99));

        // The session's task empties the queue: room again, and the frame goes.
        client.send_ready().await.expect("room");
        assert!(client
            .try_send_as_of(restarts, frame(u64::from(QUEUE)))
            .expect("taken")
            .is_none());

        for n in 0..=u64::from(QUEUE) {
            let received = incoming.recv().await.expect("a frame");
            assert_eq!((received.kind, received.exchange), (FrameKind::Data, n));
            assert_eq!(received, frame(n));
        }

        client.close("done").await;
        assert!(matches!(
            client.try_send_as_of(restarts, frame(7)),
            Err(SessionError::Terminated(_))
        ));
        assert!(matches!(
            client.send_ready().await,
            Err(SessionError::Terminated(_))
        ));
    })
    .await;
}
