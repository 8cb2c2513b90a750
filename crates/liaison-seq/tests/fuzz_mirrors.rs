//! The fuzz targets of `fuzz/` for this crate run as proptests, so every test run exercises
//! their code: the target and the tests below call the same `run` from `fuzz_bodies/`.

use proptest::prelude::*;

#[path = "fuzz_bodies/sequencer.rs"]
mod sequencer;

/// Operation bytes biased towards a working link: mostly send, transmit and deliver.
fn link_ops() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![
        4 => (0u8..2).prop_map(|side| side),          // send
        4 => (0u8..2).prop_map(|side| 2 | side),      // transmit
        5 => (0u8..2).prop_map(|side| 4 | side),      // deliver
        1 => (0u8..2).prop_map(|side| 6 | side),      // drop
        1 => (0u8..2).prop_map(|side| 8 | side),      // duplicate
        1 => (0u8..2).prop_map(|side| 10 | side),     // reorder
        2 => Just(12u8),                              // advance the clock
        2 => (0u8..2).prop_map(|side| 16 | side),     // take events
        1 => any::<u8>(),                             // anything, hostile included
    ];
    (
        any::<u8>(),
        prop::collection::vec((op, any::<u8>()), 0..300),
    )
        .prop_map(|(setup, ops)| {
            let mut bytes = vec![setup];
            for (op, arg) in ops {
                bytes.push(op);
                bytes.push(arg);
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sequencer_target_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
        sequencer::run(&data);
    }

    #[test]
    fn sequencer_target_on_a_working_link(data in link_ops()) {
        sequencer::run(&data);
    }
}
