//! `Pair`: two sequencers joined by a seeded lossy link (drop, duplicate, reorder, delay,
//! outage) under a virtual clock, stepped until idle.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_seq::{Buffered, Config, Event, Mode, RangeSet, SeqError, Sequencer, Transmit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the link treats each message, in one direction.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// Probability a message is lost.
    pub(crate) drop: f64,
    /// Probability a message arrives twice.
    pub(crate) duplicate: f64,
    /// Delay of each copy, drawn uniformly: a spread reorders messages.
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    /// Everything sent in this window (offsets from the start) is lost.
    pub(crate) outage: Option<(Duration, Duration)>,
}

impl Link {
    pub(crate) fn perfect() -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(5),
            outage: None,
        }
    }
}

/// One direction of the link: messages in flight, keyed by arrival time and send order.
struct Channel {
    link: Link,
    in_flight: BTreeMap<(Instant, u64), Transmit>,
    counter: u64,
}

impl Channel {
    fn new(link: Link) -> Self {
        Self {
            link,
            in_flight: BTreeMap::new(),
            counter: 0,
        }
    }

    fn push(&mut self, start: Instant, now: Instant, message: Transmit, rng: &mut StdRng) {
        let in_outage = self
            .link
            .outage
            .is_some_and(|(from, to)| now >= start + from && now < start + to);
        if in_outage || rng.gen_bool(self.link.drop) {
            return;
        }
        let copies = if rng.gen_bool(self.link.duplicate) {
            2
        } else {
            1
        };
        let (min, max) = (
            self.link.min_delay,
            self.link.max_delay.max(self.link.min_delay),
        );
        for _ in 0..copies {
            let delay = Duration::from_micros(rng.gen_range(
                u64::try_from(min.as_micros()).expect("short delay")
                    ..=u64::try_from(max.as_micros()).expect("short delay"),
            ));
            self.in_flight
                .insert((now + delay, self.counter), message.clone());
            self.counter += 1;
        }
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|&(at, _)| at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Transmit> {
        let (&key, _) = self
            .in_flight
            .iter()
            .next()
            .filter(|((at, _), _)| *at <= now)?;
        self.in_flight.remove(&key)
    }
}

/// One endpoint: its sequencer, what its application sends, and everything it observed.
pub(crate) struct Side {
    pub(crate) seq: Sequencer,
    /// Messages the application will send, each released at an offset from the start.
    pending: VecDeque<(Duration, Bytes)>,
    /// Messages `send` accepted: (number, payload).
    pub(crate) sent: Vec<(u64, Bytes)>,
    pub(crate) delivered: Vec<(u64, Bytes)>,
    pub(crate) abandoned: RangeSet,
    pub(crate) abandoned_events: usize,
    pub(crate) bowed_out: RangeSet,
    pub(crate) ignore_sent: usize,
    pub(crate) need_seq_sent: usize,
    /// The largest figures `buffered()` showed at the end of any step.
    pub(crate) peak: Buffered,
}

impl Side {
    fn new(seq: Sequencer) -> Self {
        Self {
            seq,
            pending: VecDeque::new(),
            sent: Vec::new(),
            delivered: Vec::new(),
            abandoned: RangeSet::new(),
            abandoned_events: 0,
            bowed_out: RangeSet::new(),
            ignore_sent: 0,
            need_seq_sent: 0,
            peak: Buffered::default(),
        }
    }

    /// Offers released messages to `send` until it pushes back.
    fn offer(&mut self, elapsed: Duration, errors: &mut Vec<String>) -> bool {
        let mut progressed = false;
        while let Some((release, payload)) = self.pending.front() {
            if *release > elapsed {
                break;
            }
            match self.seq.send(payload.clone()) {
                Ok(seq) => {
                    self.sent.push((seq, payload.clone()));
                    self.pending.pop_front();
                    progressed = true;
                }
                Err(SeqError::BufferFull { .. }) => break,
                Err(e) => {
                    errors.push(format!("send failed: {e}"));
                    self.pending.pop_front();
                }
            }
        }
        progressed
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.seq.poll_event() {
            match event {
                Event::Deliver { seq, payload } => self.delivered.push((seq, payload)),
                Event::SequenceAbandoned { ranges } => {
                    self.abandoned_events += 1;
                    self.abandoned.extend(ranges.ranges());
                }
                Event::BowedOut { ranges } => self.bowed_out.extend(ranges.ranges()),
                Event::Writable => {}
                other => panic!("unexpected event {other:?}"),
            }
        }
    }

    /// Records the peak buffer use and reports any bound exceeded.
    fn check_bounds(&mut self, name: &str, errors: &mut Vec<String>) {
        let b = self.seq.buffered();
        let (send_frames, send_bytes) = self.seq.config().send_buffer();
        let (recv_frames, recv_bytes) = self.seq.config().recv_buffer();
        if b.send_frames > send_frames || b.send_bytes > send_bytes {
            errors.push(format!("{name}: retransmit buffer over its bound: {b:?}"));
        }
        if b.recv_frames > recv_frames || b.recv_bytes > recv_bytes {
            errors.push(format!("{name}: receive buffer over its bound: {b:?}"));
        }
        self.peak.send_frames = self.peak.send_frames.max(b.send_frames);
        self.peak.send_bytes = self.peak.send_bytes.max(b.send_bytes);
        self.peak.recv_frames = self.peak.recv_frames.max(b.recv_frames);
        self.peak.recv_bytes = self.peak.recv_bytes.max(b.recv_bytes);
    }

    /// Whether the application has nothing left to send and the peer acknowledged it all.
    pub(crate) fn is_done(&self) -> bool {
        self.pending.is_empty() && self.seq.is_flushed()
    }
}

/// Two sequencers, `a` and `b`, over a lossy link, with a virtual clock.
pub(crate) struct Pair {
    pub(crate) start: Instant,
    pub(crate) now: Instant,
    pub(crate) a: Side,
    pub(crate) b: Side,
    a_to_b: Channel,
    b_to_a: Channel,
    rng: StdRng,
    pub(crate) steps: u64,
    /// Protocol errors, failed sends and exceeded bounds: a correct run has none.
    pub(crate) errors: Vec<String>,
}

impl Pair {
    pub(crate) fn new(mode: Mode, a: Config, b: Config, link: Link, seed: u64) -> Self {
        let start = Instant::now();
        Self {
            start,
            now: start,
            a: Side::new(Sequencer::new(mode, a)),
            b: Side::new(Sequencer::new(mode, b)),
            a_to_b: Channel::new(link.clone()),
            b_to_a: Channel::new(link),
            rng: StdRng::seed_from_u64(seed),
            steps: 0,
            errors: Vec::new(),
        }
    }

    /// Queues messages for `a`'s application (`from_a`) or `b`'s, the i-th released at
    /// `i * gap` from the start.
    pub(crate) fn queue(
        &mut self,
        from_a: bool,
        payloads: impl IntoIterator<Item = Bytes>,
        gap: Duration,
    ) {
        let side = if from_a { &mut self.a } else { &mut self.b };
        for (i, payload) in payloads.into_iter().enumerate() {
            let i = u32::try_from(i).expect("few messages");
            side.pending.push_back((gap * i, payload));
        }
    }

    /// One step: sends, transmits, arrivals, events; if none of that happened, the clock
    /// moves to the next arrival, release or deadline. Returns `false` once nothing is left
    /// to happen.
    pub(crate) fn step(&mut self) -> bool {
        self.steps += 1;
        let elapsed = self.now - self.start;
        let mut progressed = self.a.offer(elapsed, &mut self.errors);
        progressed |= self.b.offer(elapsed, &mut self.errors);
        progressed |= Self::transmit(
            self.start,
            self.now,
            &mut self.a,
            &mut self.a_to_b,
            &mut self.rng,
        );
        progressed |= Self::transmit(
            self.start,
            self.now,
            &mut self.b,
            &mut self.b_to_a,
            &mut self.rng,
        );
        progressed |= Self::arrive(
            self.now,
            &mut self.a_to_b,
            &mut self.b,
            "b",
            &mut self.errors,
        );
        progressed |= Self::arrive(
            self.now,
            &mut self.b_to_a,
            &mut self.a,
            "a",
            &mut self.errors,
        );
        self.a.drain_events();
        self.b.drain_events();
        self.a.check_bounds("a", &mut self.errors);
        self.b.check_bounds("b", &mut self.errors);
        if progressed {
            return true;
        }
        // Messages released but refused (backpressure) wait for progress, not for time.
        let release = |side: &Side| {
            side.pending
                .front()
                .map(|(at, _)| self.start + *at)
                .filter(|&at| at > self.now)
        };
        let next = [
            self.a_to_b.next_arrival(),
            self.b_to_a.next_arrival(),
            self.a.seq.poll_timeout(),
            self.b.seq.poll_timeout(),
            release(&self.a),
            release(&self.b),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        self.a.seq.handle_timeout(self.now);
        self.b.seq.handle_timeout(self.now);
        true
    }

    fn transmit(
        start: Instant,
        now: Instant,
        side: &mut Side,
        channel: &mut Channel,
        rng: &mut StdRng,
    ) -> bool {
        let mut progressed = false;
        while let Some(message) = side.seq.poll_transmit(now) {
            match message {
                Transmit::IgnoreSeq { .. } => side.ignore_sent += 1,
                Transmit::NeedSeq { .. } => side.need_seq_sent += 1,
                _ => {}
            }
            channel.push(start, now, message, rng);
            progressed = true;
        }
        progressed
    }

    fn arrive(
        now: Instant,
        channel: &mut Channel,
        side: &mut Side,
        name: &str,
        errors: &mut Vec<String>,
    ) -> bool {
        let mut progressed = false;
        while let Some(message) = channel.pop_due(now) {
            if let Err(e) = side.seq.handle(now, message) {
                errors.push(format!("{name} refused a message: {e}"));
            }
            progressed = true;
        }
        progressed
    }

    /// Steps until idle or `max_steps`; returns whether it went idle.
    pub(crate) fn run(&mut self, max_steps: u64) -> bool {
        while self.steps < max_steps {
            if !self.step() {
                return true;
            }
        }
        false
    }

    /// Virtual time elapsed since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

/// Distinct payloads: message `i` of side `tag`, `len` bytes long.
pub(crate) fn payloads(tag: u8, lens: &[usize]) -> Vec<Bytes> {
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut p = vec![tag; len.max(3)];
            let [hi, lo] = u16::try_from(i).expect("few messages").to_be_bytes();
            p[1] = hi;
            p[2] = lo;
            Bytes::from(p)
        })
        .collect()
}
