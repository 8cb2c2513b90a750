//! The default payload codec, bincode 2 through its serde API (PROTOCOL.md §5.2); the only
//! module of liaison that names bincode.

use ::bincode::config::{self, Configuration};
use ::bincode::enc::write::Writer;
use ::bincode::error::{DecodeError, EncodeError};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::guard::{Budget, Tripped, MAX_DEPTH};
use super::Codec;
use crate::{Limits, WireError};

/// bincode's standard configuration: little-endian, variable-length integers.
///
/// bincode's own byte limit is a compile-time constant, so it cannot follow the runtime
/// [`Limits`]; the limit is enforced around bincode instead (see [`BincodeCodec`]).
const fn bincode_config() -> Configuration {
    config::standard()
}

/// The default [`Codec`]: bincode 2.0.1's serde API with its standard configuration
/// (little-endian, variable-length integers), bounded by a byte limit (PROTOCOL.md §5.2).
///
/// - [`encode`](Codec::encode) refuses, with [`WireError::TooLarge`], a value whose encoding
///   exceeds the limit, and stops writing as soon as it does.
/// - [`decode`](Codec::decode) refuses input longer than the limit, trailing bytes
///   ([`WireError::TrailingBytes`]) and input that ends early ([`WireError::Truncated`]).
///   A length prefix is never trusted for allocation: strings and byte buffers are
///   allocated only once their bytes are known to be present, sequence and map
///   preallocation is capped by the input length, the total number of elements cannot
///   exceed the input length, and nesting is capped at 128 levels. Memory held at any time
///   is therefore within a small multiple of the input length, itself at most the limit.
///
/// ```
/// use liaison_wire::{BincodeCodec, Codec};
///
/// let codec = BincodeCodec::new(1024);
/// let bytes = codec.encode(&("ping", 7u32))?;
/// let (word, n): (String, u32) = codec.decode(&bytes)?;
/// assert_eq!((word.as_str(), n), ("ping", 7));
/// # Ok::<(), liaison_wire::WireError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BincodeCodec {
    max_payload: u32,
}

impl BincodeCodec {
    /// A codec that encodes and decodes payloads of at most `max_payload` bytes.
    pub const fn new(max_payload: u32) -> Self {
        Self { max_payload }
    }

    /// A codec bounded by the largest payload any frame may carry under `limits`.
    pub const fn from_limits(limits: &Limits) -> Self {
        Self::new(limits.max_any_payload())
    }

    /// The codec's byte limit.
    pub const fn max_payload(&self) -> u32 {
        self.max_payload
    }

    fn max_len(&self) -> usize {
        usize::try_from(self.max_payload).unwrap_or(usize::MAX)
    }
}

impl Default for BincodeCodec {
    /// Bounded by [`Limits::DEFAULT`].
    fn default() -> Self {
        Self::from_limits(&Limits::DEFAULT)
    }
}

impl Codec for BincodeCodec {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, WireError> {
        // Two passes: the first measures (and refuses past the limit) without storing
        // anything, the second writes into a buffer of exactly that size, which becomes
        // the `Bytes` without another allocation or copy.
        let mut measure = LimitedCounter {
            len: 0,
            max: self.max_len(),
            refused: None,
        };
        if let Err(err) =
            ::bincode::serde::encode_into_writer(value, &mut measure, bincode_config())
        {
            return Err(match measure.refused {
                Some(size) => WireError::TooLarge {
                    what: "encoded payload",
                    size: to_u64(size),
                    max: u64::from(self.max_payload),
                },
                None => WireError::Codec(err.to_string()),
            });
        }
        let mut out = VecWriter(Vec::with_capacity(measure.len));
        ::bincode::serde::encode_into_writer(value, &mut out, bincode_config())
            .map_err(|err| WireError::Codec(err.to_string()))?;
        Ok(Bytes::from(out.0))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, WireError> {
        if bytes.len() > self.max_len() {
            return Err(WireError::TooLarge {
                what: "payload",
                size: to_u64(bytes.len()),
                max: u64::from(self.max_payload),
            });
        }
        let budget = Budget::new(bytes.len());
        match ::bincode::serde::seed_decode_from_slice(budget.seed::<T>(), bytes, bincode_config())
        {
            Ok((value, read)) if read == bytes.len() => Ok(value),
            Ok((_, read)) => Err(WireError::TrailingBytes {
                extra: bytes.len().saturating_sub(read),
            }),
            Err(err) => Err(decode_error(err, bytes.len(), budget.tripped())),
        }
    }
}

fn decode_error(err: DecodeError, len: usize, tripped: Option<Tripped>) -> WireError {
    match tripped {
        Some(Tripped::Elements) => WireError::TooLarge {
            what: "payload element count",
            size: to_u64(len).saturating_add(1),
            max: to_u64(len),
        },
        Some(Tripped::Depth) => WireError::TooLarge {
            what: "payload nesting depth",
            size: to_u64(MAX_DEPTH + 1),
            max: to_u64(MAX_DEPTH),
        },
        None => match err {
            DecodeError::UnexpectedEnd { additional } => WireError::Truncated {
                needed: len.saturating_add(additional),
                available: len,
            },
            other => WireError::Codec(other.to_string()),
        },
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Counts the bytes an encoding takes, refusing it past `max`.
struct LimitedCounter {
    len: usize,
    max: usize,
    /// The size the encoding had reached when it was refused.
    refused: Option<usize>,
}

impl Writer for LimitedCounter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let total = self.len.saturating_add(bytes.len());
        if total > self.max {
            self.refused = Some(total);
            return Err(EncodeError::Other("payload exceeds the codec limit"));
        }
        self.len = total;
        Ok(())
    }
}

/// Appends an encoding to a buffer sized for it.
struct VecWriter(Vec<u8>);

impl Writer for VecWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Config {
        name: String,
        keepalive_ms: u64,
        ordered: bool,
        params: BTreeMap<String, Vec<u8>>,
        mode: Mode,
        root: Option<(u32, String)>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Mode {
        Ordered,
        Unordered { window: u32 },
        Custom(String),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Tree(Vec<Self>);

    fn any_config() -> impl Strategy<Value = Config> {
        let mode = prop_oneof![
            Just(Mode::Ordered),
            any::<u32>().prop_map(|window| Mode::Unordered { window }),
            ".{0,16}".prop_map(Mode::Custom),
        ];
        (
            ".{0,32}",
            any::<u64>(),
            any::<bool>(),
            proptest::collection::btree_map(
                "[a-z]{0,8}",
                proptest::collection::vec(any::<u8>(), 0..64),
                0..8,
            ),
            mode,
            proptest::option::of((any::<u32>(), ".{0,8}")),
        )
            .prop_map(|(name, keepalive_ms, ordered, params, mode, root)| Config {
                name,
                keepalive_ms,
                ordered,
                params,
                mode,
                root,
            })
    }

    /// A varint length prefix as bincode's standard configuration writes it.
    fn varint(n: u64) -> Vec<u8> {
        match n {
            0..=250 => vec![u8::try_from(n).unwrap_or(0)],
            251..=0xffff => {
                let mut v = vec![251];
                v.extend(u16::try_from(n).unwrap_or(0).to_le_bytes());
                v
            }
            0x1_0000..=0xffff_ffff => {
                let mut v = vec![252];
                v.extend(u32::try_from(n).unwrap_or(0).to_le_bytes());
                v
            }
            _ => {
                let mut v = vec![253];
                v.extend(n.to_le_bytes());
                v
            }
        }
    }

    #[test]
    fn sequences_of_small_tuples_round_trip() {
        // Tuple and struct fields are not sequence elements: a list of small pairs encodes in
        // fewer bytes than it has fields, and must still decode.
        let codec = BincodeCodec::default();
        for value in [vec![(0u8, 0u8), (41, 41)], vec![(1, 2); 100], Vec::new()] {
            let bytes = codec.encode(&value).unwrap();
            let back: Vec<(u8, u8)> = codec.decode(&bytes).unwrap();
            assert_eq!(back, value);
        }
        let structs = vec![Pair { a: 1, b: 2 }; 50];
        let bytes = codec.encode(&structs).unwrap();
        assert_eq!(codec.decode::<Vec<Pair>>(&bytes).unwrap(), structs);
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Pair {
        a: u8,
        b: u8,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn serde_struct_round_trips(config in any_config()) {
            let codec = BincodeCodec::default();
            let bytes = codec.encode(&config)?;
            prop_assert_eq!(codec.decode::<Config>(&bytes)?, config);
        }

        #[test]
        fn trailing_bytes_are_refused(
            config in any_config(),
            extra in proptest::collection::vec(any::<u8>(), 1..16),
        ) {
            let codec = BincodeCodec::default();
            let mut bytes = codec.encode(&config)?.to_vec();
            bytes.extend_from_slice(&extra);
            prop_assert_eq!(
                codec.decode::<Config>(&bytes),
                Err(WireError::TrailingBytes { extra: extra.len() })
            );
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let codec = BincodeCodec::default();
            if let Ok(config) = codec.decode::<Config>(&bytes) {
                // Decoding is not canonical (duplicate map keys, long varints), so compare
                // values, not bytes.
                prop_assert_eq!(codec.decode::<Config>(&codec.encode(&config)?)?, config);
            }
            let _ = codec.decode::<Tree>(&bytes);
            let _ = codec.decode::<Vec<()>>(&bytes);
        }

        #[test]
        fn truncated_payloads_are_refused(config in any_config(), cut in any::<prop::sample::Index>()) {
            let codec = BincodeCodec::default();
            let bytes = codec.encode(&config)?;
            let short = &bytes[..cut.index(bytes.len())];
            prop_assert!(codec.decode::<Config>(short).is_err());
        }
    }

    #[test]
    fn hostile_string_length_is_refused_without_allocating() {
        // A string claiming 2^62 bytes: allocating it would abort the process.
        let mut bytes = varint(1 << 62);
        bytes.extend_from_slice(b"abc");
        let codec = BincodeCodec::default();
        assert_eq!(
            codec.decode::<String>(&bytes),
            Err(WireError::Truncated {
                needed: bytes.len() + (1 << 62) - 3,
                available: bytes.len(),
            })
        );
        assert!(codec.decode::<serde_bytes_like::ByteBuf>(&bytes).is_err());
    }

    #[test]
    fn hostile_sequence_length_is_refused_without_allocating() {
        let codec = BincodeCodec::default();
        let mut bytes = varint(1 << 62);
        bytes.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(
            codec.decode::<Vec<u64>>(&bytes),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            codec.decode::<BTreeMap<u64, String>>(&bytes),
            Err(WireError::Truncated { .. })
        ));
        // Zero-sized elements take no input: the element budget stops the loop.
        assert_eq!(
            codec.decode::<Vec<()>>(&bytes[..bytes.len() - 3]),
            Err(WireError::TooLarge {
                what: "payload element count",
                size: 10,
                max: 9
            })
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let codec = BincodeCodec::default();
        let mut tree = Tree(Vec::new());
        for _ in 0..200 {
            tree = Tree(vec![tree]);
        }
        let bytes = codec.encode(&tree).expect("an in-memory tree encodes");
        assert!(matches!(
            codec.decode::<Tree>(&bytes),
            Err(WireError::TooLarge {
                what: "payload nesting depth",
                ..
            })
        ));
        let mut shallow = Tree(Vec::new());
        for _ in 0..20 {
            shallow = Tree(vec![shallow]);
        }
        let bytes = codec.encode(&shallow).expect("an in-memory tree encodes");
        assert_eq!(codec.decode::<Tree>(&bytes), Ok(shallow));
    }

    #[test]
    fn limit_is_enforced_both_ways() {
        let codec = BincodeCodec::new(16);
        let fits = "x".repeat(15);
        let bytes = codec.encode(&fits).expect("16 bytes fit");
        assert_eq!(bytes.len(), 16);
        assert_eq!(codec.decode::<String>(&bytes), Ok(fits));

        let too_long = "x".repeat(16);
        assert_eq!(
            codec.encode(&too_long),
            Err(WireError::TooLarge {
                what: "encoded payload",
                size: 17,
                max: 16
            })
        );
        let bytes = BincodeCodec::new(64)
            .encode(&too_long)
            .expect("17 bytes fit in 64");
        assert_eq!(
            codec.decode::<String>(&bytes),
            Err(WireError::TooLarge {
                what: "payload",
                size: 17,
                max: 16
            })
        );
    }

    #[test]
    fn unsized_values_encode() {
        let codec = BincodeCodec::default();
        let slice: &[u32] = &[1, 2, 3];
        let bytes = codec.encode(slice).expect("a slice encodes");
        assert_eq!(codec.decode::<Vec<u32>>(&bytes), Ok(vec![1, 2, 3]));
        let text: &str = "hi";
        let bytes = codec.encode(text).expect("a str encodes");
        assert_eq!(codec.decode::<String>(&bytes), Ok("hi".to_owned()));
    }

    #[test]
    fn owned_and_borrowed_bytes_agree() {
        let codec = BincodeCodec::default();
        let buf = serde_bytes_like::ByteBuf(vec![1, 2, 3, 250]);
        let bytes = codec.encode(&buf).expect("bytes encode");
        assert_eq!(bytes[..], [4, 1, 2, 3, 250]);
        assert_eq!(codec.decode::<serde_bytes_like::ByteBuf>(&bytes), Ok(buf));
    }

    /// A byte buffer that goes through serde's `bytes` / `byte_buf` calls, like
    /// `serde_bytes::ByteBuf`, without the dependency.
    mod serde_bytes_like {
        use std::fmt;

        use serde::de::{Deserialize, Deserializer, Error, Visitor};
        use serde::{Serialize, Serializer};

        #[derive(Debug, PartialEq)]
        pub(super) struct ByteBuf(pub(super) Vec<u8>);

        impl Serialize for ByteBuf {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for ByteBuf {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("bytes")
                    }
                    // Only the owned form: the guard must hand it an owned buffer.
                    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                }
                d.deserialize_byte_buf(V)
            }
        }
    }
}
