//! Fuzz target: Two sans-IO `ExchangeTable`s joined by a link the input drives, with hostile frames mixed in.
#![no_main]

#[path = "../../crates/liaison-exchange/tests/fuzz_bodies/exchange_table.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
