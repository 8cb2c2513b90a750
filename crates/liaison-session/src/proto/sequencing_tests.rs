//! Tests of the core's sequencing and of the handshake over lossy transports: two cores
//! joined by a seeded lossy link (drop, duplicate, reorder, outage) on a virtual clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_transport::Properties;
use liaison_wire::{Flags, Frame, FrameKind, RangeSet};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{same_message, Connection, Event};
use crate::auth::PskAuth;
use crate::messages::{self, Bye, ReasonCode};
use crate::{
    ClientConfig, ClientModePolicy, HandshakeFailure, Origin, Overflow, SequencingMode,
    ServerConfig, SessionConfig, SessionError, TerminationReason,
};

const CLIENT: usize = 0;
const SERVER: usize = 1;

fn psk() -> PskAuth {
    PskAuth::new("tenant", [0x42; 32]).expect("valid key")
}

fn session_config() -> SessionConfig {
    let mut config = SessionConfig {
        keepalive_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(20),
        handshake_timeout: Duration::from_secs(10),
        ..SessionConfig::default()
    };
    config.retransmit.initial_rto = Duration::from_millis(50);
    config.retransmit.max_rto = Duration::from_millis(800);
    config
}

fn client_config(mode: SequencingMode) -> ClientConfig {
    ClientConfig::new(psk().with_name("worker"))
        .with_session(session_config())
        .with_sequencing(mode)
}

fn server_config() -> ServerConfig {
    ServerConfig::new(psk().with_name("hub")).with_session(session_config())
}

fn lossy(max_frame: usize) -> Properties {
    Properties {
        reliable: false,
        ordered: false,
        max_frame,
    }
}

/// How the link treats each frame, in both directions.
#[derive(Debug, Clone, Copy)]
struct Link {
    drop: f64,
    duplicate: f64,
    min_delay: Duration,
    max_delay: Duration,
}

impl Link {
    fn perfect() -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(2),
        }
    }

    /// 5 % loss, 3 % duplicates, delays spread enough to reorder.
    fn lossy() -> Self {
        Self {
            drop: 0.05,
            duplicate: 0.03,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(12),
        }
    }
}

/// Decides which frames of one side the link loses.
type Filter = Box<dyn FnMut(&Frame) -> bool>;

/// A filter that loses the first frame of `kind`.
fn losing_the_first(kind: FrameKind) -> Filter {
    let mut dropped = false;
    Box::new(move |frame: &Frame| {
        let hit = frame.kind == kind && !dropped;
        dropped |= hit;
        hit
    })
}

/// Two cores, the frames in flight between them, and what each application sees.
struct Net {
    start: Instant,
    now: Instant,
    conns: [Connection; 2],
    link: Link,
    rng: StdRng,
    in_flight: BTreeMap<(Instant, u64), (usize, Bytes)>,
    counter: u64,
    /// Per sending side: everything sent in this window (offsets from the start) is lost.
    outage: [Option<(Duration, Duration)>; 2],
    /// Per sending side: drop the frames for which this returns true.
    filter: [Option<Filter>; 2],
    /// Application frames each side still has to send.
    to_send: [VecDeque<Frame>; 2],
    events: [Vec<Event>; 2],
    sent_frames: [Vec<Frame>; 2],
}

impl Net {
    fn new(client: &ClientConfig, server: &ServerConfig, link: Link, seed: u64) -> Self {
        Self::with_properties(client, server, link, seed, lossy(64 << 10))
    }

    fn with_properties(
        client: &ClientConfig,
        server: &ServerConfig,
        link: Link,
        seed: u64,
        properties: Properties,
    ) -> Self {
        let now = Instant::now();
        let rng = |s: u64| Box::new(StdRng::seed_from_u64(s));
        let mut conns = [
            Connection::client(client, None, rng(seed), now).expect("client"),
            Connection::server(server, None, rng(seed ^ 7), now).expect("server"),
        ];
        for conn in &mut conns {
            conn.set_transport_properties(now, &properties)
                .expect("properties");
        }
        Self {
            start: now,
            now,
            conns,
            link,
            rng: StdRng::seed_from_u64(seed.wrapping_mul(31)),
            in_flight: BTreeMap::new(),
            counter: 0,
            outage: [None, None],
            filter: [None, None],
            to_send: [VecDeque::new(), VecDeque::new()],
            events: [Vec::new(), Vec::new()],
            sent_frames: [Vec::new(), Vec::new()],
        }
    }

    /// Hands application frames to a side while it takes them.
    fn feed(&mut self, side: usize) {
        while self.conns[side].is_established() && self.conns[side].is_writable() {
            let Some(frame) = self.to_send[side].pop_front() else {
                break;
            };
            // Refusals (a closing session) drop the frame; tests count what arrives.
            let _ = self.conns[side].send(frame);
        }
    }

    /// Moves what each side transmits onto the link, and its events to the record.
    fn pump(&mut self) {
        for side in [CLIENT, SERVER] {
            self.feed(side);
            while let Some(frame) = self.conns[side].poll_transmit(self.now) {
                self.sent_frames[side].push(frame.clone());
                let offset = self.now - self.start;
                let in_outage = self.outage[side].is_some_and(|(a, b)| offset >= a && offset < b);
                let filtered = self.filter[side].as_mut().is_some_and(|f| f(&frame));
                if in_outage || filtered || self.rng.gen_bool(self.link.drop) {
                    continue;
                }
                let copies = if self.rng.gen_bool(self.link.duplicate) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let spread = self.link.max_delay - self.link.min_delay;
                    let delay = self.link.min_delay + spread.mul_f64(self.rng.gen::<f64>());
                    self.in_flight.insert(
                        (self.now + delay, self.counter),
                        (1 - side, frame.to_bytes()),
                    );
                    self.counter += 1;
                }
            }
            while let Some(event) = self.conns[side].poll_event() {
                self.events[side].push(event);
            }
        }
    }

    /// Advances to the next arrival or deadline and handles it. Returns false when nothing
    /// is left to happen.
    fn step(&mut self) -> bool {
        self.pump();
        let arrival = self.in_flight.keys().next().map(|&(at, _)| at);
        let deadline = self.conns.iter().filter_map(Connection::poll_timeout).min();
        let Some(next) = [arrival, deadline].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (to, bytes) = entry.remove();
            self.conns[to].handle_bytes(self.now, bytes);
            self.pump();
        }
        for conn in &mut self.conns {
            conn.handle_timeout(self.now);
        }
        self.pump();
        true
    }

    /// Steps until `done` holds (true) or `limit` of virtual time passes (false).
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now + limit;
        while !done(self) {
            if self.now > end || !self.step() {
                return done(self);
            }
        }
        true
    }

    fn establish(&mut self) {
        let ok = self.run_until(Duration::from_secs(10), |net| {
            net.conns.iter().all(Connection::is_established)
        });
        assert!(
            ok,
            "not established: {:?} / {:?}",
            self.events[0], self.events[1]
        );
    }

    fn frames(&self, side: usize) -> Vec<Frame> {
        self.events[side]
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    fn payloads(&self, side: usize) -> Vec<Bytes> {
        self.frames(side).into_iter().map(|f| f.payload).collect()
    }
}

fn message(side: usize, i: u32) -> Frame {
    let exchange = u64::from(i % 7) + 1;
    let mut payload = vec![u8::try_from(side).expect("0 or 1")];
    payload.extend_from_slice(&i.to_le_bytes());
    let frame = Frame::data(exchange, payload);
    if i % 5 == 4 {
        frame.with_end()
    } else {
        frame
    }
}

fn expected(side: usize, n: u32) -> Vec<Bytes> {
    (0..n).map(|i| message(side, i).payload).collect()
}

fn send_both_ways(net: &mut Net, n: u32) {
    for side in [CLIENT, SERVER] {
        net.to_send[side].extend((0..n).map(|i| message(side, i)));
    }
}

fn delivered_all(n: u32) -> impl FnMut(&Net) -> bool {
    move |net| {
        net.frames(SERVER).len() >= n as usize
            && net.frames(CLIENT).len() >= n as usize
            && net
                .conns
                .iter()
                .all(|c| c.sequencer().is_some_and(|s| s.is_flushed()))
    }
}

fn reason(conn: &Connection) -> Option<&TerminationReason> {
    conn.termination_reason()
}

#[test]
fn ordered_frames_arrive_exactly_once_in_order_as_sent() {
    let mut net = Net::new(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        Link::lossy(),
        7,
    );
    net.establish();
    send_both_ways(&mut net, 300);
    assert!(net.run_until(Duration::from_secs(60), delivered_all(300)));
    assert_eq!(net.payloads(SERVER), expected(CLIENT, 300));
    assert_eq!(net.payloads(CLIENT), expected(SERVER, 300));
    // The layers above see the frames as they were sent: exchange, END, no SEQ / ACK.
    let first = net.frames(SERVER);
    for (i, frame) in (0..300).zip(&first) {
        let sent = message(CLIENT, i);
        assert_eq!(
            (frame.kind, frame.exchange, frame.flags),
            (sent.kind, sent.exchange, sent.flags)
        );
        assert_eq!((frame.seq, frame.ack), (0, 0));
    }
    // Losses were repaired by NeedSeq and retransmission, and acks went both ways.
    let kinds = |side: usize| {
        net.sent_frames[side]
            .iter()
            .map(|f| f.kind)
            .collect::<Vec<_>>()
    };
    assert!(
        kinds(SERVER).contains(&FrameKind::NeedSeq) || kinds(CLIENT).contains(&FrameKind::NeedSeq)
    );
    let client_seqs: Vec<u64> = net.sent_frames[CLIENT]
        .iter()
        .filter_map(Frame::sequence)
        .collect();
    assert!(client_seqs.len() > 300, "some frames were sent again");
}

#[test]
fn unordered_frames_arrive_exactly_once() {
    let mut net = Net::new(
        &client_config(SequencingMode::Unordered),
        &server_config(),
        Link::lossy(),
        11,
    );
    net.establish();
    assert_eq!(
        net.conns[SERVER].established().map(|e| e.config.sequencing),
        Some(SequencingMode::Unordered)
    );
    send_both_ways(&mut net, 300);
    assert!(net.run_until(Duration::from_secs(60), delivered_all(300)));
    for side in [CLIENT, SERVER] {
        let mut got = net.payloads(1 - side);
        assert_eq!(got.len(), 300, "no duplicates");
        got.sort();
        let mut want = expected(side, 300);
        want.sort();
        assert_eq!(got, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Over any seeded lossy link, both modes deliver every frame exactly once (in order
    /// when ordered), and a graceful close then ends both sides with `Closed`.
    #[test]
    fn any_lossy_link_delivers_exactly_once_then_closes(
        seed in any::<u64>(),
        ordered in any::<bool>(),
        n in 1u32..120,
    ) {
        let mode = if ordered { SequencingMode::Ordered } else { SequencingMode::Unordered };
        let mut net = Net::new(&client_config(mode), &server_config(), Link::lossy(), seed);
        net.establish();
        send_both_ways(&mut net, n);
        let delivered = net.run_until(Duration::from_secs(120), delivered_all(n));
        prop_assert!(delivered);
        for side in [CLIENT, SERVER] {
            let mut got = net.payloads(1 - side);
            let mut want = expected(side, n);
            if !ordered {
                got.sort();
                want.sort();
            }
            prop_assert_eq!(got, want);
        }
        net.conns[CLIENT].close("done");
        let drained = net.run_until(Duration::from_secs(60), |net| {
            net.conns.iter().all(Connection::is_drained)
        });
        prop_assert!(drained);
        prop_assert_eq!(
            reason(&net.conns[SERVER]),
            Some(&TerminationReason::Closed { origin: Origin::Remote, reason: "done".into() })
        );
    }
}

#[test]
fn the_handshake_survives_losing_each_of_its_frames() {
    // Drop the first copy of every handshake frame, in turn, in both directions.
    for victim in [
        FrameKind::Hello,
        FrameKind::Welcome,
        FrameKind::AuthProof,
        FrameKind::AuthChallenge,
        FrameKind::AuthResult,
        FrameKind::Config,
    ] {
        let mut net = Net::new(
            &client_config(SequencingMode::Ordered),
            &server_config(),
            Link::perfect(),
            3,
        );
        for side in [CLIENT, SERVER] {
            net.filter[side] = Some(losing_the_first(victim));
        }
        net.establish();
        let client = net.conns[CLIENT].established().expect("client").clone();
        let server = net.conns[SERVER].established().expect("server").clone();
        assert_eq!(
            client.config.session_id, server.config.session_id,
            "{victim}"
        );
        let repeats = net.sent_frames[CLIENT]
            .iter()
            .filter(|f| f.kind == FrameKind::Hello)
            .count();
        if victim == FrameKind::Hello {
            assert_eq!(repeats, 2, "the client sent Hello again");
        }
    }
}

#[test]
fn duplicated_handshake_frames_are_harmless() {
    let link = Link {
        duplicate: 1.0,
        ..Link::perfect()
    };
    let mut net = Net::new(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        link,
        5,
    );
    net.establish();
    send_both_ways(&mut net, 20);
    assert!(net.run_until(Duration::from_secs(10), delivered_all(20)));
    assert_eq!(net.payloads(SERVER), expected(CLIENT, 20));
    assert!(net.conns.iter().all(|c| !c.is_terminated()));
}

/// An ordered session over a link with a 4 ms round trip that loses the server's first
/// `Config` answer.
fn losing_the_first_config_answer() -> Net {
    let mut net = Net::new(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        Link::perfect(),
        9,
    );
    net.filter[SERVER] = Some(losing_the_first(FrameKind::Config));
    net
}

#[test]
fn a_lost_configuration_answer_is_sent_again_and_early_data_waits() {
    let mut net = losing_the_first_config_answer();
    // The server is established first and sends at once; the client is not yet.
    net.to_send[SERVER].extend((0..5).map(|i| message(SERVER, i)));
    net.establish();
    assert!(net.run_until(Duration::from_secs(10), |net| net.frames(CLIENT).len() == 5));
    assert_eq!(net.payloads(CLIENT), expected(SERVER, 5));
    let configs = net.sent_frames[SERVER]
        .iter()
        .filter(|f| f.kind == FrameKind::Config)
        .count();
    assert_eq!(
        configs, 2,
        "the repeated Config request got a second answer"
    );
}

/// The handshake frames the client sent again (the same frame as one it sent before), by
/// kind.
fn client_handshake_repeats(net: &Net) -> BTreeMap<String, usize> {
    let sent = &net.sent_frames[CLIENT];
    let mut repeats = BTreeMap::new();
    for (i, frame) in sent.iter().enumerate() {
        if frame.kind.is_handshake() && sent[..i].iter().any(|seen| same_message(seen, frame)) {
            *repeats.entry(frame.kind.to_string()).or_default() += 1;
        }
    }
    repeats
}

#[test]
fn a_handshake_flight_is_repeated_after_the_measured_round_trip() {
    // A round trip far below the 50 ms `initial_rto`.
    let mut net = losing_the_first_config_answer();
    net.establish();
    let initial_rto = session_config().retransmit.initial_rto;
    let took = net.now - net.start;
    assert!(
        took < initial_rto,
        "the lost answer cost {took:?}: the repeat waited for `initial_rto`"
    );
    assert_eq!(
        client_handshake_repeats(&net),
        BTreeMap::from([("Config".to_owned(), 1)])
    );
}

/// A filter that loses the first copy of every handshake message.
fn losing_every_first_copy() -> Filter {
    let mut seen: Vec<Frame> = Vec::new();
    Box::new(move |frame: &Frame| {
        if !frame.kind.is_handshake() || seen.iter().any(|s| same_message(s, frame)) {
            return false;
        }
        seen.push(frame.clone());
        true
    })
}

/// An ordered session over a link of 2 ms each way that loses the first copy of every
/// handshake message of the client, established.
fn every_first_copy_lost() -> Net {
    let mut net = Net::new(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        Link::perfect(),
        12,
    );
    net.filter[CLIENT] = Some(losing_every_first_copy());
    net.establish();
    net
}

/// The kind and copy tag of each handshake frame `side` sent.
fn handshake_tags(net: &Net, side: usize) -> Vec<(FrameKind, u64)> {
    net.sent_frames[side]
        .iter()
        .filter(|f| f.kind.is_handshake())
        .map(|f| (f.kind, f.exchange))
        .collect()
}

#[test]
fn repeated_flights_are_tagged_and_answers_name_the_copy() {
    let net = every_first_copy_lost();
    // Four flights (`Hello`, two `AuthProof`s, `Config`), each sent as copy 1 (lost) and
    // copy 2.
    let client: Vec<u64> = handshake_tags(&net, CLIENT)
        .into_iter()
        .map(|(_, tag)| tag)
        .collect();
    assert_eq!(client, [1, 2, 1, 2, 1, 2, 1, 2]);
    // Only the second copies arrived: every answer names copy 2.
    assert_eq!(
        handshake_tags(&net, SERVER),
        [
            (FrameKind::Welcome, 2),
            (FrameKind::AuthChallenge, 2),
            (FrameKind::AuthResult, 2),
            (FrameKind::Config, 2),
        ]
    );
}

#[test]
fn a_repeated_flight_still_measures_the_round_trip() {
    // No flight is answered unrepeated, yet the copy tags give the 4 ms round trip: only
    // the first loss, before any sample, waits `initial_rto` (50 ms); the next three wait
    // three round trips each. Without the tags each of the four would wait at least
    // `initial_rto`.
    let net = every_first_copy_lost();
    assert_eq!(
        client_handshake_repeats(&net),
        BTreeMap::from([
            ("AuthProof".to_owned(), 2),
            ("Config".to_owned(), 1),
            ("Hello".to_owned(), 1),
        ])
    );
    let initial_rto = session_config().retransmit.initial_rto;
    let took = net.now - net.start;
    assert!(
        took < initial_rto * 3,
        "{took:?}: the later losses waited for `initial_rto` too"
    );
    let rtt = net.conns[CLIENT].sequencer().expect("sequenced").rtt();
    assert_eq!(
        rtt.map(|rtt| rtt.latest_rtt),
        Some(Duration::from_millis(4)),
        "2 ms each way"
    );
}

#[test]
fn the_handshake_round_trip_seeds_the_sequencers_and_paces_the_first_retransmission() {
    let mut net = Net::new(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        Link::perfect(),
        11,
    );
    net.establish();
    for side in [CLIENT, SERVER] {
        let rtt = net.conns[side].sequencer().expect("sequenced").rtt();
        assert_eq!(
            rtt.map(|rtt| rtt.latest_rtt),
            Some(Duration::from_millis(4)),
            "side {side}: 2 ms each way"
        );
    }
    // The client's first message is lost: it is sent again after a timeout derived from
    // the 4 ms round trip (and the peer's ack delay), not after `initial_rto`.
    net.filter[CLIENT] = Some(losing_the_first(FrameKind::Data));
    let sent = net.now;
    net.to_send[CLIENT].push_back(message(CLIENT, 0));
    assert!(net.run_until(Duration::from_secs(5), |net| net.frames(SERVER).len() == 1));
    let took = net.now - sent;
    let initial_rto = session_config().retransmit.initial_rto;
    assert!(
        took < initial_rto,
        "the lost message took {took:?}: its retransmission waited for `initial_rto`"
    );
}

#[test]
fn sequenced_frames_carry_numbers_acks_and_the_session_owns_acks() {
    let mut net = Net::new(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        Link::perfect(),
        1,
    );
    net.establish();
    for kind in [FrameKind::Ack, FrameKind::NeedSeq] {
        let refused = net.conns[CLIENT].send(Frame::control(kind, Bytes::new()));
        assert!(
            matches!(refused, Err(SessionError::InvalidFrame(_))),
            "{kind}"
        );
    }
    net.to_send[CLIENT].extend((0..3).map(|i| message(CLIENT, i)));
    net.to_send[SERVER].push_back(message(SERVER, 0));
    assert!(net.run_until(Duration::from_secs(5), delivered_all(1)));
    let seqs: Vec<u64> = net.sent_frames[CLIENT]
        .iter()
        .filter(|f| f.kind == FrameKind::Data)
        .filter_map(Frame::sequence)
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    // The server's frame carries the ack of what it received, or an Ack frame does.
    let acked = net.sent_frames[SERVER]
        .iter()
        .filter_map(Frame::acknowledgement)
        .max();
    assert_eq!(acked, Some(2));
    // A peer sending an exchange frame without a number breaks the protocol.
    net.conns[SERVER].handle_frame(net.now, Frame::data(1, &b"unnumbered"[..]));
    assert!(matches!(
        reason(&net.conns[SERVER]),
        Some(TerminationReason::ProtocolViolation {
            origin: Origin::Local,
            ..
        })
    ));
}

#[test]
fn a_full_retransmit_buffer_is_backpressure() {
    let mut client = client_config(SequencingMode::Ordered);
    client.session.limits.send_buffer = 2;
    let mut net = Net::new(&client, &server_config(), Link::perfect(), 2);
    net.establish();
    let conn = &mut net.conns[CLIENT];
    for i in 0..3 {
        conn.send(message(CLIENT, i)).expect("send");
    }
    assert!(!conn.is_writable(), "the third frame waits for room");
    assert!(matches!(
        conn.send(message(CLIENT, 3)),
        Err(SessionError::SendBufferFull)
    ));
    let held = conn.sequencer().expect("sequenced").buffered();
    assert_eq!(held.send_frames, 2);
    assert!(net.run_until(Duration::from_secs(5), |net| net.frames(SERVER).len() == 3));
    assert!(net.conns[CLIENT].is_writable());
    assert_eq!(net.payloads(SERVER), expected(CLIENT, 3));
}

#[test]
fn close_waits_until_every_frame_is_acknowledged() {
    let mut net = Net::new(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        Link::perfect(),
        4,
    );
    net.establish();
    // Everything the client sends in the first 300 ms is lost.
    let offset = net.now - net.start;
    net.outage[CLIENT] = Some((offset, offset + Duration::from_millis(300)));
    for i in 0..10 {
        net.conns[CLIENT].send(message(CLIENT, i)).expect("send");
    }
    net.conns[CLIENT].close("done");
    assert!(
        !net.conns[CLIENT].is_terminated(),
        "close waits for the acks"
    );
    assert!(net.conns[CLIENT].send(message(CLIENT, 10)).is_err());
    assert!(net.run_until(Duration::from_secs(10), |net| {
        net.conns.iter().all(Connection::is_terminated)
    }));
    assert_eq!(net.payloads(SERVER), expected(CLIENT, 10));
    assert_eq!(
        reason(&net.conns[SERVER]),
        Some(&TerminationReason::Closed {
            origin: Origin::Remote,
            reason: "done".into()
        })
    );
}

#[test]
fn a_lost_bye_is_repeated() {
    let mut net = Net::new(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        Link::perfect(),
        6,
    );
    net.establish();
    let mut dropped = 0;
    net.filter[CLIENT] = Some(Box::new(move |frame: &Frame| {
        let hit = frame.kind == FrameKind::Bye && dropped < 2;
        dropped += usize::from(hit);
        hit
    }));
    net.conns[CLIENT].close("bye");
    assert!(
        net.run_until(Duration::from_secs(5), |net| net.conns[SERVER]
            .is_terminated())
    );
    assert_eq!(
        reason(&net.conns[SERVER]),
        Some(&TerminationReason::Closed {
            origin: Origin::Remote,
            reason: "bye".into()
        })
    );
    // The repeats run out: the client is drained, not lingering for ever.
    assert!(
        net.run_until(Duration::from_secs(10), |net| net.conns[CLIENT]
            .is_drained())
    );
    let byes = net.sent_frames[CLIENT]
        .iter()
        .filter(|f| f.kind == FrameKind::Bye)
        .count();
    assert_eq!(byes, 4, "the Bye and its three repeats");
}

#[test]
fn a_sender_that_forgot_requested_frames_bows_out_and_the_receiver_names_them() {
    let mut client = client_config(SequencingMode::Ordered);
    client.session.limits.send_buffer = 4;
    client.session.retransmit.overflow = Overflow::DropOldest;
    let mut net = Net::new(&client, &server_config(), Link::perfect(), 8);
    net.establish();
    // A long outage of the client's direction while it sends 20 frames: 0..=15 are
    // forgotten before the link comes back.
    let offset = net.now - net.start;
    net.outage[CLIENT] = Some((offset, offset + Duration::from_secs(2)));
    for i in 0..20 {
        net.conns[CLIENT]
            .send(message(CLIENT, i))
            .expect("DropOldest never blocks");
    }
    assert!(net.run_until(Duration::from_secs(20), |net| {
        net.conns.iter().all(Connection::is_terminated)
    }));
    let lost: RangeSet = [0..=15].into_iter().collect();
    assert_eq!(
        reason(&net.conns[CLIENT]),
        Some(&TerminationReason::BowedOut {
            ranges: lost.clone()
        })
    );
    assert_eq!(
        reason(&net.conns[SERVER]),
        Some(&TerminationReason::SequenceAbandoned { ranges: lost })
    );
    assert!(
        net.frames(SERVER).is_empty(),
        "nothing after the gap is delivered"
    );
    // On the wire: Bye with IGNORE_SEQ, the oldest number still held in seq.
    let bye = net.sent_frames[CLIENT]
        .iter()
        .find(|f| f.kind == FrameKind::Bye)
        .expect("a bow-out");
    assert!(bye.flags.contains(Flags::IGNORE_SEQ));
    assert_eq!(bye.sequence(), Some(16));
    let payload: Bye = messages::decode(&bye.payload).expect("reason");
    assert_eq!(
        ReasonCode::from(payload.code),
        ReasonCode::SequenceAbandoned
    );
}

#[test]
fn a_mode_the_client_did_not_ask_for_is_nacked_and_rejected_on_both_sides() {
    let client = client_config(SequencingMode::Ordered)
        .with_mode_policy(ClientModePolicy::Reregister { attempts: 1 });
    let server = server_config().with_sequencing_modes([SequencingMode::Unordered]);
    let mut net = Net::new(&client, &server, Link::perfect(), 10);
    assert!(net.run_until(Duration::from_secs(5), |net| {
        net.conns.iter().all(Connection::is_terminated)
    }));
    let rejected = |origin| {
        TerminationReason::HandshakeFailed(HandshakeFailure::ModeRejected {
            origin,
            requested: SequencingMode::Ordered,
            offered: SequencingMode::Unordered,
        })
    };
    assert_eq!(reason(&net.conns[CLIENT]), Some(&rejected(Origin::Local)));
    assert_eq!(reason(&net.conns[SERVER]), Some(&rejected(Origin::Remote)));
    // The server answered with the mode it sets; the client's NACK restates its request.
    let nack = net.sent_frames[CLIENT].last().expect("a NACK");
    assert_eq!(nack.kind, FrameKind::Bye);
    let nack: Bye = messages::decode(&nack.payload).expect("reason");
    assert_eq!(ReasonCode::from(nack.code), ReasonCode::ModeRejected);
    assert!(
        nack.message.contains("Request-Session-Mode: ordered"),
        "{}",
        nack.message
    );
    assert!(matches!(
        SessionError::from(rejected(Origin::Local)),
        SessionError::ModeRejected {
            origin: Origin::Local,
            ..
        }
    ));
}

#[test]
fn no_sequencing_over_an_unreliable_transport_is_refused_at_configuration() {
    let now = Instant::now();
    let config = client_config(SequencingMode::None);
    let mut conn =
        Connection::client(&config, None, Box::new(StdRng::seed_from_u64(1)), now).expect("client");
    assert!(matches!(
        conn.set_transport_properties(now, &lossy(1200)),
        Err(SessionError::InvalidConfig(_))
    ));
    // A server over an unreliable transport refuses such a request too (from a client that
    // was not told about the transport).
    let mut net = Net::new(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        Link::perfect(),
        1,
    );
    net.conns[CLIENT] =
        Connection::client(&config, None, Box::new(StdRng::seed_from_u64(3)), now).expect("client");
    assert!(
        net.run_until(Duration::from_secs(5), |net| net.conns[SERVER]
            .is_terminated())
    );
    assert!(matches!(
        reason(&net.conns[SERVER]),
        Some(TerminationReason::HandshakeFailed(
            HandshakeFailure::Rejected {
                code: ReasonCode::ConfigRejected,
                ..
            }
        ))
    ));
}

#[test]
fn the_frame_size_respects_the_transport() {
    let mut net = Net::with_properties(
        &client_config(SequencingMode::Ordered),
        &server_config(),
        Link::perfect(),
        12,
        lossy(1200),
    );
    net.establish();
    let limits = net.conns[CLIENT]
        .established()
        .expect("client")
        .config
        .limits;
    assert_eq!(limits.max_frame_payload, 1200 - 32);
    assert!(net.conns[CLIENT]
        .send(Frame::data(1, vec![0u8; 1169]))
        .is_err());
    assert!(net.conns[CLIENT]
        .send(Frame::data(1, vec![0u8; 1168]))
        .is_ok());
    let control = Frame::on_exchange(FrameKind::ExchangeEnd, 1, vec![0u8; 1169]);
    assert!(
        net.conns[CLIENT].send(control).is_err(),
        "control frames fit the transport too"
    );
}

#[test]
fn without_sequencing_frames_pass_straight_through() {
    let mut net = Net::with_properties(
        &client_config(SequencingMode::None),
        &server_config(),
        Link::perfect(),
        13,
        Properties {
            reliable: true,
            ordered: true,
            max_frame: 16 << 20,
        },
    );
    net.establish();
    assert!(net.conns[CLIENT].sequencer().is_none());
    net.conns[CLIENT]
        .send(Frame::ack(4))
        .expect("the layers above own acks");
    net.conns[CLIENT].send(message(CLIENT, 0)).expect("send");
    assert!(net.run_until(Duration::from_secs(1), |net| net.frames(SERVER).len() == 2));
    let frames = net.frames(SERVER);
    assert_eq!(frames[0], Frame::ack(4));
    assert_eq!(frames[1], message(CLIENT, 0));
    assert!(net.sent_frames[CLIENT]
        .iter()
        .all(|f| f.sequence().is_none()));
}

/// One hostile or ordinary input to an established sequenced pair.
#[derive(Debug, Clone)]
enum Action {
    /// A well-formed frame of any kind, with random flags, numbers and payload, forged into
    /// one side.
    Forged {
        to_client: bool,
        kind: FrameKind,
        seq: Option<u64>,
        ack: Option<u64>,
        ignore_seq: bool,
        payload: Vec<u8>,
    },
    /// The application sends a frame.
    Send(bool),
    /// Time passes (and the link delivers).
    Advance(u16),
    /// One side closes.
    Close(bool),
}

fn small_or_any() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..40, any::<u64>()]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (
            any::<bool>(),
            proptest::sample::select(FrameKind::ALL),
            proptest::option::of(small_or_any()),
            proptest::option::of(small_or_any()),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(to_client, kind, seq, ack, ignore_seq, payload)| Action::Forged {
                to_client,
                kind,
                seq,
                ack,
                ignore_seq,
                payload,
            }),
        3 => any::<bool>().prop_map(Action::Send),
        2 => (0u16..500).prop_map(Action::Advance),
        1 => any::<bool>().prop_map(Action::Close),
    ]
}

/// At most one `Established`, first; exactly one `Terminated` iff terminated, last.
fn check_events(conn: &Connection, events: &[Event]) -> Result<(), TestCaseError> {
    let established = events
        .iter()
        .filter(|e| matches!(e, Event::Established(_)))
        .count();
    prop_assert_eq!(established, 1);
    prop_assert!(matches!(events[0], Event::Established(_)));
    let ends = events
        .iter()
        .filter(|e| matches!(e, Event::Terminated(_)))
        .count();
    prop_assert_eq!(ends, usize::from(conn.is_terminated()));
    if conn.is_terminated() {
        prop_assert!(matches!(events.last(), Some(Event::Terminated(_))));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Forged sequencing frames (acks of frames never sent, NeedSeq of any content,
    /// bow-outs, numbers far ahead, unnumbered data) mixed with ordinary traffic never
    /// panic: each side stays established or ends with one reason, and once the link falls
    /// silent past the idle timeout both end and drain.
    #[test]
    fn a_sequenced_core_survives_hostile_input(
        actions in proptest::collection::vec(action(), 0..40),
        ordered in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mode = if ordered { SequencingMode::Ordered } else { SequencingMode::Unordered };
        let mut net = Net::new(&client_config(mode), &server_config(), Link::lossy(), seed);
        net.establish();
        let mut counter = 0;
        for action in actions {
            match action {
                Action::Forged { to_client, kind, seq, ack, ignore_seq, payload } => {
                    let mut frame = if kind.is_exchange() {
                        Frame::on_exchange(kind, 1, payload)
                    } else {
                        Frame::control(kind, payload)
                    };
                    if let Some(seq) = seq {
                        frame = frame.with_seq(seq);
                    }
                    if let Some(ack) = ack {
                        frame = frame.with_ack(ack);
                    }
                    if ignore_seq && kind == FrameKind::Bye {
                        frame = frame.with_flags(Flags::IGNORE_SEQ);
                    }
                    let side = if to_client { CLIENT } else { SERVER };
                    net.conns[side].handle_bytes(net.now, frame.to_bytes());
                }
                Action::Send(client) => {
                    let side = if client { CLIENT } else { SERVER };
                    net.to_send[side].push_back(message(side, counter));
                    counter += 1;
                }
                Action::Advance(ms) => {
                    let until = net.now + Duration::from_millis(u64::from(ms));
                    net.run_until(Duration::from_secs(1), |net| net.now >= until);
                }
                Action::Close(client) => {
                    net.conns[if client { CLIENT } else { SERVER }].close("test");
                }
            }
            net.pump();
        }
        for side in [CLIENT, SERVER] {
            check_events(&net.conns[side], &net.events[side])?;
        }
        // Silence: the link loses everything from now on.
        net.link.drop = 1.0;
        let drained = net.run_until(Duration::from_secs(3600), |net| {
            net.conns.iter().all(Connection::is_drained)
        });
        prop_assert!(drained);
        for side in [CLIENT, SERVER] {
            check_events(&net.conns[side], &net.events[side])?;
            prop_assert_eq!(net.conns[side].poll_timeout(), None);
        }
    }
}
