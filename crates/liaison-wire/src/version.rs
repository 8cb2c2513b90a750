//! The protocol magic and version offer that open every connection (PROTOCOL.md §6).

use bytes::{BufMut, Bytes, BytesMut};

use crate::WireError;

/// The 8 bytes that start the payload of the first frame of every connection (§6):
/// ASCII `LIAISON` followed by a zero byte.
pub const MAGIC: [u8; 8] = *b"LIAISON\0";

/// The protocol version this crate implements (§6).
pub const PROTOCOL_VERSION: u16 = 1;

/// Every protocol version this crate can speak, lowest first (§6).
pub const SUPPORTED_VERSIONS: &[u16] = &[PROTOCOL_VERSION];

/// Most versions one offer may list (§6).
pub const MAX_OFFERED_VERSIONS: usize = 32;

/// The payload of a [`Hello`](crate::FrameKind::Hello) frame: the magic and the versions the
/// client speaks (PROTOCOL.md §6).
///
/// | offset | size | field |
/// |--------|------|-------|
/// | 0      | 8    | [`MAGIC`] |
/// | 8      | 1    | count `n`, 1 ..= [`MAX_OFFERED_VERSIONS`] |
/// | 9      | 2n   | `n` versions, u16 little-endian, in the client's order |
/// | 9 + 2n | rest | extensions: none in version 1; a receiver ignores them |
///
/// ```
/// use liaison_wire::{VersionOffer, PROTOCOL_VERSION, SUPPORTED_VERSIONS};
///
/// let offer = VersionOffer::new(&[1, 2, 3])?;
/// let decoded = VersionOffer::decode(&offer.to_bytes())?;
/// assert_eq!(decoded, offer);
/// assert_eq!(decoded.choose(&[2, 3, 4]), Some(3));
/// assert_eq!(decoded.choose(SUPPORTED_VERSIONS), Some(PROTOCOL_VERSION));
/// # Ok::<(), liaison_wire::WireError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionOffer {
    versions: Vec<u16>,
}

impl VersionOffer {
    /// An offer of `versions`: at least one, at most [`MAX_OFFERED_VERSIONS`].
    pub fn new(versions: &[u16]) -> Result<Self, WireError> {
        check_count(versions.len())?;
        Ok(Self {
            versions: versions.to_vec(),
        })
    }

    /// An offer of [`SUPPORTED_VERSIONS`].
    pub fn supported() -> Self {
        Self {
            versions: SUPPORTED_VERSIONS.to_vec(),
        }
    }

    /// The offered versions, in the order the client listed them.
    pub fn versions(&self) -> &[u16] {
        &self.versions
    }

    /// The highest version both the offer and `supported` list, if any (§6).
    pub fn choose(&self, supported: &[u16]) -> Option<u16> {
        self.versions
            .iter()
            .copied()
            .filter(|v| supported.contains(v))
            .max()
    }

    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        MAGIC.len() + 1 + 2 * self.versions.len()
    }

    /// Appends the offer to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_slice(&MAGIC);
        // `new`, `supported` and `decode` keep 1..=MAX_OFFERED_VERSIONS versions, so the
        // count fits a byte; the fallback is never taken.
        dst.put_u8(u8::try_from(self.versions.len()).unwrap_or(u8::MAX));
        for version in &self.versions {
            dst.put_u16_le(*version);
        }
    }

    /// The offer's bytes in a buffer of their own.
    pub fn to_bytes(&self) -> Bytes {
        let mut dst = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut dst);
        dst.freeze()
    }

    /// Decodes an offer from a `Hello` payload, ignoring extensions after the version list.
    ///
    /// Errors: fewer than 9 bytes or fewer versions than announced → [`WireError::Truncated`];
    /// wrong magic → [`WireError::BadMagic`]; zero versions → [`WireError::NoVersions`];
    /// more than [`MAX_OFFERED_VERSIONS`] → [`WireError::TooLarge`].
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        Self::decode_with_extensions(payload).map(|(offer, _)| offer)
    }

    /// As [`decode`](Self::decode), also returning the extension bytes after the version
    /// list (empty from a version-1 sender).
    pub fn decode_with_extensions(payload: &[u8]) -> Result<(Self, &[u8]), WireError> {
        let truncated = |needed| WireError::Truncated {
            needed,
            available: payload.len(),
        };
        let (magic, rest) = payload
            .split_first_chunk::<8>()
            .ok_or_else(|| truncated(MAGIC.len() + 1))?;
        if *magic != MAGIC {
            return Err(WireError::BadMagic(*magic));
        }
        let (&count, rest) = rest
            .split_first()
            .ok_or_else(|| truncated(MAGIC.len() + 1))?;
        let count = usize::from(count);
        check_count(count)?;
        let list_len = 2 * count;
        if rest.len() < list_len {
            return Err(truncated(MAGIC.len() + 1 + list_len));
        }
        let (list, extensions) = rest.split_at(list_len);
        let versions = list
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        Ok((Self { versions }, extensions))
    }
}

fn check_count(count: usize) -> Result<(), WireError> {
    if count == 0 {
        return Err(WireError::NoVersions);
    }
    if count > MAX_OFFERED_VERSIONS {
        return Err(WireError::TooLarge {
            what: "version offer",
            size: u64::try_from(count).unwrap_or(u64::MAX),
            max: MAX_OFFERED_VERSIONS as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn offer_round_trips(versions in proptest::collection::vec(any::<u16>(), 1..=32)) {
            let offer = VersionOffer::new(&versions)?;
            let bytes = offer.to_bytes();
            prop_assert_eq!(bytes.len(), offer.encoded_len());
            prop_assert_eq!(&bytes[..8], &MAGIC[..]);
            prop_assert_eq!(VersionOffer::decode(&bytes)?, offer);
        }

        #[test]
        fn choose_is_the_highest_common_version(
            offered in proptest::collection::vec(0u16..16, 1..=32),
            supported in proptest::collection::vec(0u16..16, 0..8),
        ) {
            let offer = VersionOffer::new(&offered)?;
            let chosen = offer.choose(&supported);
            let common: Vec<u16> =
                offered.iter().copied().filter(|v| supported.contains(v)).collect();
            prop_assert_eq!(chosen, common.iter().copied().max());
            if let Some(v) = chosen {
                prop_assert!(offered.contains(&v) && supported.contains(&v));
            }
        }

        #[test]
        fn extensions_are_returned_and_ignored(
            versions in proptest::collection::vec(any::<u16>(), 1..=4),
            extensions in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let offer = VersionOffer::new(&versions)?;
            let mut bytes = BytesMut::new();
            offer.encode(&mut bytes);
            bytes.extend_from_slice(&extensions);
            let (decoded, rest) = VersionOffer::decode_with_extensions(&bytes)?;
            prop_assert_eq!(&decoded, &offer);
            prop_assert_eq!(rest, &extensions[..]);
            prop_assert_eq!(VersionOffer::decode(&bytes)?, offer);
        }

        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(offer) = VersionOffer::decode(&bytes) {
                prop_assert!(bytes.starts_with(&offer.to_bytes()));
            }
        }
    }

    #[test]
    fn bad_magic_is_refused() {
        let mut bytes = VersionOffer::supported().to_bytes().to_vec();
        bytes[..8].copy_from_slice(b"GET / HT");
        assert_eq!(
            VersionOffer::decode(&bytes),
            Err(WireError::BadMagic(*b"GET / HT"))
        );
    }

    #[test]
    fn empty_version_list_is_refused() {
        let mut bytes = MAGIC.to_vec();
        bytes.push(0);
        assert_eq!(VersionOffer::decode(&bytes), Err(WireError::NoVersions));
        assert_eq!(VersionOffer::new(&[]), Err(WireError::NoVersions));
    }

    #[test]
    fn too_many_versions_are_refused() {
        let mut bytes = MAGIC.to_vec();
        bytes.push(33);
        bytes.extend(std::iter::repeat_n(0u8, 66));
        assert_eq!(
            VersionOffer::decode(&bytes),
            Err(WireError::TooLarge {
                what: "version offer",
                size: 33,
                max: 32
            })
        );
        assert!(VersionOffer::new(&[1; 33]).is_err());
        assert!(VersionOffer::new(&[1; 32]).is_ok());
    }

    #[test]
    fn short_payloads_are_truncated() {
        assert_eq!(
            VersionOffer::decode(b"LIAI"),
            Err(WireError::Truncated {
                needed: 9,
                available: 4
            })
        );
        assert_eq!(
            VersionOffer::decode(&MAGIC),
            Err(WireError::Truncated {
                needed: 9,
                available: 8
            })
        );
        let mut bytes = MAGIC.to_vec();
        bytes.extend([2, 1, 0, 2]);
        assert_eq!(
            VersionOffer::decode(&bytes),
            Err(WireError::Truncated {
                needed: 13,
                available: 12
            })
        );
    }

    #[test]
    fn supported_offer_agrees_with_itself() {
        let offer = VersionOffer::supported();
        assert_eq!(offer.versions(), SUPPORTED_VERSIONS);
        assert_eq!(offer.choose(SUPPORTED_VERSIONS), Some(PROTOCOL_VERSION));
        assert_eq!(offer.choose(&[]), None);
        assert_eq!(offer.to_bytes()[..], *b"LIAISON\0\x01\x01\x00");
    }
}
