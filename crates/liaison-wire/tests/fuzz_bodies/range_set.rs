//! Body of the `range_set` fuzz target, shared with the `fuzz_mirrors` proptest.

/// Decodes `data` as a binary `NeedSeq` range set and, if it is UTF-8, as the text form.
/// A binary set that decodes must re-encode to the same bytes (the form is canonical,
/// PROTOCOL.md §8.2); any set must survive a trip through its text form.
pub(crate) fn run(data: &[u8]) {
    use bytes::BytesMut;
    use liaison_wire::{Limits, RangeSet};

    if let Ok(set) = RangeSet::decode(data, Limits::default().max_ranges) {
        let mut bytes = BytesMut::new();
        set.encode(&mut bytes);
        assert_eq!(&bytes[..], data);
        assert_eq!(set.to_string().parse::<RangeSet>().ok(), Some(set));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(set) = text.parse::<RangeSet>() {
            assert_eq!(set.to_string().parse::<RangeSet>().ok(), Some(set));
        }
    }
}
