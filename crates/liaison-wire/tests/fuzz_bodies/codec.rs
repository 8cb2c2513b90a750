//! Body of the `codec` fuzz target, shared with the `fuzz_mirrors` proptest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An enum with every kind of variant, to reach the codec's enum paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Shape {
    Unit,
    Newtype(u64),
    Tuple(i32, String),
    Struct { name: String, tags: Vec<u16> },
}

/// Nesting as deep as the input can claim.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tree(pub(crate) Vec<Self>);

/// Decodes `data` as several serde types with the default codec and with a small bound.
/// Whatever decodes encodes again to a payload that decodes to the same value; decoding
/// never allocates on the word of a length prefix (PROTOCOL.md §5.2) and never panics.
pub(crate) fn run(data: &[u8]) {
    use liaison_wire::{BincodeCodec, Codec, DefaultCodec};

    fn round_trip<T, C>(codec: &C, data: &[u8])
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
        C: Codec,
    {
        if let Ok(value) = codec.decode::<T>(data) {
            let again = codec.encode(&value).expect("a decoded value encodes");
            assert!(again.len() <= data.len(), "{value:?} grew on re-encoding");
            assert_eq!(codec.decode::<T>(&again).ok(), Some(value));
        }
    }

    for codec in [DefaultCodec::default(), BincodeCodec::new(64)] {
        round_trip::<String, _>(&codec, data);
        round_trip::<Vec<u8>, _>(&codec, data);
        round_trip::<Vec<Vec<u32>>, _>(&codec, data);
        round_trip::<Option<(u64, i64, bool)>, _>(&codec, data);
        round_trip::<BTreeMap<String, u64>, _>(&codec, data);
        round_trip::<Vec<Shape>, _>(&codec, data);
        round_trip::<Tree, _>(&codec, data);
        round_trip::<Vec<()>, _>(&codec, data);
        round_trip::<(char, i128), _>(&codec, data);
    }
}
