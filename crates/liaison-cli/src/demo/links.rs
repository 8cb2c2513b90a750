//! The transport part of the demo: frames echoed over every transport, and a lossy link.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_transport::fault::{FaultConfig, FaultyTransport};
use liaison_transport::{
    bind, connect, memory, FrameReceiver, FrameSender, Loopback, LoopbackKind, Transport,
};
use liaison_wire::{Frame, Limits};

use crate::error::CliError;

/// The transports the demo runs over.
pub(crate) const TRANSPORTS: [LoopbackKind; 4] = LoopbackKind::RELIABLE;

/// What the echo run over one transport observed.
#[derive(Debug)]
pub(crate) struct EchoReport {
    pub(crate) transport: LoopbackKind,
    pub(crate) reliable: bool,
    pub(crate) ordered: bool,
    pub(crate) connect: Duration,
    pub(crate) frames: u64,
    pub(crate) echoed: u64,
    pub(crate) intact: u64,
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
}

/// The payload of frame `n`: its number and exchange, then filler, so corruption shows.
fn payload(n: u64, exchange: u64) -> Bytes {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&n.to_le_bytes());
    body.extend_from_slice(&exchange.to_le_bytes());
    body.extend(std::iter::repeat_n(u8::try_from(n % 251).unwrap_or(0), 48));
    Bytes::from(body)
}

/// Sends `frames` data frames spread over `exchanges` to an echo server over `kind` and checks
/// every echo: same exchange, same sequence number, same payload.
pub(crate) async fn echo(
    kind: LoopbackKind,
    frames: u64,
    exchanges: u64,
) -> Result<EchoReport, CliError> {
    let Loopback { address, config } = Loopback::new(kind)?;
    let limits = Limits::default();
    let mut listener = bind(&address, &config).await?;
    let bound = listener.local_addr();
    let server = tokio::spawn(async move {
        let transport = listener.accept().await?;
        let (mut tx, mut rx) = transport.split();
        while let Some(bytes) = rx.recv().await? {
            let frame = Frame::decode(bytes, &limits)?;
            let seq = frame.sequence().unwrap_or_default();
            tx.send(frame.with_ack(seq).to_bytes()).await?;
        }
        tx.close().await?;
        Ok::<(), CliError>(())
    });

    let start = Instant::now();
    let transport = connect(&bound, &config).await?;
    let connect_time = start.elapsed();
    let properties = transport.info().properties;
    let (mut tx, mut rx) = transport.split();
    let sender = tokio::spawn(async move {
        let mut bytes = 0u64;
        for n in 0..frames {
            let exchange = 1 + n % exchanges.max(1);
            let frame = Frame::data(exchange, payload(n, exchange))
                .with_seq(n)
                .to_bytes();
            bytes += frame.len() as u64;
            tx.feed(frame).await?;
            if n % 64 == 63 {
                tx.flush().await?;
            }
        }
        tx.flush().await?;
        Ok::<(FramesSent, Box<dyn FrameSender>), CliError>((FramesSent(bytes), tx))
    });
    let (echoed, intact) = receive_echoes(&mut rx, frames, exchanges, &limits).await?;
    let (FramesSent(bytes), mut tx) = sender
        .await
        .map_err(|e| CliError::Check(format!("sender task: {e}")))??;
    tx.close().await?;
    server
        .await
        .map_err(|e| CliError::Check(format!("server task: {e}")))??;
    Ok(EchoReport {
        transport: kind,
        reliable: properties.reliable,
        ordered: properties.ordered,
        connect: connect_time,
        frames,
        echoed,
        intact,
        bytes,
        elapsed: start.elapsed(),
    })
}

struct FramesSent(u64);

async fn receive_echoes(
    rx: &mut Box<dyn FrameReceiver>,
    frames: u64,
    exchanges: u64,
    limits: &Limits,
) -> Result<(u64, u64), CliError> {
    let (mut echoed, mut intact) = (0, 0);
    while echoed < frames {
        let Some(bytes) = rx.recv().await? else {
            break;
        };
        let frame = Frame::decode(bytes, limits)?;
        echoed += 1;
        let n = frame.sequence().unwrap_or(u64::MAX);
        let exchange = 1 + n % exchanges.max(1);
        if frame.exchange == exchange
            && frame.acknowledgement() == Some(n)
            && frame.payload == payload(n, exchange)
        {
            intact += 1;
        }
    }
    Ok((echoed, intact))
}

/// What went over the fault-injected link, counted at both ends.
#[derive(Debug)]
pub(crate) struct LossyReport {
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
    pub(crate) received: u64,
    pub(crate) unique: u64,
    pub(crate) missing: u64,
    pub(crate) out_of_order: u64,
}

/// Sends `frames` numbered frames one way over a memory link with 10% drop, 5% duplication and
/// 5% reordering, and counts what arrives. No sequencing runs here: the link's raw behaviour.
pub(crate) async fn lossy(frames: u64, seed: u64) -> Result<LossyReport, CliError> {
    let (a, b) = memory::pair(1024, liaison_transport::DEFAULT_MAX_FRAME);
    let faults = FaultConfig::default()
        .with_seed(seed)
        .with_drop(0.10)
        .with_duplicate(0.05)
        .with_reorder(0.05);
    let faulty = FaultyTransport::new(Box::new(a), faults);
    let handle = faulty.handle();
    let (mut tx, _rx_a) = Box::new(faulty).split();
    let (_tx_b, mut rx) = Box::new(b).split();
    let limits = Limits::default();
    let sender = tokio::spawn(async move {
        for n in 0..frames {
            tx.send(Frame::data(1, payload(n, 1)).with_seq(n).to_bytes())
                .await?;
        }
        tx.close().await?;
        Ok::<(), CliError>(())
    });
    let (mut received, mut out_of_order, mut highest) = (0u64, 0u64, None::<u64>);
    let mut seen = HashSet::new();
    while let Some(bytes) = rx.recv().await? {
        let seq = Frame::decode(bytes, &limits)?
            .sequence()
            .unwrap_or_default();
        received += 1;
        if highest.is_some_and(|h| seq < h) {
            out_of_order += 1;
        }
        highest = highest.max(Some(seq));
        seen.insert(seq);
    }
    sender
        .await
        .map_err(|e| CliError::Check(format!("sender task: {e}")))??;
    let stats = handle.stats();
    let unique = seen.len() as u64;
    Ok(LossyReport {
        sent: frames,
        dropped: stats.dropped,
        duplicated: stats.duplicated,
        reordered: stats.reordered,
        received,
        unique,
        missing: frames - unique,
        out_of_order,
    })
}
