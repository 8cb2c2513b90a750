//! Sequencing for liaison sessions, sans-IO: per-direction sequence numbers, ordered or
//! unordered delivery exactly once, cumulative acks, gap detection answered by `Need-Seq`
//! (`12..17,19`), retransmission from a bounded buffer, and the `Ignore-Seq` bow-out when
//! a requested frame is gone.
//!
//! What it does not do: no I/O, no tasks, no clock reads (time comes in as [`Instant`]
//! arguments), no frame encoding (it hands out and takes [`Transmit`] messages, which the
//! session layer maps onto liaison-wire frames), no session establishment. Mode negotiation
//! is the small state type in [`ModeRequest`] / [`ServerModePolicy`], called by the session's
//! configuration step.
//!
//! # The rules (docs/PROTOCOL.md §8)
//!
//! - Each direction numbers its messages from 0 (or a negotiated start), one number each.
//!   Cumulative acks (inclusive) ride on outgoing data; a standalone ack goes out after the
//!   ack delay, after a number of frames, on a duplicate, or when a hole closes.
//! - **Ordered mode** holds frames that arrive ahead of a gap (bounded in frames and bytes)
//!   and delivers each message exactly once, in order. **Unordered mode** delivers each
//!   message exactly once as it arrives, tracking the numbers seen ahead of the first gap in
//!   a bounded [`RangeSet`]. Everything else is the same in both modes.
//! - A frame ahead of the next expected number triggers a `Need-Seq` listing what is missing
//!   at once; while it is outstanding, later arrivals only ask for holes not yet asked for,
//!   and the whole list is repeated while the gap persists, about one estimated round trip
//!   after the request or the last progress, backed off.
//! - The sender keeps every unacknowledged message in a bounded retransmit buffer; a full
//!   buffer is backpressure ([`SeqError::BufferFull`]). On `Need-Seq` it retransmits from
//!   the smallest number up and holds new messages back until the request is acknowledged
//!   (the peer acks a closed gap at once); a retransmission timeout (with backoff) resends
//!   the oldest unacknowledged frame.
//! - The timers derive from a round-trip estimate (RFC 6298 / RFC 9002 smoothing, Karn's
//!   rule: never sampled from a retransmitted frame), [`Sequencer::rtt`]; [`Config`] gives
//!   the formulas. Until the first sample they use the configured initial timeout.
//! - A sender asked for a frame it no longer holds (possible only with
//!   [`Overflow::DropOldest`]) bows out with [`Transmit::IgnoreSeq`]; the receiver reports
//!   [`Event::SequenceAbandoned`] with exactly the numbers lost, never a silent gap. The
//!   session ends with that reason; a new one starts from 0 ([`Sequencer::reset`]).
//! - Nothing from the peer panics: violations are typed [`SeqError`]s.
//!
//! [`Sequencer`]'s docs say in which order a driver calls it. Two sequencers passing a few
//! messages by hand, one of them lost:
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use liaison_seq::{Config, Event, Mode, Sequencer, Transmit};
//!
//! let now = Instant::now();
//! let mut client = Sequencer::new(Mode::Ordered, Config::default());
//! let mut server = Sequencer::new(Mode::Ordered, Config::default());
//!
//! client.send(Bytes::from_static(b"hello"))?;
//! client.send(Bytes::from_static(b"world"))?;
//! let _lost = client.poll_transmit(now).expect("frame 0");
//! let second = client.poll_transmit(now).expect("frame 1");
//!
//! // Frame 1 arrives ahead of 0: the server keeps it and asks for 0 at once.
//! server.handle(now, second)?;
//! let need = server.poll_transmit(now).expect("a Need-Seq");
//! assert!(matches!(&need, Transmit::NeedSeq { ranges, .. } if ranges.to_string() == "0"));
//!
//! // The client retransmits 0; the server delivers both, in order, and acks them.
//! client.handle(now, need)?;
//! let again = client.poll_transmit(now).expect("frame 0 again");
//! server.handle(now, again)?;
//! let mut delivered = Vec::new();
//! while let Some(event) = server.poll_event() {
//!     if let Event::Deliver { seq, payload } = event {
//!         delivered.push((seq, payload));
//!     }
//! }
//! assert_eq!(delivered, [(0, Bytes::from("hello")), (1, Bytes::from("world"))]);
//!
//! let ack = server.poll_transmit(now).expect("an ack");
//! assert_eq!(ack, Transmit::Ack { ack: 1 });
//! client.handle(now, ack)?;
//! assert!(client.is_flushed());
//! # Ok::<(), liaison_seq::SeqError>(())
//! ```
//!
//! [`Instant`]: std::time::Instant
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod error;
mod message;
mod mode;
mod recv;
mod rtt;
mod send;
mod send_buffer;
mod sequencer;
mod timer;

pub use config::{Config, Overflow};
pub use error::SeqError;
pub use liaison_wire::RangeSet;
pub use message::{Buffered, Event, Transmit};
pub use mode::{ClientModePolicy, Mode, ModeNack, ModeOutcome, ModeRequest, ServerModePolicy};
pub use rtt::RttEstimate;
pub use sequencer::Sequencer;
