//! The fuzz targets of `fuzz/` run as proptests, so every test run exercises their code:
//! each target and each test below call the same `run` function from `fuzz_bodies/`.

use std::ops::RangeInclusive;

use bytes::{Bytes, BytesMut};
use liaison_wire::{Codec, DefaultCodec, Flags, Frame, FrameKind, RangeSet, VersionOffer};
use proptest::prelude::*;

#[path = "fuzz_bodies/codec.rs"]
mod codec;
#[path = "fuzz_bodies/frame.rs"]
mod frame;
#[path = "fuzz_bodies/range_set.rs"]
mod range_set;
#[path = "fuzz_bodies/version_offer.rs"]
mod version_offer;

fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// A valid frame, so the targets also see input that decodes.
fn valid_frame() -> impl Strategy<Value = Frame> {
    (
        proptest::sample::select(FrameKind::ALL),
        any::<u8>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any_bytes(256),
    )
        .prop_map(|(kind, bits, exchange, seq, ack, payload)| {
            let flags =
                Flags::from_bits(bits & kind.allowed_flags().bits()).unwrap_or(Flags::EMPTY);
            let mut frame = Frame::control(kind, Bytes::from(payload)).with_flags(flags);
            if kind.is_exchange() {
                frame.exchange = exchange;
            }
            if flags.contains(Flags::SEQ) {
                frame.seq = seq;
            }
            if flags.contains(Flags::ACK) {
                frame.ack = ack;
            }
            frame
        })
}

/// Bytes with, optionally, one byte replaced: near-valid input.
fn corrupt(mut bytes: Vec<u8>, at: Option<(prop::sample::Index, u8)>) -> Vec<u8> {
    if let Some((index, value)) = at {
        if !bytes.is_empty() {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
    }
    bytes
}

fn ranges() -> impl Strategy<Value = Vec<RangeInclusive<u64>>> {
    proptest::collection::vec(
        (0u64..1000, 0u64..20).prop_map(|(start, len)| start..=start + len),
        0..16,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn frame_target_on_arbitrary_bytes(data in any_bytes(512)) {
        frame::run(&data);
    }

    #[test]
    fn frame_target_on_valid_and_corrupted_streams(
        frames in proptest::collection::vec(valid_frame(), 1..4),
        at in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
        tail in any_bytes(40),
    ) {
        let mut wire = BytesMut::new();
        for frame in &frames {
            frame.encode(&mut wire);
        }
        wire.extend_from_slice(&tail);
        frame::run(&corrupt(wire.to_vec(), at));
        frame::run(&frames[0].to_bytes());
    }

    #[test]
    fn version_offer_target_on_arbitrary_bytes(data in any_bytes(96)) {
        version_offer::run(&data);
    }

    #[test]
    fn version_offer_target_on_valid_and_corrupted_offers(
        versions in proptest::collection::vec(any::<u16>(), 1..=32),
        extensions in any_bytes(16),
        at in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let offer = VersionOffer::new(&versions)?;
        let data = [&offer.to_bytes()[..], &extensions].concat();
        version_offer::run(&data);
        version_offer::run(&corrupt(data, at));
    }

    #[test]
    fn range_set_target_on_arbitrary_bytes(data in any_bytes(128)) {
        range_set::run(&data);
    }

    #[test]
    fn range_set_target_on_valid_and_corrupted_sets(
        ranges in ranges(),
        at in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let set: RangeSet = ranges.into_iter().collect();
        let mut bytes = BytesMut::new();
        set.encode(&mut bytes);
        range_set::run(&bytes);
        range_set::run(&corrupt(bytes.to_vec(), at));
        range_set::run(set.to_string().as_bytes());
    }

    #[test]
    fn range_set_target_on_text(text in "[0-9.,  ]{0,40}") {
        range_set::run(text.as_bytes());
    }

    #[test]
    fn codec_target_on_arbitrary_bytes(data in any_bytes(96)) {
        codec::run(&data);
    }

    #[test]
    fn codec_target_on_valid_and_corrupted_values(
        shapes in proptest::collection::vec(
            prop_oneof![
                Just(codec::Shape::Unit),
                any::<u64>().prop_map(codec::Shape::Newtype),
                (any::<i32>(), "\\PC{0,8}").prop_map(|(n, s)| codec::Shape::Tuple(n, s)),
                ("\\PC{0,8}", proptest::collection::vec(any::<u16>(), 0..4))
                    .prop_map(|(name, tags)| codec::Shape::Struct { name, tags }),
            ],
            0..6,
        ),
        at in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let bytes = DefaultCodec::default().encode(&shapes)?;
        codec::run(&bytes);
        codec::run(&corrupt(bytes.to_vec(), at));
        let deep = (0..200).fold(codec::Tree(Vec::new()), |tree, _| codec::Tree(vec![tree]));
        if let Ok(bytes) = DefaultCodec::default().encode(&deep) {
            codec::run(&bytes);
        }
    }
}
