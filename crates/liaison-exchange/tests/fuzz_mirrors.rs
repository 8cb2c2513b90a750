//! The fuzz targets of `fuzz/` for this crate run as proptests, so every test run exercises
//! their code: each target and the tests below call the same `run` from `fuzz_bodies/`.

use bytes::Bytes;
use liaison_exchange::payload::{Begin, Cancel, Outcome};
use liaison_exchange::CancelCode;
use proptest::prelude::*;

#[path = "fuzz_bodies/exchange_payloads.rs"]
mod exchange_payloads;
#[path = "fuzz_bodies/exchange_table.rs"]
mod exchange_table;

fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Operation bytes biased towards a working pair: open, send, deliver, transmit, receive.
fn table_ops() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![
        3 => 0u8..2,                        // open
        5 => (0u8..2).prop_map(|s| 2 | s),  // send
        2 => (0u8..2).prop_map(|s| 4 | s),  // end
        4 => (0u8..2).prop_map(|s| 6 | s),  // receive
        1 => (0u8..2).prop_map(|s| 8 | s),  // cancel
        1 => (0u8..2).prop_map(|s| 10 | s), // drop a handle
        6 => (0u8..2).prop_map(|s| 12 | s), // deliver
        4 => (0u8..2).prop_map(|s| 14 | s), // transmit
        1 => any::<u8>(),
    ];
    prop::collection::vec((op, any::<u8>()), 0..300)
        .prop_map(|ops| ops.into_iter().flat_map(|(op, arg)| [op, arg]).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn exchange_payloads_target_on_arbitrary_bytes(data in any_bytes(64)) {
        exchange_payloads::run(&data);
    }

    #[test]
    fn exchange_payloads_target_on_valid_payloads(
        target in any::<u64>(),
        credit in any::<u32>(),
        message in prop::option::of(any_bytes(24)),
        code in any::<u16>(),
        text in "\\PC{0,40}",
    ) {
        let begin = Begin { target, credit, message: message.map(Bytes::from) };
        exchange_payloads::run(&begin.encode());
        exchange_payloads::run(&Outcome::Failed(text.clone()).encode());
        let cancel = Cancel { code: CancelCode::from(code), reason: text };
        exchange_payloads::run(&cancel.encode());
    }

    #[test]
    fn exchange_table_target_on_arbitrary_bytes(data in any_bytes(600)) {
        exchange_table::run(&data);
    }

    #[test]
    fn exchange_table_target_on_a_working_pair(data in table_ops()) {
        exchange_table::run(&data);
    }
}
