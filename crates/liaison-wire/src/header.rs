//! The fixed 32-byte frame header, hand-encoded little-endian (PROTOCOL.md §2).

use bytes::{Buf, BufMut, BytesMut};

use crate::{Flags, FrameKind, Limits, WireError};

/// Length of every frame header in bytes (§2).
pub const HEADER_LEN: usize = 32;

/// A frame header (PROTOCOL.md §2), all integers little-endian:
///
/// | offset | size | field         | rule |
/// |--------|------|---------------|------|
/// | 0      | 1    | kind          | a [`FrameKind`] number |
/// | 1      | 1    | flags         | [`Flags`] allowed for the kind |
/// | 2      | 2    | reserved      | zero |
/// | 4      | 4    | payload length| at most the limit for the kind ([`Limits::max_payload`]) |
/// | 8      | 8    | exchange id   | the exchange ([`FrameKind::is_exchange`]), or the copy tag ([`FrameKind::is_establishing`]); else zero |
/// | 16     | 8    | seq           | zero unless [`Flags::SEQ`] |
/// | 24     | 8    | ack           | zero unless [`Flags::ACK`] |
///
/// The zero rules make the encoding canonical: a header decodes only from the bytes
/// [`encode`](Self::encode) writes for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// What the frame is.
    pub kind: FrameKind,
    /// The frame's flags.
    pub flags: Flags,
    /// Payload bytes that follow the header.
    pub payload_len: u32,
    /// The exchange the frame belongs to (exchange kinds), or the copy tag of a repeated
    /// flight (establishing kinds); else zero.
    pub exchange: u64,
    /// Sequence number (meaningful with [`Flags::SEQ`], else zero).
    pub seq: u64,
    /// Cumulative acknowledgement (meaningful with [`Flags::ACK`], else zero).
    pub ack: u64,
}

impl Header {
    /// Parses and validates the first [`HEADER_LEN`] bytes of `bytes` (§2, §3).
    ///
    /// Fewer bytes give [`WireError::Truncated`]; bytes after the header are ignored. The
    /// payload length is not checked against any limit here: see
    /// [`check_limits`](Self::check_limits).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let Some(raw) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(WireError::Truncated {
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        };
        // `raw` is exactly HEADER_LEN bytes and the reads below take exactly HEADER_LEN
        // bytes in total, so none of the `get_*` calls can run out of input.
        let mut raw = &raw[..];
        let kind = FrameKind::try_from(raw.get_u8())?;
        let flags = Flags::from_bits(raw.get_u8())?;
        let reserved = raw.get_u16_le();
        let payload_len = raw.get_u32_le();
        let exchange = raw.get_u64_le();
        let seq = raw.get_u64_le();
        let ack = raw.get_u64_le();
        if reserved != 0 {
            return Err(WireError::Reserved("header bytes 2..4 are not zero"));
        }
        let header = Self {
            kind,
            flags,
            payload_len,
            exchange,
            seq,
            ack,
        };
        header.validate()?;
        Ok(header)
    }

    /// Checks the rules of §2 and §3 that do not depend on limits: flags allowed for the
    /// kind, and the exchange, seq and ack fields zero unless meaningful.
    pub fn validate(&self) -> Result<(), WireError> {
        if !Flags::ALL.contains(self.flags) {
            return Err(WireError::Reserved("undefined flag bit set"));
        }
        if !self.kind.allowed_flags().contains(self.flags) {
            return Err(WireError::Reserved("flag not allowed on this frame kind"));
        }
        if !self.kind.is_exchange() && !self.kind.is_establishing() && self.exchange != 0 {
            return Err(WireError::Reserved(
                "exchange id on a frame kind without exchange",
            ));
        }
        if !self.flags.contains(Flags::SEQ) && self.seq != 0 {
            return Err(WireError::Reserved("seq field set without the SEQ flag"));
        }
        if !self.flags.contains(Flags::ACK) && self.ack != 0 {
            return Err(WireError::Reserved("ack field set without the ACK flag"));
        }
        Ok(())
    }

    /// Checks the payload length against the limit for the kind (§5).
    pub fn check_limits(&self, limits: &Limits) -> Result<(), WireError> {
        let max = limits.max_payload(self.kind);
        if self.payload_len > max {
            return Err(WireError::TooLarge {
                what: if self.kind.is_data() {
                    "data frame payload"
                } else {
                    "control frame payload"
                },
                size: u64::from(self.payload_len),
                max: u64::from(max),
            });
        }
        Ok(())
    }

    /// Length of the whole frame: header plus payload.
    pub fn frame_len(&self) -> usize {
        // Widening: usize is at least 32 bits on every target this crate builds for.
        HEADER_LEN + self.payload_len as usize
    }

    /// Appends the header's [`HEADER_LEN`] bytes to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_slice(&self.to_array());
    }

    /// The header's [`HEADER_LEN`] bytes.
    pub fn to_array(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = &mut out[..];
        // Exactly HEADER_LEN bytes are written into a HEADER_LEN buffer.
        w.put_u8(self.kind.to_u8());
        w.put_u8(self.flags.bits());
        w.put_u16_le(0);
        w.put_u32_le(self.payload_len);
        w.put_u64_le(self.exchange);
        w.put_u64_le(self.seq);
        w.put_u64_le(self.ack);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            kind: FrameKind::Data,
            flags: Flags::END | Flags::SEQ | Flags::ACK,
            payload_len: 0x0403_0201,
            exchange: 0x1122_3344_5566_7788,
            seq: 7,
            ack: 9,
        }
    }

    #[test]
    fn layout_is_byte_for_byte_as_documented() {
        let bytes = sample().to_array();
        assert_eq!(bytes[0], 0x21);
        assert_eq!(bytes[1], 0x07);
        assert_eq!(bytes[2..4], [0, 0]);
        assert_eq!(bytes[4..8], [0x01, 0x02, 0x03, 0x04]);
        assert_eq!(
            bytes[8..16],
            [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        assert_eq!(bytes[16..24], [7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes[24..32], [9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Header::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn short_input_is_truncated() {
        let bytes = sample().to_array();
        assert_eq!(
            Header::decode(&bytes[..31]),
            Err(WireError::Truncated {
                needed: 32,
                available: 31
            })
        );
    }

    #[test]
    fn unknown_kind_is_refused() {
        let mut bytes = sample().to_array();
        bytes[0] = 0xee;
        assert_eq!(Header::decode(&bytes), Err(WireError::UnknownKind(0xee)));
    }

    #[test]
    fn reserved_flag_bits_are_refused() {
        for bit in 4..8 {
            let mut bytes = sample().to_array();
            bytes[1] |= 1 << bit;
            assert!(matches!(
                Header::decode(&bytes),
                Err(WireError::Reserved(_))
            ));
        }
    }

    #[test]
    fn flag_not_allowed_for_kind_is_refused() {
        let mut header = sample();
        let not_allowed = Err(WireError::Reserved("flag not allowed on this frame kind"));
        header.flags = Flags::IGNORE_SEQ | Flags::SEQ | Flags::ACK;
        assert_eq!(Header::decode(&header.to_array()), not_allowed);
        header.kind = FrameKind::Ping;
        header.exchange = 0;
        header.flags = Flags::END | Flags::SEQ | Flags::ACK;
        assert_eq!(Header::decode(&header.to_array()), not_allowed);
        header.flags = Flags::SEQ | Flags::ACK;
        assert!(Header::decode(&header.to_array()).is_ok());
    }

    #[test]
    fn reserved_field_must_be_zero() {
        let mut bytes = sample().to_array();
        bytes[3] = 1;
        assert!(matches!(
            Header::decode(&bytes),
            Err(WireError::Reserved(_))
        ));
    }

    #[test]
    fn fields_without_meaning_must_be_zero() {
        let mut exchange_on_ping = sample();
        exchange_on_ping.kind = FrameKind::Ping;
        exchange_on_ping.flags = Flags::EMPTY;
        exchange_on_ping.seq = 0;
        exchange_on_ping.ack = 0;
        assert_eq!(
            Header::decode(&exchange_on_ping.to_array()),
            Err(WireError::Reserved(
                "exchange id on a frame kind without exchange"
            ))
        );

        // Establishing frames carry a copy tag there (§2).
        let mut tagged_hello = exchange_on_ping;
        tagged_hello.kind = FrameKind::Hello;
        assert_eq!(Header::decode(&tagged_hello.to_array()), Ok(tagged_hello));

        let mut seq_without_flag = sample();
        seq_without_flag.flags = Flags::ACK;
        assert_eq!(
            Header::decode(&seq_without_flag.to_array()),
            Err(WireError::Reserved("seq field set without the SEQ flag"))
        );

        let mut ack_without_flag = sample();
        ack_without_flag.flags = Flags::SEQ;
        assert_eq!(
            Header::decode(&ack_without_flag.to_array()),
            Err(WireError::Reserved("ack field set without the ACK flag"))
        );
    }

    #[test]
    fn limits_depend_on_kind() {
        let limits = Limits {
            max_frame_payload: 100,
            max_control_payload: 10,
            max_ranges: 1,
        };
        let mut header = sample();
        header.payload_len = 100;
        assert_eq!(header.check_limits(&limits), Ok(()));
        header.payload_len = 101;
        assert_eq!(
            header.check_limits(&limits),
            Err(WireError::TooLarge {
                what: "data frame payload",
                size: 101,
                max: 100
            })
        );
        header.kind = FrameKind::Config;
        header.payload_len = 11;
        assert!(matches!(
            header.check_limits(&limits),
            Err(WireError::TooLarge { max: 10, .. })
        ));
    }
}
