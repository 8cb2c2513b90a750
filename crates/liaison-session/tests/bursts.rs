//! Many requests in flight: the replies a session hands up together wake their callers
//! together, and the frames those callers send next leave in a few writes, not one each.

// This suite uses a few of the shared helpers only.
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::{client_config, listen, serve_requests, server_config, Kind, Requester};
use liaison_session::{Server, Session};
use liaison_transport::{FrameReceiver, FrameSender, Transport, TransportError, TransportInfo};

const CALLERS: usize = 32;
const ROUNDS: usize = 40;

/// Frames fed to a transport's sending half, and the writes (flushes) they went out in.
#[derive(Default)]
struct Writes {
    frames: AtomicUsize,
    flushes: AtomicUsize,
}

impl Writes {
    fn reset(&self) {
        self.frames.store(0, Ordering::SeqCst);
        self.flushes.store(0, Ordering::SeqCst);
    }

    fn get(&self) -> (usize, usize) {
        (
            self.frames.load(Ordering::SeqCst),
            self.flushes.load(Ordering::SeqCst),
        )
    }
}

/// A transport whose sending half counts into [`Writes`].
struct Counted {
    inner: Box<dyn Transport>,
    writes: Arc<Writes>,
}

impl Transport for Counted {
    fn info(&self) -> &TransportInfo {
        self.inner.info()
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        let (inner, receiver) = self.inner.split();
        let sender = CountedSender {
            inner,
            writes: self.writes,
        };
        (Box::new(sender), receiver)
    }
}

struct CountedSender {
    inner: Box<dyn FrameSender>,
    writes: Arc<Writes>,
}

#[async_trait]
impl FrameSender for CountedSender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.writes.frames.fetch_add(1, Ordering::SeqCst);
        self.inner.feed(frame).await
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.writes.flushes.fetch_add(1, Ordering::SeqCst);
        self.inner.flush().await
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}

/// One worker, as on a busy runtime: a caller's frame wakes the session's task on the
/// caller's own worker, ahead of the callers woken with it. Those still get their frames
/// into the same write: here 10 to 18 frames a write, where a session task that wrote as
/// soon as the first frame woke it made 3 to 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn callers_woken_together_share_their_writes() {
    let test = async {
        let net = listen(Kind::Memory).await;
        let mut server = Server::serve(net.listener, server_config());
        let writes = Arc::new(Writes::default());
        let transport = Box::new(Counted {
            inner: liaison_transport::connect(&net.addr, &net.client)
                .await
                .expect("connect"),
            writes: Arc::clone(&writes),
        });
        let client = Session::connect(transport, client_config())
            .await
            .expect("client session");
        let accepted = server.accept().await.expect("server session");
        serve_requests(&accepted);
        let requester = Requester::new(client.clone());
        writes.reset();

        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let requester = Arc::clone(&requester);
                tokio::spawn(async move {
                    for _ in 0..ROUNDS {
                        let reply = requester.request(b"ping").await.expect("sent");
                        assert_eq!(&reply.await.expect("reply")[..], b"reply:ping");
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.expect("caller");
        }

        let (frames, flushes) = writes.get();
        assert_eq!(frames, CALLERS * ROUNDS, "one frame per request");
        assert!(
            frames >= 6 * flushes,
            "{frames} frames went out in {flushes} writes"
        );
    };
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test hung");
}
