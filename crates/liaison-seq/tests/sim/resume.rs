//! Resume over a new connection (`Sequencer::resume`): the link is cut with frames in
//! flight both ways, each side states what it received, and every message arrives exactly
//! once, in order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_seq::{Config, Event, Mode, SeqError, Sequencer, Transmit};
use proptest::prelude::*;

use crate::util::transmits;

/// Both sides of a session and what each delivered.
struct Ends {
    now: Instant,
    a: Sequencer,
    b: Sequencer,
    got_a: Vec<Bytes>,
    got_b: Vec<Bytes>,
}

fn drain(seq: &mut Sequencer, into: &mut Vec<Bytes>) {
    while let Some(event) = seq.poll_event() {
        if let Event::Deliver { payload, .. } = event {
            into.push(payload);
        }
    }
}

impl Ends {
    fn new(mode: Mode) -> Self {
        Self {
            now: Instant::now(),
            a: Sequencer::new(mode, Config::default()),
            b: Sequencer::new(mode, Config::default()),
            got_a: Vec::new(),
            got_b: Vec::new(),
        }
    }

    /// Moves messages both ways; after `cut` messages (counted over both directions) the
    /// link fails and everything else in flight is lost. Returns whether it was cut.
    fn exchange(&mut self, cut: Option<usize>) -> bool {
        let mut passed = 0usize;
        for _ in 0..64 {
            self.now += Duration::from_millis(1);
            let from_a: VecDeque<Transmit> = transmits(&mut self.a, self.now).into();
            let from_b: VecDeque<Transmit> = transmits(&mut self.b, self.now).into();
            if from_a.is_empty() && from_b.is_empty() {
                self.now += Duration::from_millis(30);
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
                if self.a.poll_timeout().is_none() && self.b.poll_timeout().is_none() {
                    return false;
                }
                continue;
            }
            for m in from_a {
                if cut.is_some_and(|c| passed >= c) {
                    return true;
                }
                passed += 1;
                self.b.handle(self.now, m).expect("valid message");
            }
            for m in from_b {
                if cut.is_some_and(|c| passed >= c) {
                    return true;
                }
                passed += 1;
                self.a.handle(self.now, m).expect("valid message");
            }
            drain(&mut self.a, &mut self.got_a);
            drain(&mut self.b, &mut self.got_b);
        }
        false
    }

    fn resume(&mut self) {
        let (a_next, b_next) = (self.a.next_recv_seq(), self.b.next_recv_seq());
        self.a.resume(self.now, b_next).expect("a resumes");
        self.b.resume(self.now, a_next).expect("b resumes");
    }
}

fn messages(tag: u8, n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(vec![tag, u8::try_from(i).expect("below 256")]))
        .collect()
}

#[test]
fn a_cut_with_frames_in_flight_both_ways_loses_nothing_after_resume() {
    let mut ends = Ends::new(Mode::Ordered);
    let (to_b, to_a) = (messages(1, 20), messages(2, 15));
    for m in &to_b {
        ends.a.send(m.clone()).expect("room");
    }
    for m in &to_a {
        ends.b.send(m.clone()).expect("room");
    }
    assert!(ends.exchange(Some(7)), "the cut happened");
    assert!(ends.got_b.len() < to_b.len(), "frames were lost in the cut");
    // More messages while detached.
    let (more_b, more_a) = (messages(3, 5), messages(4, 5));
    for m in &more_b {
        ends.a.send(m.clone()).expect("room");
    }
    for m in &more_a {
        ends.b.send(m.clone()).expect("room");
    }
    ends.resume();
    ends.exchange(None);
    assert_eq!(ends.got_b, [to_b, more_b].concat());
    assert_eq!(ends.got_a, [to_a, more_a].concat());
    assert!(ends.a.is_flushed() && ends.b.is_flushed());
}

#[test]
fn a_resume_point_never_sent_or_no_longer_held_is_refused() {
    let now = Instant::now();
    let mut a = Sequencer::new(Mode::Ordered, Config::default());
    let mut b = Sequencer::new(Mode::Ordered, Config::default());
    for i in 0..3u8 {
        a.send(Bytes::from(vec![i])).expect("room");
    }
    for m in transmits(&mut a, now) {
        b.handle(now, m).expect("valid");
    }
    assert!(matches!(
        a.resume(now, 4),
        Err(SeqError::ResumeMismatch {
            peer_next: 4,
            next: 3,
            ..
        })
    ));
    let later = now + Duration::from_secs(1);
    b.handle_timeout(later);
    for m in transmits(&mut b, later) {
        a.handle(later, m).expect("valid");
    }
    assert!(a.is_flushed(), "b acknowledged all three");
    assert!(matches!(
        a.resume(now, 1),
        Err(SeqError::ResumeMismatch {
            peer_next: 1,
            held: 3,
            ..
        })
    ));
    a.resume(now, 3).expect("nothing to send again");
    assert!(transmits(&mut a, now).is_empty());
}

/// `a` sends ten messages, of which those `arrives` picks reach `b`; the link is cut with
/// `b`'s answers in flight, and both resume. Returns the two ends and what `a` sent.
fn resumed_after_loss(
    now: Instant,
    arrives: fn(u64) -> bool,
) -> (Sequencer, Sequencer, Vec<Bytes>) {
    let mut a = Sequencer::new(Mode::Ordered, Config::default());
    let mut b = Sequencer::new(Mode::Ordered, Config::default());
    let sent = messages(1, 10);
    for m in &sent {
        a.send(m.clone()).expect("room");
    }
    for m in transmits(&mut a, now) {
        if matches!(&m, Transmit::Data { seq, .. } if arrives(*seq)) {
            b.handle(now, m).expect("valid");
        }
    }
    drop(transmits(&mut b, now));
    assert_eq!(b.next_recv_seq(), 3, "3 is the first frame lost");
    a.resume(now, b.next_recv_seq()).expect("a resumes from 3");
    b.resume(now, a.next_recv_seq()).expect("b resumes");
    (a, b, sent)
}

/// After a resume the sender sends again from the peer's number; the peer may ask for, or
/// acknowledge, frames it received (or lost) before the cut while they have not gone out
/// again yet. Those were sent: neither is a violation, every message arrives once, and no
/// round-trip sample spans the outage.
#[test]
fn frames_sent_before_a_resume_may_be_asked_for_before_they_go_out_again() {
    let now = Instant::now();
    // 3 and 4 are lost, the rest arrives.
    let (mut a, mut b, sent) = resumed_after_loss(now, |seq| seq != 3 && seq != 4);
    // b repeats its request for the gap before a sent anything again.
    let later = now + Duration::from_secs(2);
    b.handle_timeout(later);
    let asked = transmits(&mut b, later);
    assert!(
        asked.iter().any(|m| matches!(m, Transmit::NeedSeq { .. })),
        "{asked:?}"
    );
    for m in asked {
        a.handle(later, m)
            .expect("asking for a frame sent before the cut is no violation");
    }
    // a sends 3 and 4; b then acknowledges up to 9, above what a sent again.
    for m in transmits(&mut a, later) {
        b.handle(later, m).expect("valid");
    }
    let acks = transmits(&mut b, later + Duration::from_secs(1));
    for m in acks {
        a.handle(later, m)
            .expect("acknowledging a frame sent before the cut is no violation");
    }
    let mut got = Vec::new();
    drain(&mut b, &mut got);
    assert_eq!(got, sent);
    // New messages go on after those the ack covered.
    let more = messages(2, 3);
    for m in &more {
        a.send(m.clone()).expect("room");
    }
    for m in transmits(&mut a, later) {
        b.handle(later, m).expect("valid");
    }
    drain(&mut b, &mut got);
    let sent = [sent, more].concat();
    assert_eq!(got, sent);
    let done = later + Duration::from_secs(3);
    a.handle_timeout(done);
    b.handle_timeout(done);
    for m in transmits(&mut a, done) {
        b.handle(done, m).expect("valid");
    }
    for m in transmits(&mut b, done) {
        a.handle(done, m).expect("valid");
    }
    drain(&mut b, &mut got);
    assert_eq!(got, sent, "nothing twice");
    assert!(a.is_flushed(), "a holds nothing unacknowledged");
    assert!(a.rtt().is_none(), "no round trip is sampled across the cut");
}

/// The peer acknowledges, after a resume, frames it got before the cut that were not sent
/// again yet: the frames above them, which it lacks, still go out.
#[test]
fn an_ack_past_what_was_sent_again_lets_the_rest_go_out() {
    let now = Instant::now();
    // Only 0, 1, 2 and 4 arrive.
    let (mut a, mut b, sent) = resumed_after_loss(now, |seq| seq <= 2 || seq == 4);
    // 3 goes again and closes b's gap: b acknowledges 4 before a sent anything else.
    let resent = a.poll_transmit(now).expect("3 again");
    assert!(
        matches!(resent, Transmit::Data { seq: 3, .. }),
        "{resent:?}"
    );
    b.handle(now, resent).expect("valid");
    for m in transmits(&mut b, now) {
        a.handle(now, m)
            .expect("an ack of frames sent before the cut is no violation");
    }
    for m in transmits(&mut a, now) {
        b.handle(now, m).expect("valid");
    }
    let mut got = Vec::new();
    drain(&mut b, &mut got);
    assert_eq!(got, sent, "5 to 9 went out again");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cuts_at_random_points_lose_nothing(
        unordered in any::<bool>(),
        n_ab in 1usize..40,
        n_ba in 0usize..40,
        cuts in proptest::collection::vec(0usize..30, 1..4),
    ) {
        let mode = if unordered { Mode::Unordered } else { Mode::Ordered };
        let mut ends = Ends::new(mode);
        let (to_b, to_a) = (messages(1, n_ab), messages(2, n_ba));
        for m in &to_b {
            ends.a.send(m.clone()).expect("room");
        }
        for m in &to_a {
            ends.b.send(m.clone()).expect("room");
        }
        for cut in cuts {
            if ends.exchange(Some(cut)) {
                ends.resume();
            }
        }
        ends.exchange(None);
        // Unordered mode delivers as frames arrive: compare as sets of distinct messages.
        let (mut got_b, mut got_a) = (ends.got_b.clone(), ends.got_a.clone());
        if unordered {
            got_b.sort();
            got_a.sort();
        }
        prop_assert_eq!(got_b, to_b);
        prop_assert_eq!(got_a, to_a);
    }
}
