//! Fuzz target: `RangeSet::decode` and the range-set text parser on arbitrary bytes.
#![no_main]

#[path = "../../crates/liaison-wire/tests/fuzz_bodies/range_set.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
