//! The sequencer's messages: `Transmit` (what goes to the peer and comes from it) and
//! `Event` (what the application learns).

use bytes::Bytes;
use liaison_wire::RangeSet;

/// A sequencing message: what [`poll_transmit`](crate::Sequencer::poll_transmit) yields for
/// the peer, and what [`handle`](crate::Sequencer::handle) takes from it.
///
/// The session layer maps each variant onto a frame (docs/PROTOCOL.md §8):
///
/// | variant     | frame                                                                  |
/// |-------------|------------------------------------------------------------------------|
/// | `Data`      | a sequenced frame: `seq` in the header with `SEQ`, `ack` with `ACK` when `Some` |
/// | `Ack`       | `Ack` (§8.1): empty payload, `ack` in the header with `ACK`            |
/// | `NeedSeq`   | `NeedSeq` (§8.2): the [`RangeSet`] in its binary form, `ack` as for `Data` |
/// | `IgnoreSeq` | `Bye` with `IGNORE_SEQ` (§8.3), `next` in the header's `seq` with `SEQ` |
///
/// Every `ack` is cumulative and inclusive (§8.1): every frame numbered up to and including
/// `ack` arrived. It is `None` while nothing has arrived in that direction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transmit {
    /// An application message (`Seq: seq`), new or retransmitted, carrying the cumulative
    /// ack of the other direction.
    Data {
        /// The message's sequence number.
        seq: u64,
        /// Every frame of the other direction up to and including this number arrived.
        ack: Option<u64>,
        /// The opaque payload.
        payload: Bytes,
    },
    /// A standalone cumulative ack, sent when no data carried one within the ack delay, after
    /// a number of frames, on a duplicate, or when a hole closed.
    Ack {
        /// Every frame up to and including this number arrived.
        ack: u64,
    },
    /// A NACK with `Need-Seq`: the numbers missing below the highest received, to be
    /// retransmitted from the smallest up. Its text form is `12..17,19`.
    NeedSeq {
        /// The missing numbers.
        ranges: RangeSet,
        /// Every frame up to and including this number arrived.
        ack: Option<u64>,
    },
    /// The bow-out (`Ignore-Seq: *`): the sender no longer holds some requested frames.
    /// Every number below `next` that the receiver lacks is abandoned; the receiver reports
    /// them ([`Event::SequenceAbandoned`]) and drops its outstanding `Need-Seq`. The session
    /// then ends with that reason (§8.3), never with silent loss; a new session numbers from
    /// 0 again ([`Sequencer::reset`](crate::Sequencer::reset)).
    IgnoreSeq {
        /// The oldest number the sender still holds: everything below it is given up.
        next: u64,
    },
}

/// What the application learns from [`poll_event`](crate::Sequencer::poll_event), in the
/// order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message from the peer, delivered exactly once: in sequence order in ordered mode,
    /// on arrival in unordered mode.
    Deliver {
        /// The message's sequence number.
        seq: u64,
        /// The opaque payload.
        payload: Bytes,
    },
    /// The peer bowed out (`Ignore-Seq`): these numbers will never be delivered. It comes
    /// before the deliveries of frames held past them, so the loss is never silent. The
    /// session layer ends the session with [`SeqError::Abandoned`] (docs/PROTOCOL.md §8.3);
    /// a new session starts from 0 ([`Sequencer::reset`]).
    ///
    /// [`SeqError::Abandoned`]: crate::SeqError::Abandoned
    /// [`Sequencer::reset`]: crate::Sequencer::reset
    SequenceAbandoned {
        /// The numbers lost.
        ranges: RangeSet,
    },
    /// This side bowed out (sent `Ignore-Seq`): the peer asked for frames no longer held
    /// (only with [`Overflow::DropOldest`](crate::Overflow::DropOldest)).
    BowedOut {
        /// The unacknowledged numbers the bow-out covers; the peer reports the ones it
        /// actually lacks as [`Event::SequenceAbandoned`].
        ranges: RangeSet,
    },
    /// The retransmit buffer has room again after [`SeqError::BufferFull`](crate::SeqError::BufferFull).
    Writable,
}

/// How much the sequencer holds right now; each figure stays within its [`Config`] bound.
///
/// [`Config`]: crate::Config
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Buffered {
    /// Frames in the retransmit buffer (sent or waiting to be sent, not acknowledged).
    pub send_frames: usize,
    /// Payload bytes in the retransmit buffer.
    pub send_bytes: usize,
    /// Frames held for reordering plus delivered messages not yet taken.
    pub recv_frames: usize,
    /// Payload bytes of those.
    pub recv_bytes: usize,
}
