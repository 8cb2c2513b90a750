//! Gap detection and `Need-Seq`: an immediate NACK listing missing numbers and ranges
//! (`12..17,19`), rate-limited while outstanding, repeated on a backed-off timer while the
//! gap persists; the sender retransmits from the smallest and holds new frames back.

use std::time::{Duration, Instant};

use crate::util::{data_seqs, transmits};
use bytes::Bytes;
use liaison_seq::{Config, Event, Mode, RangeSet, Sequencer, Transmit};

fn need_seqs(messages: &[Transmit]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            Transmit::NeedSeq { ranges, .. } => Some(ranges.to_string()),
            _ => None,
        })
        .collect()
}

/// Fires `seq`'s timers in turn until one produces a `Need-Seq`; returns it and the time.
fn next_need_seq(seq: &mut Sequencer) -> (Instant, RangeSet) {
    for _ in 0..10 {
        let at = seq
            .poll_timeout()
            .expect("a timer is armed while the gap persists");
        seq.handle_timeout(at);
        for message in transmits(seq, at) {
            if let Transmit::NeedSeq { ranges, .. } = message {
                return (at, ranges);
            }
        }
    }
    panic!("no Need-Seq after ten timer expiries");
}

/// `a` sends messages 0..=20; `b` receives them without 12..=17 and 19.
fn gapped_pair(now: Instant) -> (Sequencer, Sequencer, Vec<Transmit>) {
    let mut a = Sequencer::new(Mode::Ordered, Config::default());
    let mut b = Sequencer::new(Mode::Ordered, Config::default());
    for i in 0..=20u8 {
        a.send(Bytes::from(vec![i])).expect("room");
    }
    let sent = transmits(&mut a, now);
    assert_eq!(data_seqs(&sent), (0..=20).collect::<Vec<_>>());
    let mut from_b = Vec::new();
    for message in sent {
        let Transmit::Data { seq, .. } = message else {
            unreachable!("only data was sent")
        };
        if (12..=17).contains(&seq) || seq == 19 {
            continue;
        }
        b.handle(now, message).expect("valid frame");
        from_b.extend(transmits(&mut b, now));
    }
    (a, b, from_b)
}

#[test]
fn need_seq_names_missing_numbers_and_ranges() {
    let now = Instant::now();
    let (_a, mut b, from_b) = gapped_pair(now);
    // At once on the first frame ahead (18), then only the hole newly revealed by 20.
    assert_eq!(need_seqs(&from_b), ["12..17", "19"]);
    // The repeat lists everything still missing, in the design's text form.
    let (_, ranges) = next_need_seq(&mut b);
    assert_eq!(ranges.to_string(), "12..17,19");
    assert_eq!("12..17,19".parse::<RangeSet>(), Ok(ranges.clone()));
    assert_eq!("12..17, 19".parse::<RangeSet>(), Ok(ranges));
}

#[test]
fn retransmission_runs_from_the_smallest_and_holds_new_frames() {
    let now = Instant::now();
    let (mut a, mut b, from_b) = gapped_pair(now);
    for message in from_b {
        a.handle(now, message).expect("valid message");
    }
    a.send(Bytes::from_static(b"new")).expect("room");
    let resent = transmits(&mut a, now);
    assert_eq!(
        data_seqs(&resent),
        [12, 13, 14, 15, 16, 17, 19],
        "no new frame while Need-Seq is outstanding"
    );

    for message in resent {
        b.handle(now, message).expect("valid frame");
    }
    let delivered: Vec<u64> = std::iter::from_fn(|| b.poll_event())
        .filter_map(|e| match e {
            Event::Deliver { seq, .. } => Some(seq),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, (0..=20).collect::<Vec<_>>());

    // The closed hole is acked at once; the ack releases the held frame.
    let acks = transmits(&mut b, now);
    assert_eq!(acks, [Transmit::Ack { ack: 20 }]);
    a.handle(now, acks[0].clone()).expect("valid ack");
    assert_eq!(data_seqs(&transmits(&mut a, now)), [21]);
}

#[test]
fn out_of_order_arrivals_share_one_nack() {
    let now = Instant::now();
    let mut b = Sequencer::new(Mode::Ordered, Config::default());
    let mut sent = Vec::new();
    for seq in [0, 5, 6, 7, 8, 3] {
        b.handle(
            now,
            Transmit::Data {
                seq,
                ack: None,
                payload: Bytes::new(),
            },
        )
        .expect("valid frame");
        sent.extend(transmits(&mut b, now));
    }
    assert_eq!(need_seqs(&sent), ["1..4"]);
    assert_eq!(
        b.buffered().recv_frames,
        6,
        "5..8 and 3 wait for 1..2, 0 waits to be taken"
    );
}

#[test]
fn repeated_need_seq_backs_off_while_the_gap_persists() {
    let now = Instant::now();
    let rto = Duration::from_millis(100);
    let config = Config::default().with_rto(rto, Duration::from_millis(700));
    let mut b = Sequencer::new(Mode::Unordered, config);
    b.handle(
        now,
        Transmit::Data {
            seq: 2,
            ack: None,
            payload: Bytes::new(),
        },
    )
    .expect("valid frame");
    assert_eq!(need_seqs(&transmits(&mut b, now)), ["0..1"]);
    let mut last = now;
    let mut gaps = Vec::new();
    for _ in 0..5 {
        let (at, ranges) = next_need_seq(&mut b);
        assert_eq!(ranges.to_string(), "0..1");
        gaps.push(at - last);
        last = at;
    }
    let ms = Duration::from_millis;
    assert_eq!(gaps, [ms(100), ms(200), ms(400), ms(700), ms(700)]);

    // The gap closes: no more repeats.
    for seq in [0, 1] {
        b.handle(
            last,
            Transmit::Data {
                seq,
                ack: None,
                payload: Bytes::new(),
            },
        )
        .expect("valid frame");
    }
    assert_eq!(transmits(&mut b, last), [Transmit::Ack { ack: 2 }]);
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn need_seq_is_capped_at_the_range_limit() {
    let now = Instant::now();
    let mut b = Sequencer::new(Mode::Ordered, Config::default().with_max_need_ranges(2));
    for seq in [1, 3, 5, 7] {
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
    let sent = transmits(&mut b, now);
    assert_eq!(need_seqs(&sent), ["0,2"]);
}
