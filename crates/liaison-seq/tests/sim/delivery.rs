//! Delivery over a lossy link: ordered mode delivers exactly the sent sequence, unordered
//! mode the sent multiset once each; buffers stay within bounds at every step; every run
//! finishes within a bounded number of steps and virtual time.

use std::time::Duration;

use liaison_seq::{Config, Mode};
use proptest::prelude::*;

use crate::pair::{payloads, Link, Pair};

/// Largest payload the runs send; receive buffers are at least this large.
const MAX_PAYLOAD: usize = 48;

#[derive(Debug, Clone)]
struct Case {
    mode: Mode,
    seed: u64,
    a_lens: Vec<usize>,
    b_lens: Vec<usize>,
    gap_ms: u64,
    link: Link,
    send_frames: usize,
    send_bytes: usize,
    recv_frames: usize,
    recv_bytes: usize,
    ack_every: u32,
    ack_delay_ms: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let lens = || prop::collection::vec(0..=MAX_PAYLOAD, 0..60);
    let outage = prop::option::weighted(0.25, (0u64..200, 1u64..3000));
    let link = (0.0..=0.3f64, 0.0..=0.1f64, 1u64..10, 0u64..40, outage).prop_map(
        |(drop, duplicate, min, spread, outage)| Link {
            drop,
            duplicate,
            min_delay: Duration::from_millis(min),
            max_delay: Duration::from_millis(min + spread),
            outage: outage.map(|(from, len)| {
                (
                    Duration::from_millis(from),
                    Duration::from_millis(from + len),
                )
            }),
        },
    );
    (
        (
            prop_oneof![Just(Mode::Ordered), Just(Mode::Unordered)],
            any::<u64>(),
            lens(),
            lens(),
            0u64..5,
        ),
        link,
        (1usize..16, MAX_PAYLOAD..1024, 1usize..16, MAX_PAYLOAD..1024),
        (1u32..8, 0u64..30),
    )
        .prop_map(
            |(
                (mode, seed, a_lens, b_lens, gap_ms),
                link,
                (send_frames, send_bytes, recv_frames, recv_bytes),
                (ack_every, ack_delay_ms),
            )| Case {
                mode,
                seed,
                a_lens,
                b_lens,
                gap_ms,
                link,
                send_frames,
                send_bytes,
                recv_frames,
                recv_bytes,
                ack_every,
                ack_delay_ms,
            },
        )
}

fn config(case: &Case) -> Config {
    Config::default()
        .with_send_buffer(case.send_frames, case.send_bytes)
        .with_recv_buffer(case.recv_frames, case.recv_bytes)
        .with_ack_every(case.ack_every)
        .with_ack_delay(Duration::from_millis(case.ack_delay_ms))
        .with_rto(Duration::from_millis(60), Duration::from_secs(1))
}

fn run(case: &Case) -> Pair {
    let mut pair = Pair::new(
        case.mode,
        config(case),
        config(case),
        case.link.clone(),
        case.seed,
    );
    let gap = Duration::from_millis(case.gap_ms);
    pair.queue(true, payloads(b'a', &case.a_lens), gap);
    pair.queue(false, payloads(b'b', &case.b_lens), gap);
    let idle = pair.run(200_000);
    assert!(
        idle,
        "no progress after {} steps, {:?} of virtual time",
        pair.steps,
        pair.elapsed()
    );
    pair
}

/// Every run ends well within this much virtual time (60 messages each way, 30 % loss, an
/// outage of up to 3 s, retransmission timeouts capped at 1 s).
const TIME_BOUND: Duration = Duration::from_secs(600);

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_message_is_delivered_exactly_once_within_bounds(case in case()) {
        let pair = run(&case);
        prop_assert!(pair.errors.is_empty(), "errors: {:?}", pair.errors);
        prop_assert!(pair.elapsed() < TIME_BOUND, "took {:?}", pair.elapsed());
        let directions = [(&pair.a, &pair.b, case.a_lens.len()), (&pair.b, &pair.a, case.b_lens.len())];
        for (sender, receiver, count) in directions {
            prop_assert!(sender.is_done(), "sender not flushed");
            prop_assert_eq!(sender.sent.len(), count);
            prop_assert!(receiver.abandoned.is_empty() && sender.bowed_out.is_empty());
            match case.mode {
                Mode::Ordered => prop_assert_eq!(&receiver.delivered, &sender.sent),
                _ => {
                    let mut delivered = receiver.delivered.clone();
                    delivered.sort();
                    prop_assert_eq!(&delivered, &sender.sent);
                }
            }
        }
    }
}

#[test]
fn a_clean_link_needs_no_nack_and_little_time() {
    let case = Case {
        mode: Mode::Ordered,
        seed: 1,
        a_lens: vec![10; 50],
        b_lens: vec![10; 50],
        gap_ms: 1,
        link: Link::perfect(),
        send_frames: 8,
        send_bytes: 1024,
        recv_frames: 8,
        recv_bytes: 1024,
        ack_every: 4,
        ack_delay_ms: 10,
    };
    let pair = run(&case);
    assert!(pair.errors.is_empty(), "{:?}", pair.errors);
    assert_eq!(pair.b.delivered, pair.a.sent);
    assert_eq!(pair.a.delivered, pair.b.sent);
    assert_eq!(pair.a.need_seq_sent + pair.b.need_seq_sent, 0);
    assert!(
        pair.elapsed() < Duration::from_secs(1),
        "{:?}",
        pair.elapsed()
    );
}

#[test]
fn a_small_buffer_pushes_back_and_still_delivers_everything() {
    let case = Case {
        mode: Mode::Ordered,
        seed: 7,
        a_lens: vec![40; 100],
        b_lens: Vec::new(),
        gap_ms: 0,
        link: Link {
            drop: 0.2,
            duplicate: 0.05,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(30),
            outage: None,
        },
        send_frames: 3,
        send_bytes: 100,
        recv_frames: 2,
        recv_bytes: 80,
        ack_every: 2,
        ack_delay_ms: 5,
    };
    let pair = run(&case);
    assert!(pair.errors.is_empty(), "{:?}", pair.errors);
    assert_eq!(pair.b.delivered, pair.a.sent);
    assert_eq!(pair.a.sent.len(), 100);
    // The bound was reached (backpressure happened) and never exceeded.
    assert!(pair.a.peak.send_bytes <= 100 && pair.a.peak.send_frames >= 2);
    assert!(pair.b.peak.recv_frames <= 2);
}
