//! Fuzz target: Two `proto::Connection`s over a link the input drives: handshake, session, termination.
#![no_main]

#[path = "../../crates/liaison-session/tests/fuzz_bodies/handshake.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
