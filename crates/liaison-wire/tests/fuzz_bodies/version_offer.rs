//! Body of the `version_offer` fuzz target, shared with the `fuzz_mirrors` proptest.

/// Decodes `data` as a `Hello` payload. An offer that decodes must hold 1 to 32 versions,
/// re-encode to the bytes before its extensions (PROTOCOL.md §6), and choose only a version
/// both sides list.
pub(crate) fn run(data: &[u8]) {
    use liaison_wire::{VersionOffer, MAX_OFFERED_VERSIONS, SUPPORTED_VERSIONS};

    if let Ok((offer, extensions)) = VersionOffer::decode_with_extensions(data) {
        assert!(!offer.versions().is_empty());
        assert!(offer.versions().len() <= MAX_OFFERED_VERSIONS);
        assert_eq!([&offer.to_bytes()[..], extensions].concat(), data);
        if let Some(chosen) = offer.choose(SUPPORTED_VERSIONS) {
            assert!(offer.versions().contains(&chosen));
            assert!(SUPPORTED_VERSIONS.contains(&chosen));
        }
    }
}
