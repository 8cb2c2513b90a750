//! The character device of the async-sessions design: a read is a two-message operation
//! (`READ`, then `IPC_READ`, then wait for both answers) that blocks until data arrives;
//! a write is the same shape. One exchange stays blocked in a read while another writes and
//! completes, on one session, and the read then completes with what was written.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use common::{session_config, sessions, within, Kind};
use liaison_exchange::{Context, Endpoint, Exchange, ExchangeConfig, Remote, Service};
use tokio::sync::{mpsc, Notify};

/// A device holding bytes written and not yet read.
#[derive(Default)]
struct Device {
    data: Mutex<VecDeque<u8>>,
    written: Notify,
}

/// Serves one operation per exchange: `READ` + `IPC_READ` (answers `ack`, then the data
/// once there is some), or `WRITE` + `IPC_WRITE` carrying the data (answers `ack`,
/// `written`).
struct Chardev {
    device: Arc<Device>,
    reader_waiting: mpsc::UnboundedSender<u64>,
}

impl Chardev {
    async fn read(&self, exchange: &mut Exchange, ctx: &Context) -> Option<()> {
        exchange.send(Bytes::from_static(b"ack")).await.ok()?;
        let ipc = exchange.recv().await.ok()??;
        if ipc != "IPC_READ" {
            return None;
        }
        let data = loop {
            let notified = self.device.written.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let data: Vec<u8> = self.device.data.lock().ok()?.drain(..).collect();
            if !data.is_empty() {
                break data;
            }
            let _ = self.reader_waiting.send(ctx.exchange_id());
            tokio::select! {
                () = notified => {}
                () = ctx.cancelled() => return None,
            }
        };
        exchange.send_last(Bytes::from(data)).await.ok()
    }

    async fn write(&self, exchange: &mut Exchange) -> Option<()> {
        exchange.send(Bytes::from_static(b"ack")).await.ok()?;
        let data = exchange.recv().await.ok()??;
        let payload = data.strip_prefix(b"IPC_WRITE ")?;
        self.device.data.lock().ok()?.extend(payload);
        self.device.written.notify_waiters();
        exchange
            .send_last(Bytes::from_static(b"written"))
            .await
            .ok()
    }
}

#[async_trait]
impl Service for Chardev {
    async fn handle(&self, mut exchange: Exchange, ctx: &Context) {
        match exchange.recv().await {
            Ok(Some(op)) if op == "READ" => {
                let _ = self.read(&mut exchange, ctx).await;
            }
            Ok(Some(op)) if op == "WRITE" => {
                let _ = self.write(&mut exchange).await;
            }
            _ => {
                let _ = exchange.fail("unknown operation").await;
            }
        }
    }
}

/// `chardev_read()`: R1 `READ`, R2 `IPC_READ`, wait for R1's answer, wait for R2's.
async fn chardev_read(device: &Remote) -> Bytes {
    let mut exchange = device.begin().await.expect("begin");
    exchange
        .send(Bytes::from_static(b"READ"))
        .await
        .expect("R1");
    exchange
        .send_last(Bytes::from_static(b"IPC_READ"))
        .await
        .expect("R2");
    assert_eq!(
        exchange.recv().await.expect("R1 answer"),
        Some("ack".into())
    );
    let data = exchange.recv().await.expect("R2 answer").expect("data");
    assert_eq!(exchange.recv().await.expect("end"), None);
    data
}

/// `chardev_write()`: the same shape.
async fn chardev_write(device: &Remote, data: &str) {
    let mut exchange = device.begin().await.expect("begin");
    exchange
        .send(Bytes::from_static(b"WRITE"))
        .await
        .expect("W1");
    exchange
        .send_last(Bytes::from(format!("IPC_WRITE {data}")))
        .await
        .expect("W2");
    assert_eq!(
        exchange.recv().await.expect("W1 answer"),
        Some("ack".into())
    );
    assert_eq!(
        exchange.recv().await.expect("W2 answer"),
        Some("written".into())
    );
    assert_eq!(exchange.recv().await.expect("end"), None);
}

async fn a_blocked_read_does_not_block_a_write(kind: Kind) {
    let (client, server) = sessions(kind, session_config(64)).await;
    let (waiting_tx, mut waiting) = mpsc::unbounded_channel();
    let _server = Endpoint::builder(server)
        .root(Chardev {
            device: Arc::default(),
            reader_waiting: waiting_tx,
        })
        .start()
        .expect("server");
    let client = Endpoint::new(client, ExchangeConfig::default()).expect("client");
    let device = client.root().expect("root");

    // Two fibrils read concurrently; both block.
    let reader = device.clone();
    let readers = tokio::spawn(async move {
        let (a, b) = tokio::join!(chardev_read(&reader), chardev_read(&reader));
        let mut all = a.to_vec();
        all.extend_from_slice(&b);
        all.sort_unstable();
        all
    });
    let first = waiting.recv().await.expect("a reader blocks");
    let mut second = waiting.recv().await.expect("another reader blocks");
    while second == first {
        second = waiting.recv().await.expect("another reader blocks");
    }

    // While both reads are blocked, a write runs to completion on the same session.
    assert_eq!(client.stats().outgoing, 2);
    chardev_write(&device, "a").await;
    // One reader took the byte; the other is still blocked in its read, on its own
    // exchange, and a second write completes past it too.
    assert!(!readers.is_finished());
    chardev_write(&device, "b").await;
    let data = readers.await.expect("readers");
    assert_eq!(data, b"ab");
    assert_eq!(client.stats().outgoing, 0);
}

#[tokio::test]
async fn memory() {
    within(a_blocked_read_does_not_block_a_write(Kind::Memory)).await;
}

#[tokio::test]
async fn tcp() {
    within(a_blocked_read_does_not_block_a_write(Kind::Tcp)).await;
}

#[tokio::test]
async fn quic() {
    within(a_blocked_read_does_not_block_a_write(Kind::Quic)).await;
}
