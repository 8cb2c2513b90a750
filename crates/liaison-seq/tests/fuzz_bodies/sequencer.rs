//! Body of the `sequencer` fuzz target, shared with the `fuzz_mirrors` proptest: two
//! sequencers over a link that the input drives operation by operation (send, transmit,
//! deliver, drop, duplicate, reorder, advance the clock), with hostile messages mixed in.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_seq::{Config, Event, Mode, Overflow, RangeSet, Sequencer, Transmit};

/// The fuzz input, read a byte or a number at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn small(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    /// A sequence number: mostly small (real state), sometimes at the top of the range.
    fn number(&mut self) -> u64 {
        match self.small() {
            b @ 0..=199 => u64::from(b % 48),
            b => u64::MAX - u64::from(b % 4),
        }
    }
}

const SEND_FRAMES: usize = 8;
const RECV_FRAMES: usize = 8;

/// One end of the pair and what the checks need to know about it.
struct Side {
    seq: Sequencer,
    /// Payloads this side sent, by sequence number.
    sent: Vec<Bytes>,
    /// Numbers of the peer's frames delivered here.
    delivered: HashSet<u64>,
    next_in_order: u64,
    /// The peer bowed out, or a hostile message reached this side: exactness no longer holds.
    exempt: bool,
    /// A protocol violation ended this side's session: it takes no more input.
    dead: bool,
}

impl Side {
    fn new(mode: Mode, config: Config) -> Self {
        Self {
            seq: Sequencer::new(mode, config),
            sent: Vec::new(),
            delivered: HashSet::new(),
            next_in_order: 0,
            exempt: false,
            dead: false,
        }
    }
}

fn hostile(input: &mut Input<'_>) -> Transmit {
    let ack = |input: &mut Input<'_>| (input.small() % 2 == 0).then(|| input.number());
    match input.small() % 4 {
        0 => Transmit::Data {
            seq: input.number(),
            ack: ack(input),
            payload: Bytes::from(vec![0xee; usize::from(input.small() % 80)]),
        },
        1 => Transmit::Ack {
            ack: input.number(),
        },
        2 => {
            let ranges: RangeSet = (0..input.small() % 4)
                .map(|_| {
                    let start = input.number();
                    start..=start.saturating_add(u64::from(input.small() % 8))
                })
                .collect();
            Transmit::NeedSeq {
                ranges,
                ack: ack(input),
            }
        }
        _ => Transmit::IgnoreSeq {
            next: input.number(),
        },
    }
}

fn deliver(now: Instant, to: &mut Side, message: Transmit) {
    if to.dead {
        return;
    }
    if let Err(error) = to.seq.handle(now, message) {
        // A well-behaved peer over a link that only loses, duplicates and reorders never
        // breaks the protocol.
        assert!(
            to.exempt || !error.is_peer_violation(),
            "a violation without a hostile peer: {error}"
        );
        to.dead = true;
    }
}

fn drain_events(mode: Mode, side: &mut Side, peer_sent: &[Bytes]) {
    while let Some(event) = side.seq.poll_event() {
        match event {
            Event::Deliver { seq, payload } => {
                if side.exempt {
                    continue;
                }
                assert!(side.delivered.insert(seq), "frame {seq} delivered twice");
                let index = usize::try_from(seq).expect("a small number");
                assert_eq!(peer_sent.get(index), Some(&payload), "frame {seq} intact");
                if mode == Mode::Ordered {
                    assert_eq!(seq, side.next_in_order, "delivered in order");
                    side.next_in_order += 1;
                }
            }
            Event::SequenceAbandoned { .. } => side.exempt = true,
            _ => {}
        }
    }
    let buffered = side.seq.buffered();
    assert!(buffered.send_frames <= SEND_FRAMES, "{buffered:?}");
    assert!(buffered.recv_frames <= RECV_FRAMES, "{buffered:?}");
}

/// Runs the operations `data` encodes. Each side delivers every frame of the other at most
/// once, intact, and in order in ordered mode, unless a hostile message reached it or the
/// peer bowed out; violations are typed errors; buffers stay within their bounds.
pub(crate) fn run(data: &[u8]) {
    let mut input = Input(data);
    let setup = input.small();
    let mode = if setup & 1 == 0 {
        Mode::Ordered
    } else {
        Mode::Unordered
    };
    let overflow = if setup & 2 == 0 {
        Overflow::Backpressure
    } else {
        Overflow::DropOldest
    };
    let config = Config::default()
        .with_send_buffer(SEND_FRAMES, 4096)
        .with_recv_buffer(RECV_FRAMES, 4096)
        .with_overflow(overflow)
        .with_rto(Duration::from_millis(20), Duration::from_millis(400));
    let mut now = Instant::now();
    let mut sides = [Side::new(mode, config.clone()), Side::new(mode, config)];
    let mut links: [VecDeque<Transmit>; 2] = [VecDeque::new(), VecDeque::new()];

    for _ in 0..2048 {
        let Some(op) = input.byte() else { break };
        // Every operation takes one argument byte; only hostile ones read more.
        let arg = input.small();
        let which = usize::from(op & 1);
        let other = 1 - which;
        match (op >> 1) % 10 {
            0 => {
                let side = &mut sides[which];
                let index = side.sent.len() as u64;
                let mut payload = index.to_le_bytes().to_vec();
                payload.resize(8 + usize::from(arg % 64), op);
                let payload = Bytes::from(payload);
                if let Ok(seq) = side.seq.send(payload.clone()) {
                    assert_eq!(seq, index, "numbers are consecutive from 0");
                    side.sent.push(payload);
                }
            }
            1 => {
                while let Some(message) = sides[which].seq.poll_transmit(now) {
                    links[which].push_back(message);
                }
            }
            2 => {
                if let Some(message) = links[other].pop_front() {
                    deliver(now, &mut sides[which], message);
                }
            }
            3 => {
                links[which].pop_front();
            }
            4 => {
                if let Some(front) = links[which].front().cloned() {
                    links[which].push_back(front);
                }
            }
            5 => {
                if links[which].len() >= 2 {
                    links[which].swap(0, 1);
                }
            }
            6 => {
                now += Duration::from_millis(u64::from(arg));
                for side in &mut sides {
                    if side.seq.poll_timeout().is_some_and(|t| t <= now) {
                        side.seq.handle_timeout(now);
                    }
                }
            }
            7 => {
                // What a side answers to a hostile message may look hostile to the other
                // side: from now on only the bounds and the absence of panics are checked.
                for side in &mut sides {
                    side.exempt = true;
                }
                let message = hostile(&mut input);
                deliver(now, &mut sides[which], message);
            }
            _ => {
                let [a, b] = &mut sides;
                let (side, peer) = if which == 0 { (a, b) } else { (b, a) };
                drain_events(mode, side, &peer.sent);
            }
        }
    }
    let [a, b] = &mut sides;
    drain_events(mode, a, &b.sent);
    drain_events(mode, b, &a.sent);
}
