//! The bow-out: a sender asked for a frame it no longer holds sends `Ignore-Seq`, and the
//! receiver reports `SequenceAbandoned`; every number is either delivered or reported, never
//! silently lost.

use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_seq::{Config, Event, Mode, Overflow, RangeSet, Sequencer, Transmit};
use proptest::prelude::*;

use crate::pair::{payloads, Link, Pair};
use crate::util::transmits;

fn events(seq: &mut Sequencer) -> Vec<Event> {
    std::iter::from_fn(|| seq.poll_event()).collect()
}

#[test]
fn a_forgotten_frame_is_abandoned_out_loud_before_later_deliveries() {
    let now = Instant::now();
    let tiny = Config::default()
        .with_send_buffer(2, 1024)
        .with_overflow(Overflow::DropOldest);
    let mut a = Sequencer::new(Mode::Ordered, tiny);
    let mut b = Sequencer::new(Mode::Ordered, Config::default());

    // Five messages during an outage: each is transmitted and lost; the buffer keeps 3 and 4.
    for i in 0..5u8 {
        a.send(Bytes::from(vec![i]))
            .expect("DropOldest always accepts");
        assert_eq!(transmits(&mut a, now).len(), 1);
    }
    assert_eq!(a.buffered().send_frames, 2);

    // The retransmission timeout resends the oldest frame held (3) and the newest (4).
    let rto = a.poll_timeout().expect("retransmission timer armed");
    a.handle_timeout(rto);
    let resent = transmits(&mut a, rto);
    assert_eq!(resent.len(), 2);
    let four = resent.into_iter().last().expect("two frames");
    assert!(matches!(four, Transmit::Data { seq: 4, .. }));

    // Frame 4 arrives: b asks for 0..3.
    b.handle(rto, four).expect("valid frame");
    let need = transmits(&mut b, rto);
    assert_eq!(
        need,
        [Transmit::NeedSeq {
            ranges: "0..3".parse().expect("literal"),
            ack: None
        }]
    );

    // a holds 3 only: it bows out below 3 and retransmits 3.
    a.handle(rto, need[0].clone()).expect("valid Need-Seq");
    assert_eq!(
        events(&mut a),
        [Event::BowedOut {
            ranges: "0..2".parse().expect("literal")
        }]
    );
    let reply = transmits(&mut a, rto);
    assert_eq!(reply[0], Transmit::IgnoreSeq { next: 3 });
    assert!(matches!(reply[1], Transmit::Data { seq: 3, .. }));
    assert_eq!(reply.len(), 2, "new frames wait: {reply:?}");

    for message in reply {
        b.handle(rto, message).expect("valid message");
    }
    assert_eq!(
        events(&mut b),
        [
            Event::SequenceAbandoned {
                ranges: "0..2".parse().expect("literal")
            },
            Event::Deliver {
                seq: 3,
                payload: Bytes::from(vec![3])
            },
            Event::Deliver {
                seq: 4,
                payload: Bytes::from(vec![4])
            },
        ]
    );
    let ack = transmits(&mut b, rto);
    assert_eq!(ack, [Transmit::Ack { ack: 4 }]);
    a.handle(rto, ack[0].clone()).expect("valid ack");
    assert!(a.is_flushed());
    assert_eq!(a.poll_timeout(), None, "nothing left to retransmit");
}

#[test]
fn unordered_mode_abandons_only_what_it_lacks() {
    let now = Instant::now();
    let mut b = Sequencer::new(Mode::Unordered, Config::default());
    for seq in [1, 4] {
        b.handle(
            now,
            Transmit::Data {
                seq,
                ack: None,
                payload: Bytes::new(),
            },
        )
        .expect("valid frame");
    }
    b.handle(now, Transmit::IgnoreSeq { next: 6 })
        .expect("valid bow-out");
    let got = events(&mut b);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[2],
        Event::SequenceAbandoned {
            ranges: "0,2..3,5".parse().expect("literal")
        }
    );
    assert_eq!(b.next_recv_seq(), 6);
    // A late copy of an abandoned number is not delivered.
    b.handle(
        now,
        Transmit::Data {
            seq: 2,
            ack: None,
            payload: Bytes::new(),
        },
    )
    .expect("a duplicate is not an error");
    assert!(events(&mut b).is_empty());
}

#[test]
fn reset_starts_both_directions_from_zero() {
    let now = Instant::now();
    let mut a = Sequencer::new(Mode::Ordered, Config::default());
    let mut b = Sequencer::new(Mode::Ordered, Config::default());
    for _ in 0..3 {
        a.send(Bytes::from_static(b"x")).expect("room");
    }
    let _lost = transmits(&mut a, now);
    a.reset();
    b.reset();
    assert_eq!((a.next_send_seq(), a.next_recv_seq()), (0, 0));
    assert!(a.is_flushed() && a.poll_timeout().is_none());
    assert_eq!(a.send(Bytes::from_static(b"again")), Ok(0));
    for message in transmits(&mut a, now) {
        b.handle(now, message).expect("valid frame");
    }
    assert_eq!(
        events(&mut b),
        [Event::Deliver {
            seq: 0,
            payload: Bytes::from_static(b"again")
        }]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A tiny retransmit buffer and a long outage: frames are forgotten before the peer gets
    /// them. The run still ends, with `Ignore-Seq` sent by one side and `SequenceAbandoned`
    /// reported by the other, and every number delivered or reported.
    #[test]
    fn a_long_outage_with_a_tiny_buffer_ends_in_a_reported_bow_out(
        ordered in any::<bool>(),
        seed in any::<u64>(),
        count in 8usize..40,
        buffer in 1usize..4,
        drop in 0.0..=0.3f64,
        spread in 0u64..20,
    ) {
        let mode = if ordered { Mode::Ordered } else { Mode::Unordered };
        let sender = Config::default()
            .with_send_buffer(buffer, 1024)
            .with_overflow(Overflow::DropOldest)
            .with_rto(Duration::from_millis(50), Duration::from_millis(800));
        let receiver = Config::default().with_rto(Duration::from_millis(50), Duration::from_millis(800));
        let gap = Duration::from_millis(2);
        let outage_end = gap * u32::try_from(count).expect("small") + Duration::from_millis(10);
        let link = Link {
            drop,
            duplicate: 0.05,
            min_delay: Duration::from_millis(3),
            max_delay: Duration::from_millis(3 + spread),
            outage: Some((Duration::ZERO, outage_end)),
        };
        let mut pair = Pair::new(mode, sender, receiver, link, seed);
        pair.queue(true, payloads(b'a', &vec![8; count]), gap);
        prop_assert!(pair.run(200_000), "no progress after {} steps", pair.steps);
        prop_assert!(pair.errors.is_empty(), "errors: {:?}", pair.errors);
        prop_assert!(pair.a.is_done());

        // One side bowed out, the other reported it.
        prop_assert!(pair.a.ignore_sent > 0);
        prop_assert!(!pair.a.bowed_out.is_empty());
        prop_assert!(pair.b.abandoned_events > 0 && !pair.b.abandoned.is_empty());
        prop_assert!(pair.b.abandoned.iter().all(|n| pair.a.bowed_out.contains(n)));

        // No silent gap: delivered and abandoned numbers split 0..count exactly.
        let delivered: RangeSet = pair.b.delivered.iter().map(|(seq, _)| *seq).collect();
        prop_assert_eq!(usize::try_from(delivered.len()).expect("small"), pair.b.delivered.len(), "a number delivered twice");
        prop_assert!(delivered.iter().all(|n| !pair.b.abandoned.contains(n)));
        let mut all = delivered.clone();
        all.extend(pair.b.abandoned.ranges());
        prop_assert_eq!(all.to_string(), format!("0..{}", count - 1));
        for (seq, payload) in &pair.b.delivered {
            prop_assert_eq!(&pair.a.sent[usize::try_from(*seq).expect("small")].1, payload);
        }
        if ordered {
            prop_assert!(pair.b.delivered.windows(2).all(|w| w[0].0 < w[1].0), "out of order");
        }
    }
}
