//! The frame codec of stream transports (TCP, Unix, QUIC streams): a length prefix per frame and an end-of-stream marker.
//!
//! Wire layout, repeated until the end of the stream:
//!
//! ```text
//! +----------------------+---------------------------+
//! | length: u32, big end | payload: `length` bytes   |
//! +----------------------+---------------------------+
//! ```
//!
//! A length of `0xFFFF_FFFF` is the end-of-stream marker: it carries no payload and is the last
//! thing a sender writes when it closes gracefully. Apart from the marker, the layout is the one of
//! tokio-util's `LengthDelimitedCodec` with its defaults (4-byte big-endian length, no
//! adjustment). The marker is what tells a clean close (`Ok(None)` for the receiver) from a peer
//! that vanished (the byte stream ends without it: [`TransportError::ConnectionLost`]), since a
//! process that dies or drops its socket also ends the byte stream with a plain FIN.
//!
//! The decoder checks the announced length against the receiver's limit before anything
//! reserves memory for the payload.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::TransportError;

/// Largest frame a stream transport can carry: `u32::MAX - 1` bytes (`u32::MAX` is the
/// end-of-stream marker).
pub const MAX_STREAM_FRAME: usize = 0xFFFF_FFFE;

/// The length value that marks the end of the stream.
const END_OF_STREAM: u32 = u32::MAX;

/// Size of the length prefix.
const PREFIX: usize = 4;

/// One unit on a framed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamItem {
    /// A frame.
    Data(Bytes),
    /// The graceful end-of-stream marker.
    End,
}

/// Encodes and decodes [`StreamItem`]s; see the module documentation for the layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A codec that refuses frames over `max_frame` bytes (capped at [`MAX_STREAM_FRAME`]).
    pub(crate) fn new(max_frame: usize) -> Self {
        Self {
            max_frame: max_frame.min(MAX_STREAM_FRAME),
        }
    }

    /// Refuses a frame over the limit.
    pub(crate) fn check(&self, size: usize) -> Result<(), TransportError> {
        if size > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                size,
                max: self.max_frame,
            });
        }
        Ok(())
    }
}

impl FrameCodec {
    /// The length prefix of a frame of `size` bytes, or [`TransportError::FrameTooLarge`].
    pub(crate) fn prefix(&self, size: usize) -> Result<[u8; PREFIX], TransportError> {
        self.check(size)?;
        let len = u32::try_from(size).map_err(|_| TransportError::FrameTooLarge {
            size,
            max: self.max_frame,
        })?;
        Ok(len.to_be_bytes())
    }

    /// The end-of-stream marker.
    pub(crate) fn end_marker() -> [u8; PREFIX] {
        END_OF_STREAM.to_be_bytes()
    }

    /// The announced length at the start of `src`, if its prefix is there.
    fn announced(src: &[u8]) -> Option<u32> {
        let prefix = src.first_chunk::<PREFIX>()?;
        Some(u32::from_be_bytes(*prefix))
    }

    /// Bytes the frame at the start of `src` takes on the stream, prefix included, once its
    /// prefix is there and announces a frame within the limit; `None` otherwise (no prefix
    /// yet, the end marker, or a length [`decode`](Self::decode) refuses).
    pub(crate) fn frame_len(&self, src: &[u8]) -> Option<usize> {
        let announced = Self::announced(src)?;
        if announced == END_OF_STREAM {
            return None;
        }
        let size = usize::try_from(announced).ok()?;
        self.check(size).ok()?;
        Some(PREFIX + size)
    }

    /// Takes the next whole item off the front of `src`; `Ok(None)` until one is there. A
    /// length over the limit fails before any memory is reserved for it.
    pub(crate) fn decode(&self, src: &mut BytesMut) -> Result<Option<StreamItem>, TransportError> {
        let Some(announced) = Self::announced(src) else {
            return Ok(None);
        };
        if announced == END_OF_STREAM {
            src.advance(PREFIX);
            return Ok(Some(StreamItem::End));
        }
        let size = usize::try_from(announced).map_err(|_| TransportError::FrameTooLarge {
            size: usize::MAX,
            max: self.max_frame,
        })?;
        self.check(size)?;
        if src.len() < PREFIX + size {
            return Ok(None);
        }
        src.advance(PREFIX);
        Ok(Some(StreamItem::Data(src.split_to(size).freeze())))
    }

    /// [`decode`](Self::decode) once the stream ended: bytes left that make no whole item mean
    /// the stream was cut in the middle of a frame.
    pub(crate) fn decode_eof(
        &self,
        src: &mut BytesMut,
    ) -> Result<Option<StreamItem>, TransportError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() => Ok(None),
            None => Err(TransportError::lost(format!(
                "stream ended in the middle of a frame ({} bytes pending)",
                src.len()
            ))),
        }
    }

    /// Appends `item` to `dst` (the layout the sender's queue writes).
    #[cfg(test)]
    fn encode(&self, item: StreamItem, dst: &mut BytesMut) -> Result<(), TransportError> {
        match item {
            StreamItem::Data(frame) => {
                let prefix = self.prefix(frame.len())?;
                dst.extend_from_slice(&prefix);
                dst.extend_from_slice(&frame);
            }
            StreamItem::End => dst.extend_from_slice(&Self::end_marker()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(codec: &FrameCodec, frames: &[Vec<u8>]) -> BytesMut {
        let mut wire = BytesMut::new();
        for frame in frames {
            codec
                .encode(StreamItem::Data(Bytes::from(frame.clone())), &mut wire)
                .unwrap();
        }
        codec.encode(StreamItem::End, &mut wire).unwrap();
        wire
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Any sequence of frames survives encoding and decoding, whatever the read chunking.
        #[test]
        fn round_trip_with_any_chunking(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            chunk in 1usize..64,
        ) {
            let codec = FrameCodec::new(300);
            let wire = encode_all(&codec, &frames);
            let mut buf = BytesMut::new();
            let mut decoded = Vec::new();
            let mut ended = false;
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(item) = codec.decode(&mut buf).unwrap() {
                    match item {
                        StreamItem::Data(frame) => decoded.push(frame.to_vec()),
                        StreamItem::End => ended = true,
                    }
                }
            }
            prop_assert!(ended);
            prop_assert!(buf.is_empty());
            prop_assert_eq!(decoded, frames);
        }

        /// A stream cut anywhere but on a frame boundary is reported as lost, never as a clean end.
        #[test]
        fn truncated_stream_is_lost(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 1..5),
            cut in any::<prop::sample::Index>(),
        ) {
            let codec = FrameCodec::new(64);
            let wire = encode_all(&codec, &frames);
            let cut = cut.index(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            let outcome = loop {
                match codec.decode_eof(&mut buf) {
                    Ok(Some(StreamItem::Data(_))) => continue,
                    other => break other,
                }
            };
            let boundary = buf.is_empty();
            match outcome {
                Ok(None) => prop_assert!(boundary),
                Err(e) => prop_assert!(e.is_abrupt() && !boundary),
                Ok(Some(item)) => {
                    return Err(TestCaseError::fail(format!("unexpected {item:?} in a truncated stream")));
                }
            }
        }
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let codec = FrameCodec::new(1024);
        let mut buf = BytesMut::with_capacity(8);
        buf.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            TransportError::FrameTooLarge {
                size: 0x7FFF_FFFF,
                max: 1024
            }
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn oversized_frame_is_refused_on_encode() {
        let codec = FrameCodec::new(4);
        let mut buf = BytesMut::new();
        let err = codec
            .encode(StreamItem::Data(Bytes::from_static(b"12345")), &mut buf)
            .unwrap_err();
        assert!(matches!(
            err,
            TransportError::FrameTooLarge { size: 5, max: 4 }
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn limit_is_capped_below_the_marker() {
        let codec = FrameCodec::new(usize::MAX);
        assert!(codec.check(MAX_STREAM_FRAME).is_ok());
        assert!(matches!(
            codec.check(MAX_STREAM_FRAME + 1),
            Err(TransportError::FrameTooLarge {
                max: MAX_STREAM_FRAME,
                ..
            })
        ));
    }
}
