//! `RangeSet`: a set of sequence numbers kept as sorted, disjoint inclusive ranges, with the
//! `Need-Seq` text form (`12..17,19`), a binary form and a serde form.
//!
//! # Text form
//!
//! Comma-separated items, each a number (`19`) or an inclusive range (`12..17`). Whitespace
//! around items is tolerated when parsing (`12..17, 19`, as a `Need-Seq: NUM, X..Y` header is
//! written); a range whose start is above its end is an error; overlapping or adjacent items
//! merge. Several lists concatenated with `,` parse to their union. The empty string is the
//! empty set. [`Display`](fmt::Display) writes the canonical form: ranges in increasing order,
//! one number where a range holds one number, no spaces.
//!
//! # Binary form
//!
//! The payload of a `NeedSeq` frame (docs/PROTOCOL.md §8.2). All integers little-endian:
//!
//! ```text
//! offset        size  field
//! 0             4     count: u32, the number of ranges
//! 4 + 16*i      8     start of range i (u64, inclusive)
//! 4 + 16*i + 8  8     end of range i (u64, inclusive)
//! ```
//!
//! Every range has `start <= end`, and ranges are strictly increasing and non-adjacent:
//! `end(i) + 1 < start(i + 1)`. So each set has exactly one encoding. [`RangeSet::decode`]
//! checks `count <= max_ranges` and `count * 16 ==` the remaining length before it builds
//! anything, and refuses any other layout with [`WireError::Malformed`].
//!
//! # Serde form
//!
//! A sequence of `(start, end)` pairs with the same rules as the binary form, checked when
//! deserializing. The number of pairs is bounded by the codec's byte limit.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use bytes::{BufMut, BytesMut};

use crate::WireError;

/// Bytes of the count field that starts the binary form.
const COUNT_LEN: usize = 4;
/// Bytes of one `(start, end)` pair in the binary form.
const PAIR_LEN: usize = 16;

/// A set of `u64` sequence numbers stored as sorted, disjoint, non-adjacent inclusive ranges.
///
/// Inserting merges with neighbouring ranges, so `{1..=3} + 4` is the single range `1..=4`.
/// Memory grows with the number of ranges, not with the number of numbers.
///
/// ```
/// use liaison_wire::RangeSet;
///
/// let mut missing: RangeSet = "12..17, 19".parse()?;
/// missing.insert(18);
/// assert_eq!(missing.to_string(), "12..19");
/// assert_eq!(missing.len(), 8);
/// assert_eq!(missing.range_count(), 1);
/// # Ok::<(), liaison_wire::ParseRangeSetError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RangeSet {
    /// start -> end (inclusive); invariant: for consecutive entries, `end + 1 < next start`.
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one number.
    pub fn insert(&mut self, value: u64) {
        self.insert_range(value..=value);
    }

    /// Adds every number of `range`, merging with overlapping or adjacent ranges.
    /// An empty range (`start > end`) adds nothing.
    pub fn insert_range(&mut self, range: RangeInclusive<u64>) {
        let (mut start, mut end) = range.into_inner();
        if start > end {
            return;
        }
        // The range that starts at or before `start`: merge when it overlaps or touches.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e.saturating_add(1) >= start {
                if e >= end {
                    return;
                }
                start = s;
                self.ranges.remove(&s);
            }
        }
        // Ranges that start inside `start..=end + 1` are swallowed.
        while let Some((&s, &e)) = self.ranges.range(start..).next() {
            if s > end.saturating_add(1) {
                break;
            }
            self.ranges.remove(&s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// Removes one number; returns whether it was present.
    pub fn remove(&mut self, value: u64) -> bool {
        let had = self.contains(value);
        self.remove_range(value..=value);
        had
    }

    /// Removes every number of `range` (an empty range removes nothing).
    pub fn remove_range(&mut self, range: RangeInclusive<u64>) {
        let (start, end) = range.into_inner();
        if start > end {
            return;
        }
        let hit: Vec<(u64, u64)> = self
            .ranges
            .range(..=end)
            .rev()
            .take_while(|&(_, &e)| e >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in hit {
            self.ranges.remove(&s);
            if s < start {
                self.ranges.insert(s, start - 1);
            }
            if e > end {
                self.ranges.insert(end + 1, e);
            }
        }
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: u64) -> bool {
        self.ranges
            .range(..=value)
            .next_back()
            .is_some_and(|(_, &e)| e >= value)
    }

    /// Whether the set holds no number.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many numbers the set holds (saturating at `u64::MAX` for the full `0..=u64::MAX`).
    pub fn len(&self) -> u64 {
        self.ranges.iter().fold(0u64, |n, (&s, &e)| {
            n.saturating_add((e - s).saturating_add(1))
        })
    }

    /// How many disjoint ranges the set holds.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// The smallest number in the set.
    pub fn first(&self) -> Option<u64> {
        self.ranges.first_key_value().map(|(&s, _)| s)
    }

    /// The largest number in the set.
    pub fn last(&self) -> Option<u64> {
        self.ranges.last_key_value().map(|(_, &e)| e)
    }

    /// Every number in increasing order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.ranges().flatten()
    }

    /// The ranges in increasing order; they are disjoint and non-adjacent.
    pub fn ranges(
        &self,
    ) -> impl DoubleEndedIterator<Item = RangeInclusive<u64>> + ExactSizeIterator + '_ {
        self.ranges.iter().map(|(&s, &e)| s..=e)
    }

    /// Length of [`encode`](Self::encode)'s output in bytes.
    pub fn encoded_len(&self) -> usize {
        COUNT_LEN.saturating_add(PAIR_LEN.saturating_mul(self.ranges.len()))
    }

    /// Appends the binary form (see the module docs) to `dst`.
    ///
    /// # Panics
    ///
    /// If the set holds more than `u32::MAX` ranges, which takes well over 100 GiB of memory;
    /// [`decode`](Self::decode) never builds more than its `max_ranges`.
    pub fn encode(&self, dst: &mut BytesMut) {
        // The count fits: see "Panics" above.
        let count = u32::try_from(self.ranges.len()).expect("range count exceeds u32::MAX");
        dst.reserve(self.encoded_len());
        dst.put_u32_le(count);
        for (&s, &e) in &self.ranges {
            dst.put_u64_le(s);
            dst.put_u64_le(e);
        }
    }

    /// Reads the binary form (see the module docs); `src` must hold exactly one encoded set.
    ///
    /// The count is checked against `max_ranges` and the length of `src` before anything is
    /// allocated, so a hostile count costs nothing.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] when `src` is shorter than the count needs,
    /// [`WireError::TooManyRanges`] when the count exceeds `max_ranges`, and
    /// [`WireError::Malformed`] for trailing bytes or ranges that are inverted, overlapping,
    /// adjacent or out of order.
    pub fn decode(src: &[u8], max_ranges: usize) -> Result<Self, WireError> {
        let Some((count, body)) = src.split_first_chunk::<COUNT_LEN>() else {
            return Err(WireError::Truncated {
                needed: COUNT_LEN,
                available: src.len(),
            });
        };
        let count = u32::from_le_bytes(*count);
        let too_many = WireError::TooManyRanges {
            count: u64::from(count),
            max: max_ranges,
        };
        let n = match usize::try_from(count) {
            Ok(n) if n <= max_ranges => n,
            _ => return Err(too_many),
        };
        let body_len = n.checked_mul(PAIR_LEN).ok_or(too_many.clone())?;
        if body.len() < body_len {
            return Err(WireError::Truncated {
                needed: body_len.checked_add(COUNT_LEN).ok_or(too_many)?,
                available: src.len(),
            });
        }
        if body.len() > body_len {
            return Err(WireError::Malformed("range set: trailing bytes"));
        }
        let mut set = Self::new();
        let mut rest = body;
        while let Some((start, tail)) = rest.split_first_chunk::<8>() {
            let Some((end, tail)) = tail.split_first_chunk::<8>() else {
                return Err(WireError::Malformed("range set: odd number of bounds"));
            };
            set.push_canonical(u64::from_le_bytes(*start), u64::from_le_bytes(*end))
                .map_err(WireError::Malformed)?;
            rest = tail;
        }
        Ok(set)
    }

    /// Appends `start..=end` after every range already held, refusing anything that is not the
    /// canonical layout (inverted, overlapping, adjacent or out of order).
    fn push_canonical(&mut self, start: u64, end: u64) -> Result<(), &'static str> {
        if start > end {
            return Err("range set: range start above its end");
        }
        if let Some(last) = self.last() {
            if last.saturating_add(1) >= start {
                return Err("range set: ranges out of order, overlapping or adjacent");
            }
        }
        self.ranges.insert(start, end);
        Ok(())
    }
}

impl fmt::Debug for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RangeSet")
            .field(&format_args!("{self}"))
            .finish()
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (&s, &e)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if s == e {
                write!(f, "{s}")?;
            } else {
                write!(f, "{s}..{e}")?;
            }
        }
        Ok(())
    }
}

/// Why a text range list (`12..17,19`) could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseRangeSetError {
    /// Two commas with nothing between them, or a leading or trailing comma.
    #[error("empty item in range list")]
    EmptyItem,
    /// An item is not a decimal `u64` (shown cut to 32 characters).
    #[error("invalid number {0:?} in range list")]
    InvalidNumber(String),
    /// A range `a..b` with `a > b`.
    #[error("range {start}..{end} has its start above its end")]
    Inverted {
        /// The range's start.
        start: u64,
        /// The range's end.
        end: u64,
    },
}

/// Parses a decimal `u64` made of ASCII digits only (no sign, no spaces).
fn parse_number(text: &str) -> Result<u64, ParseRangeSetError> {
    let invalid = || ParseRangeSetError::InvalidNumber(text.chars().take(32).collect());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse().map_err(|_| invalid())
}

impl FromStr for RangeSet {
    type Err = ParseRangeSetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = Self::new();
        if s.trim().is_empty() {
            return Ok(set);
        }
        for item in s.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(ParseRangeSetError::EmptyItem);
            }
            if let Some((start, end)) = item.split_once("..") {
                let (start, end) = (parse_number(start)?, parse_number(end)?);
                if start > end {
                    return Err(ParseRangeSetError::Inverted { start, end });
                }
                set.insert_range(start..=end);
            } else {
                set.insert(parse_number(item)?);
            }
        }
        Ok(set)
    }
}

impl Extend<u64> for RangeSet {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, iter: I) {
        for value in iter {
            self.insert(value);
        }
    }
}

/// Union with each range: `a.extend(b.ranges())` is how several `Need-Seq` lists concatenate.
impl Extend<RangeInclusive<u64>> for RangeSet {
    fn extend<I: IntoIterator<Item = RangeInclusive<u64>>>(&mut self, iter: I) {
        for range in iter {
            self.insert_range(range);
        }
    }
}

impl FromIterator<u64> for RangeSet {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut set = Self::new();
        set.extend(iter);
        set
    }
}

impl FromIterator<RangeInclusive<u64>> for RangeSet {
    fn from_iter<I: IntoIterator<Item = RangeInclusive<u64>>>(iter: I) -> Self {
        let mut set = Self::new();
        set.extend(iter);
        set
    }
}

impl serde::Serialize for RangeSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.ranges.iter().map(|(&s, &e)| (s, e)))
    }
}

impl<'de> serde::Deserialize<'de> for RangeSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Visits the sequence of `(start, end)` pairs.
        struct PairsVisitor;

        impl<'de> serde::de::Visitor<'de> for PairsVisitor {
            type Value = RangeSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of increasing, non-adjacent (start, end) pairs")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut set = RangeSet::new();
                while let Some((start, end)) = seq.next_element::<(u64, u64)>()? {
                    set.push_canonical(start, end)
                        .map_err(serde::de::Error::custom)?;
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(PairsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use serde::de::IntoDeserializer;
    use serde::Deserialize;

    use super::*;
    use crate::{Codec, DefaultCodec};

    fn set(text: &str) -> RangeSet {
        text.parse().expect("test input parses")
    }

    fn encoded(set: &RangeSet) -> Vec<u8> {
        let mut buf = BytesMut::new();
        set.encode(&mut buf);
        buf.to_vec()
    }

    /// Builds a binary form by hand from a count and pairs.
    fn raw(count: u32, pairs: &[(u64, u64)]) -> Vec<u8> {
        let mut buf = count.to_le_bytes().to_vec();
        for &(s, e) in pairs {
            buf.extend_from_slice(&s.to_le_bytes());
            buf.extend_from_slice(&e.to_le_bytes());
        }
        buf
    }

    /// The layout invariant: sorted, each range non-empty, gaps of at least one number.
    fn assert_canonical(set: &RangeSet) {
        let ranges: Vec<_> = set.ranges().collect();
        for r in &ranges {
            assert!(r.start() <= r.end(), "inverted range in {set}");
        }
        for pair in ranges.windows(2) {
            assert!(
                pair[0].end().saturating_add(1) < *pair[1].start(),
                "ranges touch in {set}"
            );
        }
    }

    #[test]
    fn insert_merges_overlapping_and_adjacent_ranges() {
        let mut s = RangeSet::new();
        s.insert_range(10..=12);
        s.insert_range(20..=22);
        assert_eq!(s.range_count(), 2);
        s.insert(13);
        assert_eq!(s.to_string(), "10..13,20..22");
        s.insert_range(14..=19);
        assert_eq!(s.to_string(), "10..22");
        s.insert_range(5..=30);
        assert_eq!(s.to_string(), "5..30");
        s.insert_range(7..=9);
        assert_eq!(s.to_string(), "5..30");
        let (high, low) = (3, 1);
        s.insert_range(high..=low);
        assert_eq!(s.len(), 26);
        assert_canonical(&s);
    }

    #[test]
    fn remove_splits_ranges() {
        let mut s = set("1..10");
        assert!(s.remove(5));
        assert!(!s.remove(5));
        assert_eq!(s.to_string(), "1..4,6..10");
        s.remove_range(0..=1);
        s.remove_range(9..=100);
        assert_eq!(s.to_string(), "2..4,6..8");
        s.remove_range(3..=7);
        assert_eq!(s.to_string(), "2,8");
        assert_eq!(s.first(), Some(2));
        assert_eq!(s.last(), Some(8));
        assert_eq!(s.iter().collect::<Vec<_>>(), [2, 8]);
    }

    #[test]
    fn extremes_of_u64() {
        let mut s = RangeSet::new();
        s.insert(u64::MAX);
        s.insert(u64::MAX - 1);
        assert_eq!(s.to_string(), format!("{}..{}", u64::MAX - 1, u64::MAX));
        s.insert_range(0..=u64::MAX);
        assert_eq!(s.len(), u64::MAX);
        assert_eq!(s.range_count(), 1);
        assert!(s.remove(u64::MAX));
        assert!(s.remove(0));
        assert_eq!(s.len(), u64::MAX - 1); // 2^64 numbers less two
        assert!(s.contains(1) && !s.contains(u64::MAX));
    }

    #[test]
    fn need_seq_text_form() {
        let s = set("12..17,19");
        assert_eq!(s.iter().collect::<Vec<_>>(), [12, 13, 14, 15, 16, 17, 19]);
        assert_eq!(s.to_string(), "12..17,19");
        assert_eq!(set(" 12..17, 19 "), s);
        assert_eq!(set("19,12..15,14..17"), s);
        assert_eq!(set("1..3,4").to_string(), "1..4");
        assert_eq!(set("5..5").to_string(), "5");
        assert_eq!(set(""), RangeSet::new());
        assert_eq!(RangeSet::new().to_string(), "");
    }

    #[test]
    fn bad_text_gets_a_typed_error() {
        let parse = |t: &str| t.parse::<RangeSet>().unwrap_err();
        assert_eq!(
            parse("17..12"),
            ParseRangeSetError::Inverted { start: 17, end: 12 }
        );
        assert_eq!(parse("1,,2"), ParseRangeSetError::EmptyItem);
        assert_eq!(parse("1,"), ParseRangeSetError::EmptyItem);
        assert!(matches!(parse("+5"), ParseRangeSetError::InvalidNumber(_)));
        assert!(matches!(
            parse("1..=5"),
            ParseRangeSetError::InvalidNumber(_)
        ));
        assert!(matches!(
            parse("1 ..5"),
            ParseRangeSetError::InvalidNumber(_)
        ));
        assert!(matches!(parse("x"), ParseRangeSetError::InvalidNumber(_)));
        assert!(matches!(
            parse("18446744073709551616"),
            ParseRangeSetError::InvalidNumber(_)
        ));
        let long = "9".repeat(1000);
        match parse(&long) {
            ParseRangeSetError::InvalidNumber(shown) => assert_eq!(shown.len(), 32),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn binary_form_is_byte_exact() {
        let s = set("1..2,5");
        let bytes = encoded(&s);
        assert_eq!(bytes, raw(2, &[(1, 2), (5, 5)]));
        assert_eq!(bytes.len(), s.encoded_len());
        assert_eq!(RangeSet::decode(&bytes, 2), Ok(s));
        assert_eq!(encoded(&RangeSet::new()), [0, 0, 0, 0]);
    }

    #[test]
    fn decode_refuses_non_canonical_layouts() {
        let malformed = |pairs: &[(u64, u64)]| {
            let count = u32::try_from(pairs.len()).expect("few pairs");
            matches!(
                RangeSet::decode(&raw(count, pairs), 16),
                Err(WireError::Malformed(_))
            )
        };
        assert!(malformed(&[(5, 3)]), "inverted");
        assert!(malformed(&[(5, 9), (1, 2)]), "unsorted");
        assert!(malformed(&[(1, 5), (5, 9)]), "overlapping");
        assert!(malformed(&[(1, 5), (6, 9)]), "adjacent");
        assert!(malformed(&[(1, u64::MAX), (3, 4)]), "after the maximum");
        let mut trailing = raw(1, &[(1, 2)]);
        trailing.push(0);
        assert_eq!(
            RangeSet::decode(&trailing, 16),
            Err(WireError::Malformed("range set: trailing bytes"))
        );
        assert_eq!(
            RangeSet::decode(&[1, 0], 16),
            Err(WireError::Truncated {
                needed: 4,
                available: 2
            })
        );
    }

    #[test]
    fn a_million_ranges_in_a_short_buffer_is_refused_before_allocating() {
        let claim = raw(1_000_000, &[(1, 2)]);
        // Within the limit: the length check refuses it, naming the size it would have needed.
        assert_eq!(
            RangeSet::decode(&claim, usize::MAX),
            Err(WireError::Truncated {
                needed: 4 + 16_000_000,
                available: claim.len()
            })
        );
        // Over the limit: refused on the count alone.
        assert_eq!(
            RangeSet::decode(&claim, 1024),
            Err(WireError::TooManyRanges {
                count: 1_000_000,
                max: 1024
            })
        );
        assert_eq!(
            RangeSet::decode(&u32::MAX.to_le_bytes(), usize::MAX),
            Err(WireError::Truncated {
                needed: 4 + 16 * usize::try_from(u32::MAX).expect("64-bit or wider"),
                available: 4
            })
        );
    }

    /// A serde deserializer over `[[start, end], ...]`, as a self-describing format reads.
    type Pairs =
        serde::de::value::SeqDeserializer<std::vec::IntoIter<Vec<u64>>, serde::de::value::Error>;

    #[test]
    fn serde_checks_the_layout() {
        let de = |pairs: Vec<Vec<u64>>| -> Pairs { pairs.into_deserializer() };
        let ok = RangeSet::deserialize(de(vec![vec![1, 3], vec![7, 7]])).expect("valid pairs");
        assert_eq!(ok, set("1..3,7"));
        assert!(RangeSet::deserialize(de(vec![vec![1, 3], vec![4, 7]])).is_err());
        assert!(RangeSet::deserialize(de(vec![vec![9, 3]])).is_err());
        assert!(RangeSet::deserialize(de(vec![vec![5, 6], vec![1, 2]])).is_err());
    }

    /// Numbers near both ends of `u64`, where off-by-one and overflow bugs live.
    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..300, (u64::MAX - 40)..=u64::MAX]
    }

    fn range_set() -> impl Strategy<Value = RangeSet> {
        prop::collection::vec((number(), 0u64..12), 0..24).prop_map(|items| {
            items
                .into_iter()
                .map(|(start, len)| start..=start.saturating_add(len))
                .collect()
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        InsertRange(u64, u64),
        Remove(u64),
        RemoveRange(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let n = || 0u64..200;
        prop_oneof![
            n().prop_map(Op::Insert),
            (n(), n()).prop_map(|(a, b)| Op::InsertRange(a, b)),
            n().prop_map(Op::Remove),
            (n(), n()).prop_map(|(a, b)| Op::RemoveRange(a, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn text_round_trip(s in range_set()) {
            let text = s.to_string();
            prop_assert_eq!(text.parse::<RangeSet>(), Ok(s.clone()));
            let spaced = text.replace(',', ", ");
            prop_assert_eq!(spaced.parse::<RangeSet>(), Ok(s));
        }

        #[test]
        fn binary_round_trip(s in range_set()) {
            let bytes = encoded(&s);
            prop_assert_eq!(bytes.len(), s.encoded_len());
            prop_assert_eq!(RangeSet::decode(&bytes, s.range_count()), Ok(s.clone()));
            if s.range_count() > 0 {
                let too_many = RangeSet::decode(&bytes, s.range_count() - 1);
                prop_assert!(
                    matches!(too_many, Err(WireError::TooManyRanges { .. })),
                    "limit not enforced"
                );
                let truncated = RangeSet::decode(&bytes[..bytes.len() - 1], usize::MAX);
                prop_assert!(
                    matches!(truncated, Err(WireError::Truncated { .. })),
                    "truncation not detected"
                );
            }
        }

        #[test]
        fn serde_form_is_a_sequence_of_pairs(s in range_set()) {
            let pairs: Vec<(u64, u64)> = s.ranges().map(|r| r.into_inner()).collect();
            // Serialize writes exactly what a sequence of (start, end) pairs writes.
            let codec = DefaultCodec::default();
            prop_assert_eq!(
                codec.encode(&s).expect("a range set serializes"),
                codec.encode(&pairs).expect("pairs serialize")
            );
            // Deserialize reads it back, and refuses the same pairs out of order.
            let nested = |pairs: &[(u64, u64)]| -> Pairs {
                pairs.iter().map(|&(a, b)| vec![a, b]).collect::<Vec<_>>().into_deserializer()
            };
            prop_assert_eq!(RangeSet::deserialize(nested(&pairs)), Ok(s));
            if pairs.len() >= 2 {
                let mut swapped = pairs.clone();
                swapped.swap(0, 1);
                prop_assert!(RangeSet::deserialize(nested(&swapped)).is_err());
            }
        }

        #[test]
        fn matches_a_btreeset_model(ops in prop::collection::vec(op(), 0..64)) {
            let mut s = RangeSet::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(x) => {
                        s.insert(x);
                        model.insert(x);
                    }
                    Op::InsertRange(a, b) => {
                        s.insert_range(a..=b);
                        model.extend(a..=b);
                    }
                    Op::Remove(x) => prop_assert_eq!(s.remove(x), model.remove(&x)),
                    Op::RemoveRange(a, b) => {
                        s.remove_range(a..=b);
                        model.retain(|x| !(a..=b).contains(x));
                    }
                }
                assert_canonical(&s);
                prop_assert_eq!(s.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(s.len(), u64::try_from(model.len()).expect("small model"));
                prop_assert_eq!(s.first(), model.first().copied());
                prop_assert_eq!(s.last(), model.last().copied());
                for x in 0..210 {
                    prop_assert_eq!(s.contains(x), model.contains(&x));
                }
            }
        }

        #[test]
        fn concatenated_lists_are_the_union(a in range_set(), b in range_set()) {
            let model: BTreeSet<u64> = a.iter().chain(b.iter()).collect();
            let mut union = a.clone();
            union.extend(b.ranges());
            assert_canonical(&union);
            prop_assert_eq!(union.iter().collect::<BTreeSet<_>>(), model);
            // `Need-Seq: a` followed by `Need-Seq: b` reads as one list `a, b`.
            let joined = [a.to_string(), b.to_string()]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            prop_assert_eq!(joined.parse::<RangeSet>(), Ok(union.clone()));
            prop_assert_eq!(a.iter().chain(b.iter()).collect::<RangeSet>(), union);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..160),
            max in 0usize..16,
        ) {
            if let Ok(s) = RangeSet::decode(&bytes, max) {
                // Whatever decodes is canonical: it re-encodes to the same bytes.
                prop_assert!(s.range_count() <= max);
                prop_assert_eq!(encoded(&s), bytes);
            }
        }

        #[test]
        fn decoding_a_claimed_count_with_random_pairs_never_panics(
            count in any::<u32>(),
            pairs in prop::collection::vec((number(), number()), 0..8),
        ) {
            let bytes = raw(count, &pairs);
            let result = RangeSet::decode(&bytes, 64);
            if usize::try_from(count).is_ok_and(|n| n != pairs.len()) {
                prop_assert!(result.is_err());
            }
        }
    }
}
