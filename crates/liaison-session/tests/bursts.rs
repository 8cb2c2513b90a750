//! Many requests in flight: the replies a session hands up together wake their callers
//! together, and the frames those callers send next leave in a few writes, not one each.

// This suite uses a few of the shared helpers only.
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{client_config, listen, serve_requests, server_config, Kind, Requester, Tamper};
use liaison_session::{Server, Session};

const CALLERS: u64 = 32;
const ROUNDS: u64 = 40;

/// One worker, as on a busy runtime: a caller's frame wakes the session's task on the
/// caller's own worker, ahead of the callers woken with it. Those still get their frames
/// into the same write: here 10 to 18 frames a write, where a session task that wrote as
/// soon as the first frame woke it made 2 to 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn callers_woken_together_share_their_writes() {
    let test = async {
        let net = listen(Kind::Memory).await;
        let mut server = Server::serve(net.listener, server_config());
        let frames = Arc::new(AtomicU64::new(0));
        let flushes = Arc::new(AtomicU64::new(0));
        let fed = Arc::clone(&frames);
        let transport = Tamper::counting(
            liaison_transport::connect(&net.addr, &net.client)
                .await
                .expect("connect"),
            move |_, frame| {
                fed.fetch_add(1, Ordering::Relaxed);
                Some(frame)
            },
            Arc::clone(&flushes),
        );
        let client = Session::connect(transport, client_config())
            .await
            .expect("client session");
        let accepted = server.accept().await.expect("server session");
        serve_requests(&accepted);
        let requester = Requester::new(client.clone());
        // From here on, only the requests.
        frames.store(0, Ordering::Relaxed);
        flushes.store(0, Ordering::Relaxed);

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

        let frames = frames.load(Ordering::Relaxed);
        let flushes = flushes.load(Ordering::Relaxed);
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
