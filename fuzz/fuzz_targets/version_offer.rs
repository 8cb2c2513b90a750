//! Fuzz target: `VersionOffer::decode` on arbitrary `Hello` payloads.
#![no_main]

#[path = "../../crates/liaison-wire/tests/fuzz_bodies/version_offer.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
