//! Body of the `frame` fuzz target, shared with the `fuzz_mirrors` proptest.

/// Decodes `data` as one delimited frame and as a stream of frames. Whatever decodes must
/// re-encode to exactly the bytes it came from (the encoding is canonical, PROTOCOL.md §2),
/// and the stream decoder must consume whole frames only.
pub(crate) fn run(data: &[u8]) {
    use bytes::{Bytes, BytesMut};
    use liaison_wire::{Frame, Limits};

    let limits = Limits::default();
    if let Ok(frame) = Frame::decode(Bytes::copy_from_slice(data), &limits) {
        assert_eq!(&frame.to_bytes()[..], data);
    }

    let mut stream = BytesMut::from(data);
    let mut consumed = 0;
    while let Ok(Some(frame)) = Frame::decode_from(&mut stream, &limits) {
        let bytes = frame.to_bytes();
        assert_eq!(&bytes[..], &data[consumed..consumed + bytes.len()]);
        consumed += bytes.len();
    }
    assert_eq!(consumed + stream.len(), data.len());
}
