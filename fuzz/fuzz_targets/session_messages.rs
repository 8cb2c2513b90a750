//! Fuzz target: The session's handshake and control payloads (`Welcome`, `Reject`, `Config*`, `Bye`).
#![no_main]

#[path = "../../crates/liaison-session/tests/fuzz_bodies/session_messages.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
