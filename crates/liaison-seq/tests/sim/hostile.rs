//! Whatever a peer sends, the sequencer neither panics nor outgrows its bounds: arbitrary
//! message sequences, interleaved with sends and timer ticks, get typed errors at worst.

use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_seq::{Config, Mode, Overflow, RangeSet, SeqError, Sequencer, Transmit};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Peer(Transmit),
    Send(usize),
    Advance(u64),
    Drain,
}

/// Numbers small enough to hit real state, and the extremes.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..48,
        1 => any::<u64>(),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
    ]
}

fn ranges() -> impl Strategy<Value = RangeSet> {
    prop::collection::vec((number(), 0u64..6), 0..6).prop_map(|items| {
        items
            .into_iter()
            .map(|(s, len)| s..=s.saturating_add(len))
            .collect()
    })
}

fn transmit() -> impl Strategy<Value = Transmit> {
    prop_oneof![
        (number(), prop::option::of(number()), 0usize..40).prop_map(|(seq, ack, len)| {
            Transmit::Data {
                seq,
                ack,
                payload: Bytes::from(vec![1; len]),
            }
        }),
        number().prop_map(|ack| Transmit::Ack { ack }),
        (ranges(), prop::option::of(number()))
            .prop_map(|(ranges, ack)| Transmit::NeedSeq { ranges, ack }),
        number().prop_map(|next| Transmit::IgnoreSeq { next }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => transmit().prop_map(Op::Peer),
        3 => (0usize..40).prop_map(Op::Send),
        2 => (0u64..500).prop_map(Op::Advance),
        2 => Just(Op::Drain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_peer_input_gets_typed_errors_and_bounded_state(
        ordered in any::<bool>(),
        drop_oldest in any::<bool>(),
        frames in 1usize..6,
        ops in prop::collection::vec(op(), 0..160),
    ) {
        let mode = if ordered { Mode::Ordered } else { Mode::Unordered };
        let overflow = if drop_oldest { Overflow::DropOldest } else { Overflow::Backpressure };
        let config = Config::default()
            .with_send_buffer(frames, 100)
            .with_recv_buffer(frames, 100)
            .with_recv_window(32)
            .with_max_need_ranges(3)
            .with_overflow(overflow);
        let mut seq = Sequencer::new(mode, config);
        let mut now = Instant::now();
        for op in ops {
            match op {
                Op::Peer(message) => {
                    if let Err(e) = seq.handle(now, message) {
                        prop_assert!(e.is_peer_violation(), "unexpected error {e}");
                    }
                }
                Op::Send(len) => match seq.send(Bytes::from(vec![2; len])) {
                    Ok(_) | Err(SeqError::BufferFull { .. }) => {}
                    Err(e) => prop_assert!(false, "send failed: {e}"),
                },
                Op::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    seq.handle_timeout(now);
                    if let Some(deadline) = seq.poll_timeout() {
                        prop_assert!(deadline > now, "an expired timer was left armed");
                    }
                }
                Op::Drain => {
                    while let Some(message) = seq.poll_transmit(now) {
                        match message {
                            Transmit::Data { seq: n, .. } => prop_assert!(n < seq.next_send_seq()),
                            Transmit::NeedSeq { ranges, .. } => {
                                prop_assert!(ranges.range_count() <= 3 && !ranges.is_empty());
                            }
                            _ => {}
                        }
                    }
                    while seq.poll_event().is_some() {}
                }
            }
            let b = seq.buffered();
            prop_assert!(b.send_frames <= frames && b.send_bytes <= 100, "{b:?}");
            prop_assert!(b.recv_frames <= frames && b.recv_bytes <= 100, "{b:?}");
        }
    }
}
