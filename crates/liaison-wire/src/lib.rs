//! liaison's frame format: the fixed frame header, the frame kinds and flags, the limits a
//! decoder enforces, the version offer that opens a connection, and the payload codec.
//!
//! This crate does no I/O: it turns frames into bytes and bytes into frames, and refuses
//! malformed or oversized input with a typed [`WireError`] before allocating anything the
//! input claims. It does not know what the payloads of control frames mean beyond the few
//! it defines itself ([`VersionOffer`], [`RangeSet`], the credit of `ExchangeCredit`); the
//! session, sequencing, exchange and resume layers define the rest. The wire format is
//! specified in `docs/PROTOCOL.md`; section numbers (§) in these docs refer to it.
//!
//! - [`Frame`]: a 32-byte little-endian [`Header`] plus a payload; [`Frame::encode`],
//!   [`Frame::decode`] for message transports, [`Frame::decode_from`] for byte streams;
//!   [`Frame::encode_header`] for writers that send the header and the payload without
//!   joining them.
//! - [`FrameKind`], [`Flags`]: what a frame is and how to read its header fields.
//! - [`Limits`]: the largest payloads and range sets a decoder accepts.
//! - [`VersionOffer`], [`MAGIC`], [`PROTOCOL_VERSION`]: the first frame of a connection.
//! - [`Codec`], [`BincodeCodec`] ([`DefaultCodec`]): serde payloads, bounded by a limit.
//! - [`RangeSet`]: the missing sequence numbers a `NeedSeq` frame lists.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use liaison_wire::{Codec, DefaultCodec, Frame, FrameKind, Limits};
//!
//! let codec = DefaultCodec::default();
//! let limits = Limits::default();
//!
//! // A message of exchange 7, sequence number 3, last of its direction.
//! let payload = codec.encode(&("get", 42u32))?;
//! let frame = Frame::data(7, payload).with_seq(3).with_end();
//!
//! // Over a byte stream: frames arrive in pieces and are decoded once whole.
//! let bytes = frame.to_bytes();
//! let mut stream = BytesMut::new();
//! stream.extend_from_slice(&bytes[..10]);
//! assert_eq!(Frame::decode_from(&mut stream, &limits)?, None);
//! stream.extend_from_slice(&bytes[10..]);
//! let received = Frame::decode_from(&mut stream, &limits)?.expect("a whole frame");
//!
//! assert_eq!(received, frame);
//! assert_eq!(received.kind, FrameKind::Data);
//! assert_eq!(received.sequence(), Some(3));
//! let (verb, key): (String, u32) = codec.decode(&received.payload)?;
//! assert_eq!((verb.as_str(), key), ("get", 42));
//!
//! // Over a message transport: one message is one frame.
//! assert_eq!(Frame::decode(bytes, &limits)?, frame);
//! # Ok::<(), liaison_wire::WireError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod codec;
mod error;
mod flags;
mod frame;
mod header;
mod kind;
mod limits;
mod range_set;
mod version;

pub use codec::{BincodeCodec, Codec, DefaultCodec};
pub use error::WireError;
pub use flags::Flags;
pub use frame::Frame;
pub use header::{Header, HEADER_LEN};
pub use kind::FrameKind;
pub use limits::{
    Limits, DEFAULT_MAX_CONTROL_PAYLOAD, DEFAULT_MAX_FRAME_PAYLOAD, DEFAULT_MAX_RANGES,
};
pub use range_set::{ParseRangeSetError, RangeSet};
pub use version::{
    VersionOffer, MAGIC, MAX_OFFERED_VERSIONS, PROTOCOL_VERSION, SUPPORTED_VERSIONS,
};
