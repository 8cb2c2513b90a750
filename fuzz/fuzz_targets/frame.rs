//! Fuzz target: `Frame::decode` and `Frame::decode_from` on arbitrary bytes.
#![no_main]

#[path = "../../crates/liaison-wire/tests/fuzz_bodies/frame.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
