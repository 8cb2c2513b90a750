//! Frame flags: byte 1 of every frame header (PROTOCOL.md §3).

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use crate::WireError;

/// The flag byte of a frame header (PROTOCOL.md §3).
///
/// | bit | value  | name         | meaning |
/// |-----|--------|--------------|---------|
/// | 0   | `0x01` | `END`        | last message of this exchange direction |
/// | 1   | `0x02` | `SEQ`        | the header's `seq` field is meaningful |
/// | 2   | `0x04` | `ACK`        | the header's `ack` field is meaningful |
/// | 3   | `0x08` | `IGNORE_SEQ` | on `Bye`: the sender bows out of sequencing |
/// | 4–7 |        | reserved     | must be zero |
///
/// A decoder refuses reserved bits, and bits the frame's kind does not allow
/// ([`FrameKind::allowed_flags`](crate::FrameKind::allowed_flags)), with
/// [`WireError::Reserved`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// No flag set.
    pub const EMPTY: Self = Self(0);
    /// Last message the sender sends on this exchange (§3, §9.2).
    pub const END: Self = Self(0x01);
    /// The header's `seq` field carries the frame's sequence number (§3, §8).
    pub const SEQ: Self = Self(0x02);
    /// The header's `ack` field carries a cumulative acknowledgement (§3, §8.1).
    pub const ACK: Self = Self(0x04);
    /// On a `Bye`: the sender cannot honour retransmission requests and bows out of
    /// sequencing (`Ignore-Seq: *`); the peer drops its outstanding `NeedSeq` (§8.3).
    pub const IGNORE_SEQ: Self = Self(0x08);
    /// Every bit this version defines.
    pub const ALL: Self = Self(0x0f);

    /// The flags as the wire byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Flags from a wire byte, refusing bits this version does not define.
    pub const fn from_bits(bits: u8) -> Result<Self, WireError> {
        if bits & !Self::ALL.0 == 0 {
            Ok(Self(bits))
        } else {
            Err(WireError::Reserved("undefined flag bit set"))
        }
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags set in either.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The flags of `self` that are not in `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: Self) {
        self.0 &= !other.0;
    }
}

impl BitOr for Flags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.insert(rhs);
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Flags, &str); 4] = [
            (Flags::END, "END"),
            (Flags::SEQ, "SEQ"),
            (Flags::ACK, "ACK"),
            (Flags::IGNORE_SEQ, "IGNORE_SEQ"),
        ];
        f.write_str("Flags(")?;
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let unknown = self.difference(Self::ALL).0;
        if unknown != 0 {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{unknown:#04x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defined_bits_round_trip_and_others_are_refused() {
        for bits in 0..=u8::MAX {
            match Flags::from_bits(bits) {
                Ok(flags) => {
                    assert_eq!(flags.bits(), bits);
                    assert!(Flags::ALL.contains(flags));
                }
                Err(err) => {
                    assert!(matches!(err, WireError::Reserved(_)));
                    assert_ne!(bits & 0xf0, 0);
                }
            }
        }
    }

    #[test]
    fn set_operations() {
        let mut flags = Flags::END | Flags::SEQ;
        assert!(flags.contains(Flags::END));
        assert!(!flags.contains(Flags::ACK));
        flags |= Flags::ACK;
        flags.remove(Flags::END);
        assert_eq!(flags, Flags::SEQ | Flags::ACK);
        assert!(Flags::EMPTY.is_empty());
        assert_eq!(format!("{flags:?}"), "Flags(SEQ | ACK)");
        assert_eq!(format!("{:?}", Flags::EMPTY), "Flags()");
    }
}
