//! Body of the `exchange_payloads` fuzz target, shared with the `fuzz_mirrors` proptest.

/// Decodes `data` as each exchange payload of PROTOCOL.md §9 (`ExchangeBegin`,
/// `ExchangeEnd`, `ExchangeCancel`, `ExchangeCredit`). Whatever decodes re-encodes to a
/// payload that decodes to the same value, and `ExchangeBegin` re-encodes byte for byte.
pub(crate) fn run(data: &[u8]) {
    use bytes::Bytes;
    use liaison_exchange::payload::{Begin, Cancel, Outcome, MAX_TEXT_LEN};
    use liaison_wire::{Frame, FrameKind};

    let bytes = Bytes::copy_from_slice(data);
    if let Ok(begin) = Begin::decode(&bytes) {
        assert_eq!(begin.encode(), bytes);
        assert_eq!(Begin::decode(&begin.encode()).ok(), Some(begin));
    }
    if let Ok(outcome) = Outcome::decode(data) {
        assert!(data.len() <= MAX_TEXT_LEN);
        assert_eq!(Outcome::decode(&outcome.encode()).ok(), Some(outcome));
    }
    if let Ok(cancel) = Cancel::decode(data) {
        assert!(cancel.reason.len() <= MAX_TEXT_LEN);
        assert_eq!(Cancel::decode(&cancel.encode()).ok(), Some(cancel));
    }
    let credit = Frame::on_exchange(FrameKind::ExchangeCredit, 1, bytes).credit();
    assert_eq!(credit.is_ok(), data.len() == 4);
}
