//! Fuzz target: The payload codec (bincode behind `Codec`) decoding arbitrary bytes as several serde types.
#![no_main]

#[path = "../../crates/liaison-wire/tests/fuzz_bodies/codec.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
