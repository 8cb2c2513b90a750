//! Small readers and builders the per-feature modules share: drain a sequencer's outputs,
//! pick sequence numbers out of them, build a data message.

use std::time::Instant;

use bytes::Bytes;
use liaison_seq::{Sequencer, Transmit};

/// Everything the sequencer has to send at `now`.
pub(crate) fn transmits(seq: &mut Sequencer, now: Instant) -> Vec<Transmit> {
    std::iter::from_fn(|| seq.poll_transmit(now)).collect()
}

/// The sequence numbers of the data messages among `messages`, in order.
pub(crate) fn data_seqs(messages: &[Transmit]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            Transmit::Data { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

/// A data message numbered `seq`, carrying no ack.
pub(crate) fn data(seq: u64) -> Transmit {
    Transmit::Data {
        seq,
        ack: None,
        payload: Bytes::from_static(b"payload"),
    }
}
