//! Fuzz target: Two `Sequencer`s over a lossy link the input drives, with hostile messages mixed in.
#![no_main]

#[path = "../../crates/liaison-seq/tests/fuzz_bodies/sequencer.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
