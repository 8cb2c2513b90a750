//! Decoding limits: the sizes a peer may claim before it is refused (PROTOCOL.md §5).

use crate::FrameKind;

/// The largest inputs a decoder accepts (PROTOCOL.md §5).
///
/// Every length that comes from the wire is compared with these limits before anything of
/// that size is allocated. Exceeding one is a protocol error ([`WireError::TooLarge`] or
/// [`WireError::TooManyRanges`]); the session layer ends the session with that reason.
///
/// The defaults fit each other: a `NeedSeq` with [`DEFAULT_MAX_RANGES`] ranges
/// (4 + 16 × 1024 bytes) fits in a control payload of [`DEFAULT_MAX_CONTROL_PAYLOAD`].
///
/// [`WireError::TooLarge`]: crate::WireError::TooLarge
/// [`WireError::TooManyRanges`]: crate::WireError::TooManyRanges
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Largest payload of a data frame ([`FrameKind::is_data`]), in bytes.
    pub max_frame_payload: u32,
    /// Largest payload of a control frame ([`FrameKind::is_control`]), in bytes.
    pub max_control_payload: u32,
    /// Most ranges a `NeedSeq` range set may hold.
    pub max_ranges: usize,
}

/// Default [`Limits::max_frame_payload`]: 1 MiB.
pub const DEFAULT_MAX_FRAME_PAYLOAD: u32 = 1 << 20;
/// Default [`Limits::max_control_payload`]: 64 KiB.
pub const DEFAULT_MAX_CONTROL_PAYLOAD: u32 = 64 << 10;
/// Default [`Limits::max_ranges`]: 1024.
pub const DEFAULT_MAX_RANGES: usize = 1024;

impl Limits {
    /// The default limits as a constant: 1 MiB data payloads, 64 KiB control payloads,
    /// 1024 ranges.
    pub const DEFAULT: Self = Self {
        max_frame_payload: DEFAULT_MAX_FRAME_PAYLOAD,
        max_control_payload: DEFAULT_MAX_CONTROL_PAYLOAD,
        max_ranges: DEFAULT_MAX_RANGES,
    };

    /// The largest payload a frame of `kind` may carry (§5).
    pub const fn max_payload(&self, kind: FrameKind) -> u32 {
        if kind.is_data() {
            self.max_frame_payload
        } else {
            self.max_control_payload
        }
    }

    /// The largest payload any frame may carry under these limits.
    pub const fn max_any_payload(&self) -> u32 {
        if self.max_frame_payload >= self.max_control_payload {
            self.max_frame_payload
        } else {
            self.max_control_payload
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values_and_consistent() {
        let limits = Limits::default();
        assert_eq!(limits.max_frame_payload, 1_048_576);
        assert_eq!(limits.max_control_payload, 65_536);
        assert_eq!(limits.max_ranges, 1024);
        // A full NeedSeq (u32 count + 16 bytes per range) fits in a control frame.
        let need_seq = 4 + 16 * limits.max_ranges;
        assert!(need_seq <= limits.max_control_payload as usize);
    }

    #[test]
    fn payload_limit_follows_kind() {
        let limits = Limits {
            max_frame_payload: 10,
            max_control_payload: 20,
            max_ranges: 1,
        };
        assert_eq!(limits.max_payload(FrameKind::Data), 10);
        assert_eq!(limits.max_payload(FrameKind::ResumeState), 10);
        assert_eq!(limits.max_payload(FrameKind::Config), 20);
        assert_eq!(limits.max_any_payload(), 20);
    }
}
