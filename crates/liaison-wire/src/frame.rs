//! Frames: a header plus a payload, with encoding and the two decoders (PROTOCOL.md §1, §2).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::header::{Header, HEADER_LEN};
use crate::{Flags, FrameKind, Limits, RangeSet, VersionOffer, WireError};

/// One frame: what travels between two peers (PROTOCOL.md §1).
///
/// The fields are plain data. A frame built with the constructors and builders below is
/// valid; one assembled by hand can be checked with [`validate`](Self::validate) before it
/// is sent, since the peer refuses what `validate` refuses.
///
/// ```
/// use liaison_wire::{Flags, Frame, FrameKind};
///
/// let frame = Frame::data(7, &b"hello"[..]).with_seq(12).with_ack(40).with_end();
/// assert_eq!(frame.kind, FrameKind::Data);
/// assert_eq!(frame.flags, Flags::SEQ | Flags::ACK | Flags::END);
/// assert_eq!(frame.sequence(), Some(12));
/// assert_eq!(frame.encoded_len(), 32 + 5);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// What the frame is (header byte 0).
    pub kind: FrameKind,
    /// The frame's flags (header byte 1).
    pub flags: Flags,
    /// The exchange the frame belongs to, for kinds that are [`FrameKind::is_exchange`]; the
    /// copy tag of a repeated flight for [`FrameKind::is_establishing`] kinds (§2); zero
    /// for every other kind.
    pub exchange: u64,
    /// Sequence number; meaningful, and allowed to be non-zero, only with [`Flags::SEQ`].
    pub seq: u64,
    /// Cumulative acknowledgement; meaningful, and allowed to be non-zero, only with
    /// [`Flags::ACK`].
    pub ack: u64,
    /// The payload, whose format the frame's kind defines.
    pub payload: Bytes,
}

impl Frame {
    /// A frame of `kind` with no flags, exchange zero and `payload`.
    pub fn control(kind: FrameKind, payload: impl Into<Bytes>) -> Self {
        Self {
            kind,
            flags: Flags::EMPTY,
            exchange: 0,
            seq: 0,
            ack: 0,
            payload: payload.into(),
        }
    }

    /// A frame of an exchange kind ([`FrameKind::is_exchange`]) on exchange `exchange`.
    pub fn on_exchange(kind: FrameKind, exchange: u64, payload: impl Into<Bytes>) -> Self {
        Self::control(kind, payload).with_exchange(exchange)
    }

    /// A [`Data`](FrameKind::Data) frame: one application message of exchange `exchange` (§9.2).
    pub fn data(exchange: u64, payload: impl Into<Bytes>) -> Self {
        Self::on_exchange(FrameKind::Data, exchange, payload)
    }

    /// The [`Hello`](FrameKind::Hello) frame that opens a connection (§6).
    pub fn hello(offer: &VersionOffer) -> Self {
        Self::control(FrameKind::Hello, offer.to_bytes())
    }

    /// An [`Ack`](FrameKind::Ack) frame acknowledging every sequence number up to and
    /// including `ack` (§8.1).
    pub fn ack(ack: u64) -> Self {
        Self::control(FrameKind::Ack, Bytes::new()).with_ack(ack)
    }

    /// A [`NeedSeq`](FrameKind::NeedSeq) frame listing the sequence numbers the sender is
    /// missing (§8.2). The receiver reads it with [`RangeSet::decode`] and
    /// [`Limits::max_ranges`].
    pub fn need_seq(missing: &RangeSet) -> Self {
        let mut payload = BytesMut::with_capacity(missing.encoded_len());
        missing.encode(&mut payload);
        Self::control(FrameKind::NeedSeq, payload.freeze())
    }

    /// A [`Bye`](FrameKind::Bye) frame carrying `reason` (§8.3); with `ignore_seq`, the
    /// sender also bows out of sequencing ([`Flags::IGNORE_SEQ`]).
    pub fn bye(reason: impl Into<Bytes>, ignore_seq: bool) -> Self {
        let frame = Self::control(FrameKind::Bye, reason);
        if ignore_seq {
            frame.with_flags(Flags::IGNORE_SEQ)
        } else {
            frame
        }
    }

    /// An [`ExchangeCredit`](FrameKind::ExchangeCredit) frame granting `credit` more
    /// messages on exchange `exchange` (§9.5).
    pub fn exchange_credit(exchange: u64, credit: u32) -> Self {
        Self::on_exchange(
            FrameKind::ExchangeCredit,
            exchange,
            Bytes::copy_from_slice(&credit.to_le_bytes()),
        )
    }

    /// The credit an [`ExchangeCredit`](FrameKind::ExchangeCredit) frame grants (§9.5).
    ///
    /// Refuses other kinds and payloads that are not exactly four bytes with
    /// [`WireError::Malformed`].
    pub fn credit(&self) -> Result<u32, WireError> {
        if self.kind != FrameKind::ExchangeCredit {
            return Err(WireError::Malformed("credit asked of a non-credit frame"));
        }
        let raw: [u8; 4] = self.payload[..]
            .try_into()
            .map_err(|_| WireError::Malformed("credit payload is not 4 bytes"))?;
        Ok(u32::from_le_bytes(raw))
    }

    /// Sets the exchange id.
    #[must_use]
    pub fn with_exchange(mut self, exchange: u64) -> Self {
        self.exchange = exchange;
        self
    }

    /// Sets the sequence number and the [`Flags::SEQ`] flag.
    #[must_use]
    pub fn with_seq(mut self, seq: u64) -> Self {
        self.seq = seq;
        self.flags.insert(Flags::SEQ);
        self
    }

    /// Sets the cumulative acknowledgement and the [`Flags::ACK`] flag.
    #[must_use]
    pub fn with_ack(mut self, ack: u64) -> Self {
        self.ack = ack;
        self.flags.insert(Flags::ACK);
        self
    }

    /// Adds `flags` to the frame's flags.
    #[must_use]
    pub fn with_flags(mut self, flags: Flags) -> Self {
        self.flags.insert(flags);
        self
    }

    /// Marks the frame as the last message of its exchange direction ([`Flags::END`]).
    #[must_use]
    pub fn with_end(self) -> Self {
        self.with_flags(Flags::END)
    }

    /// The sequence number, if the frame carries one ([`Flags::SEQ`]).
    pub fn sequence(&self) -> Option<u64> {
        self.flags.contains(Flags::SEQ).then_some(self.seq)
    }

    /// The cumulative acknowledgement, if the frame carries one ([`Flags::ACK`]).
    pub fn acknowledgement(&self) -> Option<u64> {
        self.flags.contains(Flags::ACK).then_some(self.ack)
    }

    /// Whether the frame is the last message of its exchange direction ([`Flags::END`]).
    pub fn is_end(&self) -> bool {
        self.flags.contains(Flags::END)
    }

    /// The frame's header, or [`WireError::TooLarge`] if the payload does not fit the
    /// 32-bit length field.
    pub fn header(&self) -> Result<Header, WireError> {
        let payload_len = u32::try_from(self.payload.len()).map_err(|_| WireError::TooLarge {
            what: "frame payload",
            size: u64::try_from(self.payload.len()).unwrap_or(u64::MAX),
            max: u64::from(u32::MAX),
        })?;
        Ok(Header {
            kind: self.kind,
            flags: self.flags,
            payload_len,
            exchange: self.exchange,
            seq: self.seq,
            ack: self.ack,
        })
    }

    /// Checks everything a receiver with `limits` checks (§2, §3, §5), so a frame that
    /// passes is accepted by such a peer.
    pub fn validate(&self, limits: &Limits) -> Result<(), WireError> {
        let header = self.header()?;
        header.validate()?;
        header.check_limits(limits)
    }

    /// Bytes [`encode`](Self::encode) writes: [`HEADER_LEN`] plus the payload.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Appends the frame to `dst`, reserving exactly [`encoded_len`](Self::encoded_len)
    /// bytes and copying the payload once.
    ///
    /// # Panics
    ///
    /// If the payload is longer than `u32::MAX` bytes, which no header can describe. A frame
    /// that passed [`validate`](Self::validate) never is.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_slice(&self.encode_header());
        dst.put_slice(&self.payload);
    }

    /// The [`HEADER_LEN`] bytes that precede the payload on the wire.
    ///
    /// A frame is these bytes followed by [`payload`](Self::payload): a writer that can send
    /// the two pieces one after the other (a vectored write, or
    /// `liaison_transport::FrameSender::feed_parts`) sends the frame without copying the
    /// payload, where [`to_bytes`](Self::to_bytes) copies it behind the header.
    ///
    /// ```
    /// use liaison_wire::Frame;
    ///
    /// let frame = Frame::data(7, &b"hello"[..]).with_seq(1);
    /// let mut joined = frame.encode_header().to_vec();
    /// joined.extend_from_slice(&frame.payload);
    /// assert_eq!(joined, frame.to_bytes());
    /// ```
    ///
    /// # Panics
    ///
    /// As [`encode`](Self::encode).
    pub fn encode_header(&self) -> [u8; HEADER_LEN] {
        let payload_len = u32::try_from(self.payload.len())
            .expect("frame payload longer than u32::MAX bytes: validate frames before encoding");
        Header {
            kind: self.kind,
            flags: self.flags,
            payload_len,
            exchange: self.exchange,
            seq: self.seq,
            ack: self.ack,
        }
        .to_array()
    }

    /// The frame's bytes in a buffer of their own.
    ///
    /// # Panics
    ///
    /// As [`encode`](Self::encode).
    pub fn to_bytes(&self) -> Bytes {
        let mut dst = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut dst);
        dst.freeze()
    }

    /// Decodes one whole frame from `buf`, for a transport that delimits messages itself
    /// (§1.2).
    ///
    /// The header must be valid (§2, §3), its payload length within `limits` (§5) and equal
    /// to the bytes after the header ([`WireError::LengthMismatch`] otherwise). The payload
    /// is a zero-copy slice of `buf`.
    pub fn decode(buf: Bytes, limits: &Limits) -> Result<Self, WireError> {
        let header = Header::decode(&buf)?;
        header.check_limits(limits)?;
        if buf.len() != header.frame_len() {
            return Err(WireError::LengthMismatch {
                declared: header.payload_len,
                actual: buf.len() - HEADER_LEN,
            });
        }
        Ok(Self::from_parts(header, buf.slice(HEADER_LEN..)))
    }

    /// Decodes the next frame from a byte stream (§1.1).
    ///
    /// Returns `Ok(None)` until `src` holds a whole frame, and then removes exactly that
    /// frame's bytes from `src`. The header is validated as soon as its 32 bytes are there,
    /// and its payload length is compared with `limits` before anything is reserved: a
    /// header claiming more than the limit fails with [`WireError::TooLarge`] and `src`
    /// does not grow. Once the length is accepted, `src` reserves room for the rest of
    /// the frame. The payload is a zero-copy slice of `src`'s buffer.
    ///
    /// After an error the stream is out of step and the connection must be closed (§5).
    pub fn decode_from(src: &mut BytesMut, limits: &Limits) -> Result<Option<Self>, WireError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = Header::decode(src)?;
        header.check_limits(limits)?;
        let frame_len = header.frame_len();
        if src.len() < frame_len {
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        let frame = src.split_to(frame_len).freeze();
        Ok(Some(Self::from_parts(header, frame.slice(HEADER_LEN..))))
    }

    fn from_parts(header: Header, payload: Bytes) -> Self {
        Self {
            kind: header.kind,
            flags: header.flags,
            exchange: header.exchange,
            seq: header.seq,
            ack: header.ack,
            payload,
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        let mut s = f.debug_struct("Frame");
        s.field("kind", &self.kind).field("flags", &self.flags);
        if self.exchange != 0 {
            s.field("exchange", &self.exchange);
        }
        if let Some(seq) = self.sequence() {
            s.field("seq", &seq);
        }
        if let Some(ack) = self.acknowledgement() {
            s.field("ack", &ack);
        }
        if self.payload.len() <= SHOWN {
            s.field("payload", &self.payload);
        } else {
            s.field("payload_len", &self.payload.len());
            s.field("payload_head", &self.payload.slice(..SHOWN));
        }
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A valid frame of any kind: flags within the kind's allowed set, fields zero where
    /// the rules say so, payload up to 4 KiB.
    fn any_frame() -> impl Strategy<Value = Frame> {
        (
            proptest::sample::select(FrameKind::ALL),
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..4096),
        )
            .prop_map(|(kind, bits, exchange, seq, ack, payload)| {
                let allowed = kind.allowed_flags().bits();
                let flags = Flags::from_bits(bits & allowed).unwrap_or(Flags::EMPTY);
                Frame {
                    kind,
                    flags,
                    exchange: if kind.is_exchange() || kind.is_establishing() {
                        exchange
                    } else {
                        0
                    },
                    seq: if flags.contains(Flags::SEQ) { seq } else { 0 },
                    ack: if flags.contains(Flags::ACK) { ack } else { 0 },
                    payload: Bytes::from(payload),
                }
            })
    }

    fn roomy() -> Limits {
        Limits {
            max_frame_payload: 1 << 16,
            max_control_payload: 1 << 16,
            max_ranges: 16,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// The header bytes followed by the payload are the frame's encoding.
        #[test]
        fn header_then_payload_is_the_encoding(frame in any_frame()) {
            let mut joined = frame.encode_header().to_vec();
            joined.extend_from_slice(&frame.payload);
            prop_assert_eq!(&joined[..], &frame.to_bytes()[..]);
            prop_assert_eq!(Header::decode(&joined)?, frame.header()?);
        }

        #[test]
        fn decode_inverts_encode(frame in any_frame()) {
            prop_assert_eq!(frame.validate(&roomy()), Ok(()));
            let bytes = frame.to_bytes();
            prop_assert_eq!(bytes.len(), frame.encoded_len());
            let decoded = Frame::decode(bytes.clone(), &roomy())?;
            prop_assert_eq!(&decoded, &frame);
            // Zero-copy: the payload points into the decoded buffer.
            if !frame.payload.is_empty() {
                prop_assert_eq!(decoded.payload.as_ptr(), bytes[HEADER_LEN..].as_ptr());
            }
        }

        #[test]
        fn decode_from_splits_a_stream_at_any_points(
            frames in proptest::collection::vec(any_frame(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut wire = BytesMut::new();
            for frame in &frames {
                frame.encode(&mut wire);
            }
            let wire = wire.freeze();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();

            let mut src = BytesMut::new();
            let mut decoded = Vec::new();
            let mut at = 0;
            for point in points {
                src.extend_from_slice(&wire[at..point]);
                at = point;
                while let Some(frame) = Frame::decode_from(&mut src, &roomy())? {
                    decoded.push(frame);
                }
            }
            prop_assert!(src.is_empty());
            prop_assert_eq!(decoded, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let limits = Limits::default();
            if let Ok(frame) = Frame::decode(Bytes::from(bytes.clone()), &limits) {
                // The encoding is canonical: what decodes re-encodes to the same bytes.
                prop_assert_eq!(frame.to_bytes(), Bytes::from(bytes.clone()));
            }
            let mut src = BytesMut::from(&bytes[..]);
            loop {
                let before = src.len();
                match Frame::decode_from(&mut src, &limits) {
                    Ok(Some(frame)) => prop_assert_eq!(src.len(), before - frame.encoded_len()),
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
        }

        #[test]
        fn truncated_frames_are_typed_errors_or_incomplete(
            frame in any_frame(),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = frame.to_bytes();
            let len = cut.index(bytes.len());
            let short = bytes.slice(..len);
            let err = Frame::decode(short.clone(), &roomy()).unwrap_err();
            if len < HEADER_LEN {
                prop_assert_eq!(err, WireError::Truncated { needed: HEADER_LEN, available: len });
            } else {
                prop_assert_eq!(err, WireError::LengthMismatch {
                    declared: u32::try_from(frame.payload.len()).unwrap_or(u32::MAX),
                    actual: len - HEADER_LEN,
                });
            }
            let mut src = BytesMut::from(&short[..]);
            prop_assert_eq!(Frame::decode_from(&mut src, &roomy()), Ok(None));
            prop_assert_eq!(src.len(), len);
        }

        #[test]
        fn trailing_bytes_after_a_delimited_frame_are_refused(
            frame in any_frame(),
            extra in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let mut wire = BytesMut::new();
            frame.encode(&mut wire);
            wire.extend_from_slice(&extra);
            prop_assert_eq!(
                Frame::decode(wire.freeze(), &roomy()),
                Err(WireError::LengthMismatch {
                    declared: u32::try_from(frame.payload.len()).unwrap_or(u32::MAX),
                    actual: frame.payload.len() + extra.len(),
                })
            );
        }
    }

    #[test]
    fn protocol_md_example_is_exact() {
        // The example of PROTOCOL.md §2.
        let frame = Frame::data(5, &b"abc"[..]).with_seq(7).with_end();
        let expected: [u8; 35] = [
            0x21, 0x03, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, //
            7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
            0x61, 0x62, 0x63,
        ];
        assert_eq!(frame.to_bytes()[..], expected);
    }

    #[test]
    fn encode_reserves_exactly() {
        let frame = Frame::data(1, vec![7u8; 1000]);
        let mut dst = BytesMut::new();
        frame.encode(&mut dst);
        assert_eq!(dst.len(), 1032);
        assert_eq!(dst.capacity(), 1032);
    }

    #[test]
    fn four_gib_claim_is_refused_without_allocating() {
        let header = Header {
            kind: FrameKind::Data,
            flags: Flags::EMPTY,
            payload_len: u32::MAX,
            exchange: 1,
            seq: 0,
            ack: 0,
        };
        let mut src = BytesMut::with_capacity(64);
        header.encode(&mut src);
        src.extend_from_slice(b"a few payload bytes");
        let capacity = src.capacity();
        let err = Frame::decode_from(&mut src, &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            WireError::TooLarge {
                what: "data frame payload",
                size: u64::from(u32::MAX),
                max: 1 << 20,
            }
        );
        assert_eq!(src.capacity(), capacity);
        assert!(src.capacity() <= 64);

        let err = Frame::decode(src.freeze(), &Limits::default()).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { .. }));
    }

    #[test]
    fn control_limit_applies_to_control_kinds() {
        let limits = Limits {
            max_frame_payload: 100,
            max_control_payload: 10,
            max_ranges: 4,
        };
        let ping = Frame::control(FrameKind::Ping, vec![0u8; 11]);
        let mut src = BytesMut::from(&ping.to_bytes()[..HEADER_LEN]);
        assert!(matches!(
            Frame::decode_from(&mut src, &limits),
            Err(WireError::TooLarge {
                what: "control frame payload",
                size: 11,
                max: 10
            })
        ));
        assert!(Frame::decode(Frame::data(1, vec![0u8; 11]).to_bytes(), &limits).is_ok());
        assert!(Frame::decode(ping.to_bytes(), &limits).is_err());
    }

    #[test]
    fn accepted_length_reserves_the_rest_of_the_frame() {
        let frame = Frame::data(3, vec![1u8; 500]);
        let bytes = frame.to_bytes();
        let mut src = BytesMut::from(&bytes[..40]);
        assert_eq!(Frame::decode_from(&mut src, &Limits::default()), Ok(None));
        assert!(src.capacity() >= bytes.len());
        src.extend_from_slice(&bytes[40..]);
        assert_eq!(
            Frame::decode_from(&mut src, &Limits::default()),
            Ok(Some(frame))
        );
    }

    #[test]
    fn invalid_header_fails_before_the_payload_arrives() {
        let mut bytes = BytesMut::from(&Frame::data(3, vec![1u8; 500]).to_bytes()[..HEADER_LEN]);
        bytes[0] = 0x7f;
        assert_eq!(
            Frame::decode_from(&mut bytes, &Limits::default()),
            Err(WireError::UnknownKind(0x7f))
        );
    }

    #[test]
    fn builders_set_their_flags() {
        assert_eq!(Frame::ack(9).acknowledgement(), Some(9));
        assert_eq!(Frame::ack(9).sequence(), None);
        assert!(Frame::bye(&b"done"[..], true)
            .flags
            .contains(Flags::IGNORE_SEQ));
        assert!(Frame::bye(&b"done"[..], false).flags.is_empty());
        let credit = Frame::exchange_credit(5, 0x0102_0304);
        assert_eq!(credit.payload[..], [4, 3, 2, 1]);
        assert_eq!(credit.credit(), Ok(0x0102_0304));
        assert!(Frame::data(5, vec![0u8; 3]).credit().is_err());
        let mut short = credit.clone();
        short.payload.truncate(3);
        assert!(short.credit().is_err());
        for frame in [
            Frame::ack(1),
            Frame::bye(Bytes::new(), true),
            credit,
            Frame::data(1, Bytes::new()).with_end().with_seq(4),
            Frame::hello(&VersionOffer::supported()),
            Frame::need_seq(&"12..17,19".parse().expect("a valid range set")),
        ] {
            assert_eq!(frame.validate(&Limits::default()), Ok(()));
        }
        let wrong = Frame::control(FrameKind::Ping, Bytes::new()).with_end();
        assert!(matches!(
            wrong.validate(&Limits::default()),
            Err(WireError::Reserved(_))
        ));
    }

    #[test]
    fn debug_output_stays_short() {
        let frame = Frame::data(1, vec![0u8; 4096]).with_seq(3);
        let shown = format!("{frame:?}");
        assert!(shown.len() < 200, "{shown}");
        assert!(shown.contains("payload_len: 4096"));
    }
}
