//! Protocol rules one by one: acks (delayed, every N frames, piggybacked, re-sent on
//! duplicates), the retransmission timeout and its backoff, backpressure, receive bounds,
//! unordered delivery, and peer violations refused with typed errors.

use std::time::{Duration, Instant};

use crate::util::{data, transmits};
use bytes::Bytes;
use liaison_seq::{
    ClientModePolicy, Config, Event, Mode, ModeOutcome, ModeRequest, SeqError, Sequencer,
    ServerModePolicy, Transmit,
};

fn delivered(seq: &mut Sequencer) -> Vec<u64> {
    std::iter::from_fn(|| seq.poll_event())
        .filter_map(|e| match e {
            Event::Deliver { seq, .. } => Some(seq),
            _ => None,
        })
        .collect()
}

#[test]
fn a_standalone_ack_waits_for_the_ack_delay() {
    let now = Instant::now();
    let delay = Duration::from_millis(25);
    let mut b = Sequencer::new(Mode::Ordered, Config::default().with_ack_delay(delay));
    b.handle(now, data(0)).expect("valid frame");
    assert_eq!(transmits(&mut b, now), []);
    assert_eq!(b.poll_timeout(), Some(now + delay));
    b.handle_timeout(now + delay);
    assert_eq!(transmits(&mut b, now + delay), [Transmit::Ack { ack: 0 }]);
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn an_ack_goes_out_after_every_n_frames() {
    let now = Instant::now();
    let mut b = Sequencer::new(Mode::Ordered, Config::default().with_ack_every(3));
    let mut acks = Vec::new();
    for seq in 0..7 {
        b.handle(now, data(seq)).expect("valid frame");
        acks.extend(transmits(&mut b, now));
    }
    assert_eq!(acks, [Transmit::Ack { ack: 2 }, Transmit::Ack { ack: 5 }]);
}

#[test]
fn acks_ride_on_outgoing_data() {
    let now = Instant::now();
    let mut b = Sequencer::new(Mode::Ordered, Config::default());
    b.send(Bytes::from_static(b"first reply")).expect("room");
    assert!(
        matches!(
            &transmits(&mut b, now)[..],
            [Transmit::Data { ack: None, .. }]
        ),
        "nothing received yet, nothing to ack"
    );
    b.handle(now, data(0)).expect("valid frame");
    b.send(Bytes::from_static(b"reply")).expect("room");
    let out = transmits(&mut b, now);
    assert!(
        matches!(
            &out[..],
            [Transmit::Data {
                seq: 1,
                ack: Some(0),
                ..
            }]
        ),
        "{out:?}"
    );
    // The ack delay timer was cancelled: only the retransmission timer is left.
    let rto = b.poll_timeout().expect("retransmission timer");
    b.handle_timeout(now + Duration::from_millis(25));
    assert_eq!(transmits(&mut b, now + Duration::from_millis(25)), []);
    assert!(rto > now + Duration::from_millis(25));
}

#[test]
fn a_duplicate_is_dropped_and_acked_again() {
    let now = Instant::now();
    let mut b = Sequencer::new(Mode::Ordered, Config::default());
    b.handle(now, data(0)).expect("valid frame");
    b.handle(now, data(0)).expect("a duplicate is not an error");
    assert_eq!(delivered(&mut b), [0]);
    assert_eq!(transmits(&mut b, now), [Transmit::Ack { ack: 0 }]);
}

#[test]
fn tail_loss_is_retransmitted_with_backoff() {
    let now = Instant::now();
    let ms = Duration::from_millis;
    let config = Config::default().with_rto(ms(100), ms(300));
    let mut a = Sequencer::new(Mode::Ordered, config);
    for _ in 0..3 {
        a.send(Bytes::from_static(b"x")).expect("room");
    }
    assert_eq!(transmits(&mut a, now).len(), 3);
    let mut at = now;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let deadline = a.poll_timeout().expect("retransmission timer");
        waits.push(deadline - at);
        at = deadline;
        a.handle_timeout(at);
        let again: Vec<u64> = transmits(&mut a, at)
            .into_iter()
            .filter_map(|m| match m {
                Transmit::Data { seq, .. } => Some(seq),
                _ => None,
            })
            .collect();
        assert_eq!(
            again,
            [0, 2],
            "the oldest, and the newest to show how far the loss goes"
        );
    }
    assert_eq!(waits, [ms(100), ms(200), ms(300), ms(300)]);
    // An ack resets the backoff and stops the timer once everything is acknowledged.
    a.handle(at, Transmit::Ack { ack: 0 }).expect("valid ack");
    assert_eq!(a.poll_timeout(), Some(at + ms(100)));
    a.handle(at, Transmit::Ack { ack: 2 }).expect("valid ack");
    assert_eq!(a.poll_timeout(), None);
    assert!(a.is_flushed());
}

#[test]
fn a_full_retransmit_buffer_pushes_back_until_acked() {
    let now = Instant::now();
    let mut a = Sequencer::new(Mode::Ordered, Config::default().with_send_buffer(2, 100));
    assert_eq!(a.send(Bytes::from_static(b"one")), Ok(0));
    assert_eq!(a.send(Bytes::from_static(b"two")), Ok(1));
    assert!(!a.can_send(1));
    assert_eq!(
        a.send(Bytes::from_static(b"three")),
        Err(SeqError::BufferFull {
            frames: 2,
            bytes: 6
        })
    );
    assert_eq!(
        a.send(Bytes::from(vec![0; 101])),
        Err(SeqError::PayloadTooLarge { len: 101, max: 100 })
    );
    assert_eq!(transmits(&mut a, now).len(), 2);
    a.handle(now, Transmit::Ack { ack: 0 }).expect("valid ack");
    assert_eq!(a.poll_event(), Some(Event::Writable));
    assert!(a.can_send(5));
    assert_eq!(a.send(Bytes::from_static(b"three")), Ok(2));
    assert_eq!(a.buffered().send_frames, 2);
}

#[test]
fn the_receive_side_is_bounded() {
    let now = Instant::now();
    let mut b = Sequencer::new(
        Mode::Ordered,
        Config::default()
            .with_recv_buffer(2, 1024)
            .with_recv_window(100),
    );
    for seq in [1, 2, 3, 500] {
        b.handle(now, data(seq)).expect("valid frame");
        assert!(b.buffered().recv_frames <= 2);
    }
    // 3 found no room and 500 is beyond the window: both dropped, not asked for.
    let needs: Vec<String> = transmits(&mut b, now)
        .into_iter()
        .filter_map(|m| match m {
            Transmit::NeedSeq { ranges, .. } => Some(ranges.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(needs, ["0"]);
    // The next expected frame is never locked out by frames held ahead: the highest one
    // (2) gives way, to be sent again later.
    b.handle(now, data(0)).expect("valid frame");
    assert_eq!(delivered(&mut b), [0, 1]);
    b.handle(now, data(2)).expect("valid frame");
    b.handle(now, data(3)).expect("valid frame");
    assert_eq!(delivered(&mut b), [2, 3]);
    // Delivered messages not taken by the application do hold it out (backpressure).
    b.handle(now, data(4)).expect("valid frame");
    b.handle(now, data(5)).expect("valid frame");
    b.handle(now, data(6)).expect("valid frame");
    assert_eq!(b.buffered().recv_frames, 2);
    assert_eq!(delivered(&mut b), [4, 5]);
    assert_eq!(b.next_recv_seq(), 6);
    // A frame larger than the whole buffer is a protocol error, not a silent drop.
    let big = Transmit::Data {
        seq: 6,
        ack: None,
        payload: Bytes::from(vec![0; 1025]),
    };
    assert_eq!(
        b.handle(now, big),
        Err(SeqError::FrameTooLarge {
            len: 1025,
            max: 1024
        })
    );
}

#[test]
fn unordered_mode_delivers_on_arrival_exactly_once() {
    let now = Instant::now();
    let mut b = Sequencer::new(Mode::Unordered, Config::default());
    for seq in [2, 0, 2, 1, 0, 3] {
        b.handle(now, data(seq)).expect("valid frame");
    }
    assert_eq!(delivered(&mut b), [2, 0, 1, 3]);
    assert_eq!(b.next_recv_seq(), 4);
}

#[test]
fn peer_violations_are_refused_and_change_nothing() {
    let now = Instant::now();
    let mut a = Sequencer::new(Mode::Ordered, Config::default().with_max_need_ranges(2));
    a.send(Bytes::from_static(b"x")).expect("room");
    a.send(Bytes::from_static(b"y")).expect("room");
    let _ = transmits(&mut a, now);

    let cases = [
        (
            Transmit::Ack { ack: 2 },
            SeqError::AckOfUnsent { ack: 2, next: 2 },
        ),
        (
            Transmit::NeedSeq {
                ranges: "1..5".parse().expect("literal"),
                ack: None,
            },
            SeqError::NeedSeqNotSent { seq: 5, next: 2 },
        ),
        (
            Transmit::Data {
                seq: 0,
                ack: Some(9),
                payload: Bytes::new(),
            },
            SeqError::AckOfUnsent { ack: 9, next: 2 },
        ),
    ];
    for (message, expected) in cases {
        let err = a.handle(now, message).expect_err("a violation");
        assert_eq!(err, expected);
        assert!(err.is_peer_violation());
    }
    let three = Transmit::NeedSeq {
        ranges: "0,2,4".parse().expect("literal"),
        ack: None,
    };
    assert_eq!(
        a.handle(now, three),
        Err(SeqError::TooManyRanges { count: 3, max: 2 })
    );
    // The data frame with the bad ack was not delivered.
    assert_eq!(delivered(&mut a), Vec::<u64>::new());
    assert_eq!(a.next_recv_seq(), 0);
}

#[test]
fn negotiated_mode_then_sequencing() {
    let server = ServerModePolicy::Only(Mode::Unordered);
    let request = ModeRequest::new(Mode::Ordered, ClientModePolicy::Reregister { attempts: 1 });
    let ModeOutcome::Reregister { nack, retry } = request.on_answer(server.answer(Mode::Ordered))
    else {
        panic!("the server set another mode: the client must NACK and re-register");
    };
    assert_eq!(nack.requested(), Mode::Ordered);
    let ModeOutcome::Rejected { error, .. } = retry.on_answer(server.answer(Mode::Ordered)) else {
        panic!("one re-registration only");
    };
    assert_eq!(
        error,
        SeqError::ModeRejected {
            requested: Mode::Ordered,
            offered: Mode::Unordered
        }
    );

    // A client that asks for what the server supports gets a sequencer in that mode.
    let request = ModeRequest::new(Mode::Unordered, ClientModePolicy::Fail);
    let ModeOutcome::Agreed(mode) = request.on_answer(server.answer(Mode::Unordered)) else {
        panic!("the modes agree");
    };
    let seq = Sequencer::new(mode, Config::default());
    assert_eq!(seq.mode(), Mode::Unordered);
}

#[test]
fn negotiated_start_numbers() {
    let now = Instant::now();
    let mut a = Sequencer::with_start(Mode::Ordered, Config::default(), 1222, 0);
    let mut b = Sequencer::with_start(Mode::Ordered, Config::default(), 0, 1222);
    assert_eq!(a.send(Bytes::from_static(b"x")), Ok(1222));
    for m in transmits(&mut a, now) {
        b.handle(now, m).expect("valid frame");
    }
    assert_eq!(delivered(&mut b), [1222]);
}
