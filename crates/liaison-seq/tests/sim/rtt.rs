//! The round-trip estimate and the timers derived from it, on the virtual clock: the
//! estimate converges to the simulated delay, the retransmission timeout and the `Need-Seq`
//! repeat follow it (with backoff, reset by an ack), Karn's rule keeps retransmissions out,
//! and ordered delivery stays exact under heavy loss.

use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_seq::{Config, Event, Mode, RttEstimate, Sequencer, Transmit};
use proptest::prelude::*;

use crate::pair::{payloads, Link, Pair};
use crate::util::{data, data_seqs, transmits};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn estimate(seq: &Sequencer) -> RttEstimate {
    seq.rtt().expect("a round-trip sample")
}

/// Every frame acknowledged at once: each ack-based sample is the link's round trip.
fn prompt_acks() -> Config {
    Config::default().with_ack_every(1)
}

/// `count` messages from `from` to `to`, one at a time, over `one_way` each way, each acked
/// at once; returns the time the last ack arrived.
fn exchange(
    from: &mut Sequencer,
    to: &mut Sequencer,
    mut now: Instant,
    one_way: Duration,
    count: usize,
) -> Instant {
    for _ in 0..count {
        from.send(Bytes::from_static(b"ping")).expect("room");
        let out = transmits(from, now);
        now += one_way;
        for message in out {
            to.handle(now, message).expect("valid frame");
        }
        while to.poll_event().is_some() {}
        let back = transmits(to, now);
        now += one_way;
        for message in back {
            from.handle(now, message).expect("valid ack");
        }
    }
    now
}

/// Fires `seq`'s timers in turn until one produces a `Need-Seq`; returns its time.
fn next_need_seq(seq: &mut Sequencer) -> Instant {
    for _ in 0..10 {
        let at = seq.poll_timeout().expect("a timer is armed");
        seq.handle_timeout(at);
        if transmits(seq, at)
            .iter()
            .any(|m| matches!(m, Transmit::NeedSeq { .. }))
        {
            return at;
        }
    }
    panic!("no Need-Seq after ten timer expiries");
}

/// `smoothed_rtt + max(4 · rttvar, 1 ms)`: the timeouts' base before the floor.
fn answer_time(e: RttEstimate) -> Duration {
    e.smoothed_rtt + (e.rttvar * 4).max(ms(1))
}

#[test]
fn the_estimate_converges_to_the_simulated_round_trip() {
    let mut pair = Pair::new(
        Mode::Ordered,
        prompt_acks(),
        prompt_acks(),
        Link::perfect(),
        1,
    );
    pair.queue(true, payloads(b'a', &[16; 100]), ms(1));
    assert!(pair.run(100_000));
    assert!(pair.errors.is_empty(), "{:?}", pair.errors);
    // 5 ms each way, acked at once: every sample is 10 ms.
    let e = estimate(&pair.a.seq);
    assert_eq!((e.latest_rtt, e.min_rtt), (ms(10), ms(10)));
    assert!(e.smoothed_rtt.abs_diff(ms(10)) < us(1), "{e:?}");
    assert!(e.rttvar < us(1), "{e:?}");
    // b sent nothing and missed nothing: it has no sample.
    assert_eq!(pair.b.seq.rtt(), None);
}

#[test]
fn the_estimate_follows_a_jittered_link() {
    let link = Link {
        min_delay: ms(5),
        max_delay: ms(15),
        ..Link::perfect()
    };
    for seed in 1..=4 {
        let mut pair = Pair::new(
            Mode::Ordered,
            prompt_acks(),
            prompt_acks(),
            link.clone(),
            seed,
        );
        pair.queue(true, payloads(b'a', &[16; 300]), ms(1));
        assert!(pair.run(200_000));
        assert!(pair.errors.is_empty(), "{:?}", pair.errors);
        assert_eq!(pair.b.delivered, pair.a.sent);
        // Round trips of 10 to 30 ms, 20 ms on average. The slowest frames are overtaken,
        // asked for and sent again, so they give no sample (Karn's rule): the estimate leans
        // to the faster ones.
        let e = estimate(&pair.a.seq);
        assert!(e.min_rtt >= ms(10) && e.min_rtt < ms(17), "{e:?}");
        assert!(e.smoothed_rtt > ms(14) && e.smoothed_rtt < ms(24), "{e:?}");
        assert!(e.rttvar > Duration::ZERO && e.rttvar < ms(8), "{e:?}");
    }
}

#[test]
fn a_delayed_ack_is_not_subtracted() {
    // Acks every 8 frames or after 25 ms: samples of frames acked by the timer include up to
    // 25 ms of ack delay (the wire does not carry it), the minimum is the round trip.
    let mut pair = Pair::new(
        Mode::Ordered,
        Config::default(),
        Config::default(),
        Link::perfect(),
        1,
    );
    pair.queue(true, payloads(b'a', &[16; 60]), ms(3));
    assert!(pair.run(100_000));
    let e = estimate(&pair.a.seq);
    assert_eq!(e.min_rtt, ms(10), "{e:?}");
    assert!(
        e.smoothed_rtt >= ms(10) && e.smoothed_rtt <= ms(35),
        "{e:?}"
    );
}

#[test]
fn a_receiver_learns_the_round_trip_from_its_need_seqs() {
    // b only receives: its estimate comes from the time between a first Need-Seq and the
    // arrival of the first frame it asked for, 10 ms on this link.
    let link = Link {
        drop: 0.1,
        ..Link::perfect()
    };
    for seed in 1..=4 {
        let mut pair = Pair::new(
            Mode::Ordered,
            prompt_acks(),
            prompt_acks(),
            link.clone(),
            seed,
        );
        pair.queue(true, payloads(b'a', &[16; 200]), ms(1));
        assert!(pair.run(200_000));
        assert!(pair.errors.is_empty(), "{:?}", pair.errors);
        assert_eq!(pair.b.delivered, pair.a.sent);
        assert!(pair.b.need_seq_sent > 0);
        let e = estimate(&pair.b.seq);
        assert_eq!(e.min_rtt, ms(10), "seed {seed}: {e:?}");
        assert!(
            e.smoothed_rtt.abs_diff(ms(10)) < ms(2),
            "seed {seed}: {e:?}"
        );
    }
}

#[test]
fn the_rto_tracks_the_estimate() {
    for one_way in [ms(5), ms(50)] {
        let t0 = Instant::now();
        let mut a = Sequencer::new(Mode::Ordered, prompt_acks());
        let mut b = Sequencer::new(Mode::Ordered, prompt_acks());
        assert_eq!(a.rto(), ms(200), "the initial timeout before a sample");
        let now = exchange(&mut a, &mut b, t0, one_way, 40);
        let e = estimate(&a);
        assert!(e.smoothed_rtt.abs_diff(one_way * 2) < us(1), "{e:?}");
        // smoothed_rtt + max(4 · rttvar, granularity) + the peer's ack delay (25 ms).
        let rto = answer_time(e) + ms(25);
        assert_eq!(a.rto(), rto);
        assert!(rto.abs_diff(one_way * 2 + ms(26)) < us(10), "{rto:?}");

        // A tail loss is sent again one RTO after it was sent.
        a.send(Bytes::from_static(b"lost")).expect("room");
        let lost = data_seqs(&transmits(&mut a, now));
        assert_eq!(a.poll_timeout(), Some(now + rto));
        a.handle_timeout(now + rto);
        assert_eq!(data_seqs(&transmits(&mut a, now + rto)), lost);
    }
}

#[test]
fn the_timeouts_have_a_floor() {
    let t0 = Instant::now();
    let config = prompt_acks()
        .with_ack_delay(Duration::ZERO)
        .with_min_rto(ms(5));
    let mut a = Sequencer::new(Mode::Ordered, config.clone());
    let mut b = Sequencer::new(Mode::Ordered, config);
    exchange(&mut a, &mut b, t0, us(100), 40);
    let e = estimate(&a);
    assert!(answer_time(e) < ms(2), "{e:?}");
    assert_eq!(a.rto(), ms(5));
}

#[test]
fn karns_rule_keeps_retransmissions_out_of_the_estimate() {
    let t0 = Instant::now();
    let mut a = Sequencer::new(Mode::Ordered, prompt_acks());
    let mut b = Sequencer::new(Mode::Ordered, prompt_acks());

    // Frame 0 is lost, sent again on the timeout, and acked: which transmission does the
    // ack answer? No sample.
    a.send(Bytes::from_static(b"zero")).expect("room");
    let _lost = transmits(&mut a, t0);
    let rto = a.poll_timeout().expect("retransmission timer");
    assert_eq!(rto, t0 + ms(200));
    a.handle_timeout(rto);
    for message in transmits(&mut a, rto) {
        b.handle(rto + ms(1), message).expect("valid frame");
    }
    for message in transmits(&mut b, rto + ms(1)) {
        a.handle(rto + ms(2), message).expect("valid ack");
    }
    assert!(a.is_flushed());
    assert_eq!(a.rtt(), None);

    // A frame sent once gives one.
    let now = exchange(&mut a, &mut b, rto + ms(2), ms(5), 1);
    assert_eq!(estimate(&a).latest_rtt, ms(10));

    // Frames 3 and 4 sent with 2, which is lost and sent again on the peer's Need-Seq: the
    // ack of 4 waited for that retransmission, so it is no sample either.
    for text in [&b"one"[..], b"two", b"three"] {
        a.send(Bytes::from_static(text)).expect("room");
    }
    let sent = transmits(&mut a, now);
    assert_eq!(data_seqs(&sent), [2, 3, 4]);
    for message in sent.into_iter().skip(1) {
        b.handle(now + ms(5), message).expect("valid frame");
    }
    let need = transmits(&mut b, now + ms(5));
    assert!(need
        .iter()
        .any(|m| matches!(m, Transmit::NeedSeq { ranges, .. } if ranges.to_string() == "2")));
    for message in need {
        a.handle(now + ms(10), message).expect("valid Need-Seq");
    }
    let again = transmits(&mut a, now + ms(10));
    assert_eq!(data_seqs(&again), [2]);
    for message in again {
        b.handle(now + ms(15), message).expect("valid frame");
    }
    let acks = transmits(&mut b, now + ms(15));
    assert_eq!(acks, [Transmit::Ack { ack: 4 }]);
    a.handle(now + ms(20), acks[0].clone()).expect("valid ack");
    assert!(a.is_flushed());
    assert_eq!(
        estimate(&a).latest_rtt,
        ms(10),
        "no 20 ms sample from frame 4"
    );
}

#[test]
fn karns_rule_applies_to_need_seq_answers() {
    let t0 = Instant::now();
    let mut b = Sequencer::new(Mode::Ordered, Config::default().with_rto(ms(100), ms(700)));

    // A repeated request: the frame may answer either. No sample.
    b.handle(t0, data(1)).expect("valid frame");
    assert_eq!(transmits(&mut b, t0).len(), 1, "Need-Seq 0, lost");
    let repeat = next_need_seq(&mut b);
    assert_eq!(repeat, t0 + ms(100), "the initial timeout before a sample");
    b.handle(repeat + ms(3), data(0)).expect("valid frame");
    assert_eq!(b.rtt(), None);

    // A first request whose frame arrives: a sample. The sender answers in order, so that
    // answer ends the timing of an older request still unanswered (4 is asked for and lost,
    // then 6 is asked for and answered).
    let t1 = repeat + ms(10);
    for seq in [2, 3, 5] {
        b.handle(t1, data(seq)).expect("valid frame");
    }
    let _lost = transmits(&mut b, t1);
    b.handle(t1 + ms(1), data(7)).expect("valid frame");
    let need = transmits(&mut b, t1 + ms(1));
    assert!(need
        .iter()
        .any(|m| matches!(m, Transmit::NeedSeq { ranges, .. } if ranges.to_string() == "6")));
    b.handle(t1 + ms(9), data(6)).expect("valid frame");
    assert_eq!(estimate(&b).latest_rtt, ms(8));
    // 4 comes late (say, on the sender's own timeout): it answers nothing timed.
    b.handle(t1 + ms(60), data(4)).expect("valid frame");
    assert_eq!(estimate(&b).latest_rtt, ms(8));
    let delivered = std::iter::from_fn(|| b.poll_event())
        .filter(|e| matches!(e, Event::Deliver { .. }))
        .count();
    assert_eq!(delivered, 8);
}

#[test]
fn the_rto_backs_off_on_consecutive_expiries_and_an_ack_resets_it() {
    let t0 = Instant::now();
    let config = prompt_acks().with_rto(ms(50), ms(120));
    let mut a = Sequencer::new(Mode::Ordered, config.clone());
    let mut b = Sequencer::new(Mode::Ordered, config);
    let now = exchange(&mut a, &mut b, t0, ms(5), 40);
    let base = a.rto();
    assert!(base.abs_diff(ms(36)) < us(10), "{base:?}");

    a.send(Bytes::from_static(b"lost")).expect("room");
    let seq = data_seqs(&transmits(&mut a, now))[0];
    let mut at = now;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let deadline = a.poll_timeout().expect("retransmission timer");
        waits.push(deadline - at);
        at = deadline;
        a.handle_timeout(at);
        assert_eq!(data_seqs(&transmits(&mut a, at)), [seq]);
    }
    assert_eq!(waits, [base, base * 2, ms(120), ms(120)]);
    assert_eq!(a.rto(), ms(120));

    // The ack of a retransmitted frame gives no sample but resets the backoff.
    let e = estimate(&a);
    a.handle(at, Transmit::Ack { ack: seq }).expect("valid ack");
    assert_eq!(estimate(&a), e);
    assert_eq!(a.rto(), base);
    assert_eq!(a.poll_timeout(), None);
    a.send(Bytes::from_static(b"next")).expect("room");
    let _ = transmits(&mut a, at);
    assert_eq!(a.poll_timeout(), Some(at + base));
}

#[test]
fn a_sender_held_back_for_a_need_seq_does_not_wait_for_the_ack_delay() {
    let t0 = Instant::now();
    let mut a = Sequencer::new(Mode::Ordered, prompt_acks());
    let mut b = Sequencer::new(Mode::Ordered, prompt_acks());
    let now = exchange(&mut a, &mut b, t0, ms(5), 40);
    let e = estimate(&a);

    for _ in 0..3 {
        a.send(Bytes::from_static(b"x")).expect("room");
    }
    let sent = transmits(&mut a, now);
    for message in sent.into_iter().skip(1) {
        b.handle(now + ms(5), message).expect("valid frame");
    }
    for message in transmits(&mut b, now + ms(5)) {
        a.handle(now + ms(10), message).expect("valid Need-Seq");
    }
    a.send(Bytes::from_static(b"held")).expect("room");
    let again = transmits(&mut a, now + ms(10));
    assert_eq!(data_seqs(&again), [40], "the first lost, no new frame");
    // The ack of the closed gap comes at once: the timer leaves out the 25 ms ack delay.
    let prompt = answer_time(e).max(ms(1));
    assert_eq!(a.rto(), prompt);
    assert_eq!(a.poll_timeout(), Some(now + ms(10) + prompt));
    // That ack is lost: the timeout sends the oldest again; the duplicate is acked at once
    // and releases the held frame.
    let at = now + ms(10) + prompt;
    a.handle_timeout(at);
    let probe = transmits(&mut a, at);
    assert_eq!(data_seqs(&probe), [40, 42]);
    for message in again.into_iter().chain(probe) {
        b.handle(at + ms(5), message).expect("valid frame");
    }
    for message in transmits(&mut b, at + ms(5)) {
        a.handle(at + ms(10), message).expect("valid ack");
    }
    assert_eq!(data_seqs(&transmits(&mut a, at + ms(10))), [43]);
}

#[test]
fn a_timeout_while_held_back_resends_every_frame_asked_for() {
    let t0 = Instant::now();
    let mut a = Sequencer::new(Mode::Ordered, prompt_acks());
    let mut b = Sequencer::new(Mode::Ordered, prompt_acks());
    let now = exchange(&mut a, &mut b, t0, ms(5), 40);
    for _ in 0..6 {
        a.send(Bytes::from_static(b"x")).expect("room");
    }
    // 40, 42 and 44 are lost; b asks for them.
    for message in transmits(&mut a, now) {
        if matches!(message, Transmit::Data { seq, .. } if seq % 2 == 1) {
            b.handle(now + ms(5), message).expect("valid frame");
        }
    }
    for message in transmits(&mut b, now + ms(5)) {
        a.handle(now + ms(10), message).expect("valid Need-Seq");
    }
    assert_eq!(data_seqs(&transmits(&mut a, now + ms(10))), [40, 42, 44]);
    // The answer is lost: the timeout sends all of it again, and the newest frame.
    let at = a.poll_timeout().expect("retransmission timer");
    a.handle_timeout(at);
    assert_eq!(data_seqs(&transmits(&mut a, at)), [40, 42, 44, 45]);
}

#[test]
fn every_first_need_seq_is_timed() {
    let t0 = Instant::now();
    let mut b = Sequencer::new(Mode::Ordered, Config::default());
    // 0 is asked for at t0, 2 at t0 + 1 ms (a hole revealed later): both are timed.
    b.handle(t0, data(1)).expect("valid frame");
    let _ = transmits(&mut b, t0);
    b.handle(t0 + ms(1), data(3)).expect("valid frame");
    let _ = transmits(&mut b, t0 + ms(1));
    b.handle(t0 + ms(8), data(0)).expect("valid frame");
    assert_eq!(estimate(&b).latest_rtt, ms(8));
    b.handle(t0 + ms(10), data(2)).expect("valid frame");
    let e = estimate(&b);
    assert_eq!((e.latest_rtt, e.min_rtt), (ms(9), ms(8)));
}

#[test]
fn a_lost_need_seq_is_repeated_after_about_one_round_trip() {
    let t0 = Instant::now();
    // With the old fixed timer this repeat came after 100 ms.
    let config = prompt_acks().with_rto(ms(100), ms(700));
    let mut a = Sequencer::new(Mode::Ordered, config.clone());
    let mut b = Sequencer::new(Mode::Ordered, config);
    // b sends data too: its acks give it a 10 ms estimate.
    let now = exchange(&mut b, &mut a, t0, ms(5), 40);
    let interval = answer_time(estimate(&b));
    assert!(interval.abs_diff(ms(11)) < us(10), "{interval:?}");

    b.handle(now, data(1)).expect("valid frame");
    let _lost = transmits(&mut b, now);
    let mut last = now;
    let mut gaps = Vec::new();
    for _ in 0..7 {
        let at = next_need_seq(&mut b);
        gaps.push(at - last);
        last = at;
    }
    let expected: Vec<Duration> = [1, 2, 4, 8, 16, 32]
        .iter()
        .map(|&k| interval * k)
        .chain([ms(700)])
        .collect();
    assert_eq!(gaps, expected);

    // The gap closes: no more repeats, and the next gap starts from the base interval.
    b.handle(last, data(0)).expect("valid frame");
    let _ = transmits(&mut b, last);
    assert_eq!(b.poll_timeout(), None);
    b.handle(last, data(3)).expect("valid frame");
    let _lost = transmits(&mut b, last);
    assert_eq!(next_need_seq(&mut b) - last, interval);
}

#[test]
fn a_receiver_that_only_receives_repeats_on_its_own_estimate() {
    let t0 = Instant::now();
    let mut b = Sequencer::new(Mode::Ordered, Config::default().with_rto(ms(100), ms(700)));
    // A first Need-Seq answered after 8 ms.
    b.handle(t0, data(1)).expect("valid frame");
    let _ = transmits(&mut b, t0);
    b.handle(t0 + ms(8), data(0)).expect("valid frame");
    let e = estimate(&b);
    assert_eq!((e.smoothed_rtt, e.rttvar), (ms(8), ms(4)));
    // The next one is lost: it is asked for again after 8 + 4 · 4 ms, not 100 ms.
    let t1 = t0 + ms(20);
    b.handle(t1, data(3)).expect("valid frame");
    let _lost = transmits(&mut b, t1);
    assert_eq!(next_need_seq(&mut b) - t1, ms(24));
}

#[test]
fn a_single_loss_costs_no_timeout() {
    // One frame lost in a paced stream: the gap is asked for at once, filled one round trip
    // later, acked at once, and the frames held back meanwhile go out on that ack. The run
    // ends when the lossless one does, with no repeat and no timeout.
    let run = |outage: Option<(Duration, Duration)>| {
        let link = Link {
            outage,
            ..Link::perfect()
        };
        let mut pair = Pair::new(Mode::Ordered, prompt_acks(), prompt_acks(), link, 1);
        pair.queue(true, payloads(b'a', &[16; 40]), ms(1));
        assert!(pair.run(100_000));
        assert!(pair.errors.is_empty(), "{:?}", pair.errors);
        assert_eq!(pair.b.delivered, pair.a.sent);
        pair
    };
    let clean = run(None);
    let lossy = run(Some((ms(10), ms(10) + us(500))));
    assert_eq!(clean.b.need_seq_sent, 0);
    assert_eq!(lossy.b.need_seq_sent, 1, "asked once: no repeat");
    assert!(
        lossy.elapsed() <= clean.elapsed() + ms(10),
        "{:?} against {:?}",
        lossy.elapsed(),
        clean.elapsed()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The adaptive timers under 30 % loss each way (and duplicates, and reordering):
    /// ordered delivery stays exact, and the run ends within a bounded virtual time.
    #[test]
    fn ordered_delivery_stays_exact_under_30_percent_loss(
        seed in any::<u64>(),
        min in 1u64..10,
        spread in 0u64..20,
        gap_us in 0u64..2000,
    ) {
        let link = Link {
            drop: 0.3,
            duplicate: 0.05,
            min_delay: ms(min),
            max_delay: ms(min + spread),
            outage: None,
        };
        let config = Config::default().with_send_buffer(32, 4096).with_recv_buffer(32, 4096);
        let mut pair = Pair::new(Mode::Ordered, config.clone(), config, link, seed);
        pair.queue(true, payloads(b'a', &[24; 150]), us(gap_us));
        pair.queue(false, payloads(b'b', &[24; 40]), us(gap_us));
        prop_assert!(pair.run(500_000), "no progress after {} steps", pair.steps);
        prop_assert!(pair.errors.is_empty(), "errors: {:?}", pair.errors);
        prop_assert!(pair.a.is_done() && pair.b.is_done());
        prop_assert_eq!(&pair.b.delivered, &pair.a.sent);
        prop_assert_eq!(&pair.a.delivered, &pair.b.sent);
        prop_assert!(pair.elapsed() < Duration::from_secs(60), "took {:?}", pair.elapsed());
        prop_assert!(pair.a.seq.rtt().is_some());
    }
}
