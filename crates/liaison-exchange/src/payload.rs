//! Payloads of the exchange frames (PROTOCOL.md §9): what `ExchangeBegin`, `ExchangeEnd` and
//! `ExchangeCancel` carry, hand-encoded little-endian. `Data` carries one message as it is and
//! `ExchangeCredit` is the wire crate's [`Frame::credit`](liaison_wire::Frame::credit).

use bytes::{BufMut, Bytes, BytesMut};
use liaison_wire::{Frame, FrameKind, WireError};

use crate::CancelCode;

/// Bytes of an `ExchangeBegin` payload before the first message: target (8), credit (4),
/// flags (1) (PROTOCOL.md §9.1).
pub const BEGIN_HEADER_LEN: usize = 13;

/// Longest text an `ExchangeEnd` or `ExchangeCancel` carries (PROTOCOL.md §9.3, §9.4); longer
/// texts are cut at a character boundary by the sender and refused by the receiver.
pub const MAX_TEXT_LEN: usize = 512;

/// `ExchangeBegin` flag: a first message follows the fixed fields.
const BEGIN_HAS_MESSAGE: u8 = 0x01;

/// The payload of an `ExchangeBegin` (PROTOCOL.md §9.1).
///
/// The flags byte tells "no first message" apart from "an empty first message", so a call
/// with an empty request is still one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    /// The capability the exchange targets.
    pub target: u64,
    /// Messages the initiator lets the responder send before any `ExchangeCredit`.
    pub credit: u32,
    /// The initiator's first message, if the frame carries one.
    pub message: Option<Bytes>,
}

impl Begin {
    /// Encodes the payload (copies the message once, behind the fixed fields).
    pub fn encode(&self) -> Bytes {
        let message_len = self.message.as_ref().map_or(0, Bytes::len);
        let mut out = BytesMut::with_capacity(BEGIN_HEADER_LEN + message_len);
        out.put_u64_le(self.target);
        out.put_u32_le(self.credit);
        out.put_u8(if self.message.is_some() {
            BEGIN_HAS_MESSAGE
        } else {
            0
        });
        if let Some(message) = &self.message {
            out.put_slice(message);
        }
        out.freeze()
    }

    /// Decodes a payload; the message is a zero-copy slice of `payload`.
    pub fn decode(payload: &Bytes) -> Result<Self, WireError> {
        if payload.len() < BEGIN_HEADER_LEN {
            return Err(WireError::Truncated {
                needed: BEGIN_HEADER_LEN,
                available: payload.len(),
            });
        }
        let target = u64::from_le_bytes(array(&payload[0..8]));
        let credit = u32::from_le_bytes(array(&payload[8..12]));
        let flags = payload[12];
        if flags & !BEGIN_HAS_MESSAGE != 0 {
            return Err(WireError::Malformed("reserved ExchangeBegin flag set"));
        }
        let message = if flags & BEGIN_HAS_MESSAGE != 0 {
            Some(payload.slice(BEGIN_HEADER_LEN..))
        } else if payload.len() > BEGIN_HEADER_LEN {
            return Err(WireError::TrailingBytes {
                extra: payload.len() - BEGIN_HEADER_LEN,
            });
        } else {
            None
        };
        Ok(Self {
            target,
            credit,
            message,
        })
    }

    /// The `ExchangeBegin` frame of exchange `id` with this payload; `end` sets `END` (the
    /// initiator sends nothing more).
    pub fn frame(&self, id: u64, end: bool) -> Frame {
        let frame = Frame::on_exchange(FrameKind::ExchangeBegin, id, self.encode());
        if end {
            frame.with_end()
        } else {
            frame
        }
    }
}

/// The outcome an `ExchangeEnd` reports (PROTOCOL.md §9.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sender finished normally (empty payload).
    Success,
    /// The sender's handler failed with this message (UTF-8, at most [`MAX_TEXT_LEN`] bytes).
    Failed(String),
}

impl Outcome {
    /// Encodes the payload; an empty failure message is sent as "application error" so that
    /// it stays distinct from success.
    pub fn encode(&self) -> Bytes {
        match self {
            Self::Success => Bytes::new(),
            Self::Failed(message) if message.is_empty() => Bytes::from_static(b"application error"),
            Self::Failed(message) => Bytes::copy_from_slice(truncate(message).as_bytes()),
        }
    }

    /// Decodes a payload.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        if payload.is_empty() {
            return Ok(Self::Success);
        }
        Ok(Self::Failed(text(payload)?))
    }

    /// The `ExchangeEnd` frame of exchange `id` reporting this outcome.
    pub fn frame(&self, id: u64) -> Frame {
        Frame::on_exchange(FrameKind::ExchangeEnd, id, self.encode())
    }
}

/// The payload of an `ExchangeCancel` (PROTOCOL.md §9.4): a code and a short text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// Why.
    pub code: CancelCode,
    /// Human-readable explanation, at most [`MAX_TEXT_LEN`] bytes.
    pub reason: String,
}

impl Cancel {
    /// Encodes the payload (the text cut to [`MAX_TEXT_LEN`] bytes).
    pub fn encode(&self) -> Bytes {
        let reason = truncate(&self.reason);
        let mut out = BytesMut::with_capacity(2 + reason.len());
        out.put_u16_le(self.code.to_u16());
        out.put_slice(reason.as_bytes());
        out.freeze()
    }

    /// Decodes a payload.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        if payload.len() < 2 {
            return Err(WireError::Truncated {
                needed: 2,
                available: payload.len(),
            });
        }
        let code = CancelCode::from(u16::from_le_bytes([payload[0], payload[1]]));
        Ok(Self {
            code,
            reason: text(&payload[2..])?,
        })
    }

    /// The `ExchangeCancel` frame of exchange `id` with this payload.
    pub fn frame(&self, id: u64) -> Frame {
        Frame::on_exchange(FrameKind::ExchangeCancel, id, self.encode())
    }
}

/// `text` cut to at most [`MAX_TEXT_LEN`] bytes, at a character boundary.
pub(crate) fn truncate(text: &str) -> &str {
    if text.len() <= MAX_TEXT_LEN {
        return text;
    }
    let mut end = MAX_TEXT_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn text(bytes: &[u8]) -> Result<String, WireError> {
    if bytes.len() > MAX_TEXT_LEN {
        return Err(WireError::TooLarge {
            what: "exchange reason text",
            size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            max: MAX_TEXT_LEN as u64,
        });
    }
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| WireError::Malformed("exchange reason text is not UTF-8"))
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn begin_round_trips(
            target in any::<u64>(),
            credit in any::<u32>(),
            message in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        ) {
            let begin = Begin { target, credit, message: message.map(Bytes::from) };
            let bytes = begin.encode();
            prop_assert_eq!(Begin::decode(&bytes)?, begin);
        }

        #[test]
        fn cancel_round_trips(code in any::<u16>(), reason in ".{0,100}") {
            let cancel = Cancel { code: CancelCode::from(code), reason };
            prop_assert_eq!(Cancel::decode(&cancel.encode())?, cancel);
        }

        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let bytes = Bytes::from(bytes);
            let _ = Begin::decode(&bytes);
            let _ = Cancel::decode(&bytes);
            let _ = Outcome::decode(&bytes);
        }
    }

    #[test]
    fn begin_layout_is_exact() {
        let begin = Begin {
            target: 0x0102,
            credit: 64,
            message: Some(Bytes::from_static(b"hi")),
        };
        assert_eq!(
            begin.encode()[..],
            [2, 1, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 1, b'h', b'i']
        );
        let empty = Begin {
            target: 7,
            credit: 1,
            message: Some(Bytes::new()),
        };
        assert_eq!(Begin::decode(&empty.encode()).unwrap(), empty);
        let none = Begin {
            target: 7,
            credit: 1,
            message: None,
        };
        assert_eq!(none.encode().len(), BEGIN_HEADER_LEN);
        assert_eq!(Begin::decode(&none.encode()).unwrap(), none);
    }

    #[test]
    fn protocol_md_example_is_exact() {
        // The unary call of PROTOCOL.md §9.8.
        let begin = Begin {
            target: 1,
            credit: 64,
            message: Some(Bytes::from_static(b"hi")),
        }
        .frame(1, true);
        let expected: [u8; 47] = [
            0x20, 0x01, 0, 0, 0x0f, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
            1, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 0x68, 0x69,
        ];
        assert_eq!(begin.to_bytes()[..], expected);
        let reply = Frame::data(1, &b"ok"[..]).with_end();
        let expected: [u8; 34] = [
            0x21, 0x01, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
            0x6f, 0x6b,
        ];
        assert_eq!(reply.to_bytes()[..], expected);
    }

    #[test]
    fn malformed_begins_are_refused() {
        assert!(matches!(
            Begin::decode(&Bytes::from_static(&[0; 12])),
            Err(WireError::Truncated { .. })
        ));
        let mut flags = vec![0u8; 13];
        flags[12] = 0x02;
        assert!(matches!(
            Begin::decode(&Bytes::from(flags)),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            Begin::decode(&Bytes::from(vec![0u8; 14])),
            Err(WireError::TrailingBytes { extra: 1 })
        ));
    }

    #[test]
    fn outcomes_and_cancels() {
        assert_eq!(Outcome::decode(&[]).unwrap(), Outcome::Success);
        assert_eq!(
            Outcome::decode(&Outcome::Failed(String::new()).encode()).unwrap(),
            Outcome::Failed("application error".into())
        );
        assert!(Outcome::decode(&[0xff]).is_err());
        assert!(Outcome::decode(&[b'x'; MAX_TEXT_LEN + 1]).is_err());
        let long = "é".repeat(MAX_TEXT_LEN);
        let cancel = Cancel {
            code: CancelCode::Refused,
            reason: long,
        };
        let decoded = Cancel::decode(&cancel.encode()).unwrap();
        assert_eq!(decoded.reason.len(), MAX_TEXT_LEN);
        assert_eq!(
            Cancel {
                code: CancelCode::UnknownCapability,
                reason: "no".into()
            }
            .encode()[..],
            [1, 0, b'n', b'o']
        );
        assert!(Cancel::decode(&[1]).is_err());
    }
}
