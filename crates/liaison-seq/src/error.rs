//! `SeqError`: the one error type of the sequencer, for local limits, mode negotiation and
//! protocol violations by the peer.

use liaison_wire::RangeSet;

use crate::Mode;

/// Everything the sequencer can refuse.
///
/// Variants marked *peer violation* ([`SeqError::is_peer_violation`]) come from a message the
/// peer should never have sent; the session layer closes the session with that reason. The
/// sequencer itself is left as it was before the offending message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeqError {
    /// The retransmit buffer is full (backpressure): wait for [`Event::Writable`] and send
    /// again. Payloads are [`bytes::Bytes`], so keeping a clone to retry is cheap.
    ///
    /// [`Event::Writable`]: crate::Event::Writable
    #[error("retransmit buffer full: {frames} frames, {bytes} bytes held")]
    BufferFull {
        /// Frames held.
        frames: usize,
        /// Payload bytes held.
        bytes: usize,
    },
    /// A payload larger than the whole retransmit buffer can never be sent.
    #[error("payload of {len} bytes exceeds the retransmit buffer of {max} bytes")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The retransmit buffer's byte limit.
        max: usize,
    },
    /// Every sequence number of this direction is used; [`reset`](crate::Sequencer::reset)
    /// to start again from 0.
    #[error("sequence numbers of this direction are exhausted")]
    SequenceExhausted,
    /// The server set another session mode than the client requested, and the client's
    /// policy gives up.
    #[error("session mode {requested} requested, but the peer set {offered}")]
    ModeRejected {
        /// What the client asked for.
        requested: Mode,
        /// What the server set.
        offered: Mode,
    },
    /// The sender bowed out (`Ignore-Seq`): these sequence numbers will never be delivered.
    /// The session layer ends a session with this reason after
    /// [`Event::SequenceAbandoned`](crate::Event::SequenceAbandoned) when it does not
    /// re-register.
    #[error("sequence abandoned: {ranges} will never be delivered")]
    Abandoned {
        /// The numbers that were lost.
        ranges: RangeSet,
    },
    /// Peer violation: an acknowledgement of a frame that was never sent.
    #[error("peer acknowledged frames up to {ack}, but only frames below {next} were sent")]
    AckOfUnsent {
        /// The cumulative acknowledgement received (inclusive).
        ack: u64,
        /// The first number never sent.
        next: u64,
    },
    /// Peer violation: a `Need-Seq` naming a frame that was never sent.
    #[error("peer asked for frame {seq}, but only frames below {next} were sent")]
    NeedSeqNotSent {
        /// The largest number asked for.
        seq: u64,
        /// The first number never sent.
        next: u64,
    },
    /// Peer violation: a `Need-Seq` with more ranges than allowed.
    #[error("Need-Seq of {count} ranges exceeds the limit of {max}")]
    TooManyRanges {
        /// Ranges received.
        count: usize,
        /// The limit in force.
        max: usize,
    },
    /// Peer violation: a frame larger than the whole receive buffer, which could never be
    /// accepted.
    #[error("frame of {len} bytes exceeds the receive buffer of {max} bytes")]
    FrameTooLarge {
        /// The payload's length.
        len: usize,
        /// The receive buffer's byte limit.
        max: usize,
    },
    /// A resume (docs/PROTOCOL.md §10) cannot carry on: the peer states it received every
    /// frame below `peer_next`, which is either beyond what was sent (a violation), or
    /// below frames this side no longer holds (acknowledged before, or forgotten with
    /// [`Overflow::DropOldest`](crate::Overflow::DropOldest)).
    #[error(
        "cannot resume from {peer_next}: frames {held} to {next} are held (below {next} sent)"
    )]
    ResumeMismatch {
        /// The peer's next expected number.
        peer_next: u64,
        /// The oldest number this side still holds (or acknowledged).
        held: u64,
        /// The first number never sent.
        next: u64,
    },
}

impl SeqError {
    /// Whether the error was caused by a message from the peer that breaks the protocol
    /// (as opposed to a local limit or a negotiation outcome).
    pub fn is_peer_violation(&self) -> bool {
        matches!(
            self,
            Self::AckOfUnsent { .. }
                | Self::NeedSeqNotSent { .. }
                | Self::TooManyRanges { .. }
                | Self::FrameTooLarge { .. }
                | Self::ResumeMismatch { .. }
        )
    }
}
