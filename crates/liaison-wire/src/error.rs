//! The one error type of this crate: everything a decoder can refuse.

/// Why bytes could not be turned into a frame, payload or range set.
///
/// Every variant is the result of bad or hostile input; none of them is a bug in the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    #[error("truncated input: needed {needed} bytes, had {available}")]
    Truncated {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes that were available.
        available: usize,
    },
    /// The kind byte names no frame kind.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A flag bit is set that this version does not define, or a reserved field is not zero.
    #[error("reserved bits set: {0}")]
    Reserved(&'static str),
    /// A length exceeds the limit in force; nothing of that size was allocated.
    #[error("{what} of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// What was too large (a frame payload, a control payload, ...).
        what: &'static str,
        /// The size the input claimed.
        size: u64,
        /// The limit in force.
        max: u64,
    },
    /// The header's payload length disagrees with the bytes that follow it.
    #[error("length mismatch: header says {declared} payload bytes, frame has {actual}")]
    LengthMismatch {
        /// Payload length in the header.
        declared: u32,
        /// Payload bytes actually present.
        actual: usize,
    },
    /// The first frame does not start with the protocol magic: the peer speaks something else.
    #[error("not a liaison peer: bad magic {0:02x?}")]
    BadMagic([u8; 8]),
    /// A range set holds more ranges than allowed.
    #[error("{count} ranges exceed the limit of {max}")]
    TooManyRanges {
        /// Ranges the input claimed.
        count: u64,
        /// The limit in force.
        max: usize,
    },
    /// A structure is well-sized but its content is invalid.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A serde payload failed to encode or decode.
    #[error("payload codec: {0}")]
    Codec(String),
    /// A payload decoded completely but bytes were left over after it.
    #[error("{extra} trailing bytes after the payload")]
    TrailingBytes {
        /// Bytes left over.
        extra: usize,
    },
    /// A version offer lists no versions.
    #[error("version offer lists no versions")]
    NoVersions,
}
