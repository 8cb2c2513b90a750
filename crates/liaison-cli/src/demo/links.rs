//! The raw lossy link of the demo: what a fault-injected transport does to frames when no
//! sequencing runs over it.

use std::collections::HashSet;

use bytes::Bytes;
use liaison_transport::fault::{FaultConfig, FaultyTransport};
use liaison_transport::{memory, Transport};
use liaison_wire::{Frame, Limits};

use crate::error::CliError;

/// The payload of frame `n`: its number, then filler.
fn payload(n: u64) -> Bytes {
    let mut body = Vec::with_capacity(56);
    body.extend_from_slice(&n.to_le_bytes());
    body.extend(std::iter::repeat_n(u8::try_from(n % 251).unwrap_or(0), 48));
    Bytes::from(body)
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
            tx.send(Frame::data(1, payload(n)).with_seq(n).to_bytes())
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
