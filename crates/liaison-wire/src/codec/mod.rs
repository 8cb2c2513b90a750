//! The payload codec: how serde types become frame payloads and back (PROTOCOL.md §5.2).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::WireError;

mod bincode;
mod guard;

pub use self::bincode::BincodeCodec;

/// The codec the other liaison crates use unless told otherwise.
pub type DefaultCodec = BincodeCodec;

/// Turns serde values into payload bytes and back (PROTOCOL.md §5.2).
///
/// Control payloads of the upper layers and application messages both go through a codec.
/// Implementations must:
///
/// - refuse input that does not decode to exactly one `T`, trailing bytes included
///   ([`WireError::TrailingBytes`]);
/// - never allocate, for a length claimed by the input, more than the input can hold;
/// - never panic on any input.
///
/// The default is [`BincodeCodec`] ([`DefaultCodec`]).
pub trait Codec: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Encodes `value` into a payload.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, WireError>;

    /// Decodes a payload that holds exactly one `T`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, WireError>;
}
