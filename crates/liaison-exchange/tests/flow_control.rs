//! Per-exchange flow control: an exchange whose reader stopped fills its window and no more;
//! its sender waits; 1,000 other exchanges on the same session complete meanwhile; memory
//! held for received messages stays within the window; and once the reader resumes, every
//! message arrives. Also: a bulk upload on one exchange.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use common::{number, session_config, sessions, within, Kind};
use liaison_exchange::{Context, Endpoint, Exchange, ExchangeConfig, Service};

const WINDOW: u32 = 16;
const STREAM: u64 = 2_000;
const MESSAGE: usize = 1024;
const OTHERS: u64 = 1_000;

/// `stream` sends `STREAM` messages of `MESSAGE` bytes and counts them; anything else is
/// echoed back as a unary reply.
struct Firehose {
    sent: Arc<AtomicU64>,
}

#[async_trait]
impl Service for Firehose {
    async fn handle(&self, mut exchange: Exchange, _ctx: &Context) {
        let Ok(Some(request)) = exchange.recv().await else {
            return;
        };
        if request != "stream" {
            let _ = exchange.send_last(request).await;
            return;
        }
        for i in 0..STREAM {
            let mut message = vec![0u8; MESSAGE];
            message[..8].copy_from_slice(&i.to_le_bytes());
            if exchange.send(Bytes::from(message)).await.is_err() {
                return;
            }
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        let _ = exchange.end().await;
    }
}

fn config() -> ExchangeConfig {
    let mut config = ExchangeConfig::default();
    config.window = WINDOW;
    config
}

async fn a_stalled_reader_stalls_only_its_exchange(kind: Kind) {
    let (client, server) = sessions(kind, session_config(2048)).await;
    let sent = Arc::new(AtomicU64::new(0));
    let server = Endpoint::builder(server)
        .config(config())
        .root(Firehose {
            sent: Arc::clone(&sent),
        })
        .start()
        .expect("server");
    let client = Endpoint::new(client, config()).expect("client");
    let root = client.root().expect("root");

    // The stalled exchange: asks for the stream and reads nothing.
    let mut stalled = root
        .begin_with(Bytes::from_static(b"stream"))
        .await
        .expect("begin");
    stalled.end().await.expect("end");
    // Its window fills up.
    while client.stats().buffered_messages < WINDOW as usize {
        tokio::task::yield_now().await;
    }

    // 1,000 other exchanges complete on the same session meanwhile.
    let calls: Vec<_> = (0..OTHERS)
        .map(|i| {
            let root = root.clone();
            tokio::spawn(async move { root.call(number(i)).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let reply = call.await.expect("task").expect("call");
        assert_eq!(reply, number(u64::try_from(i).expect("small")));
    }

    // The firehose sent one window and waits; the client holds at most that window.
    let held = client.stats();
    assert_eq!(held.buffered_messages, WINDOW as usize, "{held:?}");
    assert_eq!(held.buffered_bytes, WINDOW as usize * MESSAGE);
    assert_eq!(sent.load(Ordering::SeqCst), u64::from(WINDOW));
    assert_eq!(server.stats().running_handlers, 1);

    // Once the reader resumes, everything arrives, in order.
    for i in 0..STREAM {
        let message = stalled.recv().await.expect("recv").expect("a message");
        assert_eq!(message.len(), MESSAGE);
        assert_eq!(message[..8], i.to_le_bytes());
        assert!(client.stats().buffered_messages <= WINDOW as usize);
    }
    assert_eq!(stalled.recv().await.expect("end"), None);
    assert_eq!(sent.load(Ordering::SeqCst), STREAM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_memory() {
    within(a_stalled_reader_stalls_only_its_exchange(Kind::Memory)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_tcp() {
    within(a_stalled_reader_stalls_only_its_exchange(Kind::Tcp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_quic() {
    within(a_stalled_reader_stalls_only_its_exchange(Kind::Quic)).await;
}

/// A bulk upload (client to server) of 16 MiB in 64 KiB messages on one exchange, with a
/// window of 16 messages: credit flows back while the messages flow, and every byte arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_upload_on_one_exchange_arrives_whole() {
    within(async {
        let (client, server) = sessions(Kind::Tcp, session_config(16)).await;
        let received = Arc::new(AtomicU64::new(0));

        struct Sink(Arc<AtomicU64>);

        #[async_trait]
        impl Service for Sink {
            async fn handle(&self, mut exchange: Exchange, _ctx: &Context) {
                while let Ok(Some(message)) = exchange.recv().await {
                    self.0
                        .fetch_add(u64::try_from(message.len()).unwrap_or(0), Ordering::SeqCst);
                }
                let _ = exchange
                    .send_last(number(self.0.load(Ordering::SeqCst)))
                    .await;
            }
        }

        let _server = Endpoint::builder(server)
            .config(config())
            .root(Sink(Arc::clone(&received)))
            .start()
            .expect("server");
        let client = Endpoint::new(client, config()).expect("client");
        let mut upload = client.root().expect("root").begin().await.expect("begin");
        let chunk = Bytes::from(vec![7u8; 64 * 1024]);
        for _ in 0..256 {
            // Zero-copy: every send shares the one buffer.
            upload.send(chunk.clone()).await.expect("send");
        }
        upload.end().await.expect("end");
        let total = upload.recv().await.expect("recv").expect("the total");
        assert_eq!(total, number(256 * 64 * 1024));
        assert_eq!(received.load(Ordering::SeqCst), 256 * 64 * 1024);
    })
    .await;
}
