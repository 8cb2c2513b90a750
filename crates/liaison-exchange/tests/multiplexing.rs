//! 10,000 concurrent exchanges on one session, over memory, TCP and QUIC: each a
//! multi-message operation whose sends and receives interleave with every other exchange's.
//! Every message must reach its own exchange, intact and in order, on both sides.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use common::{session_config, sessions, within, Kind};
use liaison_exchange::{Context, Endpoint, Exchange, ExchangeConfig, Service};

const EXCHANGES: u64 = 10_000;
/// Messages each way on every exchange.
const MESSAGES: u64 = 4;

/// One message: the exchange's tag, the message's index, and a body derived from both.
fn message(tag: u64, index: u64) -> Bytes {
    let len = usize::try_from((tag * 7 + index * 13) % 200).unwrap_or(0);
    let mut out = BytesMut::with_capacity(16 + len);
    out.put_u64_le(tag);
    out.put_u64_le(index);
    for j in 0..len {
        out.put_u8(u8::try_from((tag + index + j as u64) % 251).unwrap_or(0));
    }
    out.freeze()
}

fn header(message: &[u8]) -> Option<(u64, u64)> {
    let tag = u64::from_le_bytes(message.get(0..8)?.try_into().ok()?);
    let index = u64::from_le_bytes(message.get(8..16)?.try_into().ok()?);
    Some((tag, index))
}

/// Checks that every message of an exchange carries the same tag, in index order, intact,
/// and answers each with the exchange id it arrived on followed by the message.
struct Tagged {
    violations: Arc<AtomicU64>,
    served: Arc<AtomicU64>,
}

#[async_trait]
impl Service for Tagged {
    async fn handle(&self, mut exchange: Exchange, ctx: &Context) {
        let mut tag = None;
        let mut next = 0;
        loop {
            match exchange.recv().await {
                Ok(Some(received)) => {
                    let ok = match header(&received) {
                        Some((t, index)) => {
                            let first = *tag.get_or_insert(t);
                            first == t && index == next && received == message(t, index)
                        }
                        None => false,
                    };
                    if !ok {
                        self.violations.fetch_add(1, Ordering::Relaxed);
                    }
                    next += 1;
                    let mut reply = BytesMut::with_capacity(8 + received.len());
                    reply.put_u64_le(ctx.exchange_id());
                    reply.put_slice(&received);
                    if exchange.send(reply.freeze()).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.violations.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        if next != MESSAGES {
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
        if exchange.end().await.is_ok() {
            self.served.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Checks a reply: it names this exchange and carries message `index` of `tag` intact.
fn check_reply(exchange: &Exchange, reply: Option<Bytes>, tag: u64, index: u64) {
    let reply = reply.expect("a reply");
    let on = u64::from_le_bytes(reply[0..8].try_into().expect("8 bytes"));
    assert_eq!(on, exchange.id(), "reply from another exchange");
    assert_eq!(reply.slice(8..), message(tag, index), "reply altered");
}

/// One operation: sends and receives interleaved (send 0, send 1, receive 0, send 2,
/// receive 1, ...), then the end of both directions.
async fn operation(client: Endpoint, tag: u64) {
    let mut exchange = client.root().expect("root").begin().await.expect("begin");
    exchange.send(message(tag, 0)).await.expect("send");
    for index in 1..MESSAGES {
        if index == MESSAGES - 1 {
            exchange
                .send_last(message(tag, index))
                .await
                .expect("send last");
        } else {
            exchange.send(message(tag, index)).await.expect("send");
        }
        let reply = exchange.recv().await.expect("recv");
        check_reply(&exchange, reply, tag, index - 1);
        tokio::task::yield_now().await;
    }
    let reply = exchange.recv().await.expect("recv");
    check_reply(&exchange, reply, tag, MESSAGES - 1);
    assert_eq!(exchange.recv().await.expect("end"), None);
}

async fn ten_thousand_concurrent_exchanges(kind: Kind) {
    let limit = 16_384;
    let (client, server) = sessions(kind, session_config(limit)).await;
    let config = {
        let mut config = ExchangeConfig::default();
        config.max_exchanges = limit;
        // A small window, so credit flows back and forth during the run.
        config.window = 2;
        config
    };
    let violations = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let server = Endpoint::builder(server)
        .config(config)
        .root(Tagged {
            violations: Arc::clone(&violations),
            served: Arc::clone(&served),
        })
        .start()
        .expect("server endpoint");
    let client = Endpoint::builder(client)
        .config(config)
        .start()
        .expect("client endpoint");

    let tasks: Vec<_> = (0..EXCHANGES)
        .map(|tag| tokio::spawn(operation(client.clone(), tag)))
        .collect();
    for task in tasks {
        task.await.expect("operation");
    }

    // A handler counts its exchange once its `end` returns, which can be just after the
    // client saw that end: give the server's handlers a bounded time to settle.
    let settled = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while served.load(Ordering::Relaxed) < EXCHANGES {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(violations.load(Ordering::Relaxed), 0);
    assert!(settled.is_ok(), "the server's handlers did not all finish");
    assert_eq!(served.load(Ordering::Relaxed), EXCHANGES);
    let stats = client.stats();
    assert_eq!(
        (stats.outgoing, stats.tracked, stats.buffered_messages),
        (0, 0, 0)
    );
    client.close("done").await;
    assert!(server.closed().await.is_graceful());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    within(ten_thousand_concurrent_exchanges(Kind::Memory)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp() {
    within(ten_thousand_concurrent_exchanges(Kind::Tcp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic() {
    within(ten_thousand_concurrent_exchanges(Kind::Quic)).await;
}
