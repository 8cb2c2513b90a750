//! Body of the `session_messages` fuzz target, shared with the `fuzz_mirrors` proptest.

/// Decodes `data` as every handshake and control payload of docs/SESSION.md (`Welcome`,
/// `Reject`, `ConfigRequest`, `ConfigAnswer`, `Bye`) and reason codes. Whatever decodes
/// encodes again to a payload that decodes to the same value.
pub(crate) fn run(data: &[u8]) {
    use liaison_session::messages::{Bye, ConfigAnswer, ConfigRequest, Reject, Welcome};
    use liaison_session::ReasonCode;
    use liaison_wire::{Codec, DefaultCodec};

    if let Ok(welcome) = Welcome::decode(data) {
        assert_eq!(Welcome::decode(&welcome.to_bytes()).ok(), Some(welcome));
    }
    let codec = DefaultCodec::default();
    macro_rules! round_trip {
        ($($ty:ty),*) => {$(
            if let Ok(value) = codec.decode::<$ty>(data) {
                let again = codec.encode(&value).expect("a decoded value encodes");
                assert_eq!(codec.decode::<$ty>(&again).ok(), Some(value));
            }
        )*};
    }
    round_trip!(Reject, ConfigRequest, ConfigAnswer, Bye);
    if let [a, b, ..] = *data {
        let code = u16::from_le_bytes([a, b]);
        assert_eq!(ReasonCode::from(code).to_u16(), code);
    }
}
