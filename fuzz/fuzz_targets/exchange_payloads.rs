//! Fuzz target: The exchange payloads (`ExchangeBegin`, `ExchangeEnd`, `ExchangeCancel`, credit).
#![no_main]

#[path = "../../crates/liaison-exchange/tests/fuzz_bodies/exchange_payloads.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
