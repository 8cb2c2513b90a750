//! Body of the `handshake` fuzz target, shared with the `fuzz_mirrors` proptest: a client
//! and a server `proto::Connection` (pre-shared key) joined by a link that the input drives
//! operation by operation (transmit, deliver, drop, duplicate, reorder, corrupt, inject raw
//! bytes, advance the clock, send, close, abort), in every sequencing mode.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_session::proto::{Connection, Event};
use liaison_session::{
    ClientConfig, PskAuth, SequencingMode, ServerConfig, SessionConfig, SessionId,
};
use liaison_transport::Properties;
use liaison_wire::{Frame, FrameKind};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The fuzz input, read a byte at a time; zeros once it runs out.
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

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.small()).collect()
    }
}

/// One end and what its events showed.
struct Side {
    conn: Connection,
    established: Option<SessionId>,
    terminated: bool,
    /// Payloads of the `Data` frames the application sent, in order.
    sent: Vec<Bytes>,
    /// Payloads of the `Data` frames delivered here, in order.
    delivered: Vec<Bytes>,
}

impl Side {
    fn new(conn: Connection) -> Self {
        Self {
            conn,
            established: None,
            terminated: false,
            sent: Vec::new(),
            delivered: Vec::new(),
        }
    }

    /// Takes every event, checking their order: `Established` at most once and before any
    /// frame, `Terminated` at most once and last, frames only of the kinds the layers above
    /// receive.
    fn drain_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            assert!(!self.terminated, "an event after Terminated: {event:?}");
            match event {
                Event::Established(established) => {
                    assert!(self.established.is_none(), "established twice");
                    self.established = Some(established.config.session_id);
                }
                Event::Frame(frame) => {
                    assert!(self.established.is_some(), "a frame before Established");
                    assert!(
                        !frame.kind.is_handshake()
                            && !matches!(
                                frame.kind,
                                FrameKind::Bye | FrameKind::Ping | FrameKind::Pong
                            ),
                        "a session frame passed up: {frame:?}"
                    );
                    if frame.kind == FrameKind::Data {
                        self.delivered.push(frame.payload);
                    }
                }
                Event::Terminated(_) => self.terminated = true,
                _ => {}
            }
        }
    }
}

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.handshake_timeout = Duration::from_secs(2);
    config.keepalive_interval = Duration::from_millis(300);
    config.idle_timeout = Duration::from_secs(1);
    config.linger = Duration::from_millis(100);
    config.limits.send_buffer = 8;
    config.limits.receive_buffer = 8;
    config.retransmit.initial_rto = Duration::from_millis(20);
    config.retransmit.max_rto = Duration::from_millis(200);
    config
}

fn psk(name: &str, key: [u8; 16]) -> PskAuth {
    PskAuth::new("fuzz", key)
        .expect("a 16-byte key is long enough")
        .with_name(name)
}

/// Runs the operations `data` encodes. Whatever happens, nothing panics and each side's
/// events come in a valid order; two sides that both established share the session id;
/// in an ordered session over a link that only loses, duplicates and reorders, each side
/// receives exactly the `Data` payloads the other sent, in order (a prefix of them).
pub(crate) fn run(data: &[u8]) {
    let mut input = Input(data);
    let setup = input.small();
    let mode = match setup % 3 {
        0 => SequencingMode::None,
        1 => SequencingMode::Ordered,
        _ => SequencingMode::Unordered,
    };
    let lossy = mode != SequencingMode::None && setup & 4 != 0;
    // A wrong key on one side now and then: authentication must fail cleanly.
    let server_key = if setup & 8 != 0 && setup & 16 != 0 {
        [2u8; 16]
    } else {
        [1u8; 16]
    };
    let properties = Properties {
        reliable: !lossy,
        ordered: !lossy,
        max_frame: 4096,
    };
    let start = Instant::now();
    let mut now = start;
    let client = ClientConfig::new(psk("client", [1u8; 16]))
        .with_session(session_config())
        .with_sequencing(mode);
    let server = ServerConfig::new(psk("server", server_key)).with_session(session_config());
    let rng = |seed: u64| Box::new(StdRng::seed_from_u64(seed));
    let mut client = Connection::client(&client, None, rng(1), now).expect("client");
    let mut server = Connection::server(&server, None, rng(2), now).expect("server");
    client
        .set_transport_properties(now, &properties)
        .expect("a sequenced client over any transport");
    server
        .set_transport_properties(now, &properties)
        .expect("server");
    let mut sides = [Side::new(client), Side::new(server)];
    let mut links: [VecDeque<Bytes>; 2] = [VecDeque::new(), VecDeque::new()];
    // The link only lost, duplicated or reordered frames, never altered or invented any.
    let mut faithful = true;

    for _ in 0..4096 {
        let Some(op) = input.byte() else { break };
        // Every operation takes one argument byte; only hostile ones read more.
        let arg = input.small();
        let which = usize::from(op & 1);
        let other = 1 - which;
        match (op >> 1) % 12 {
            0 => {
                while let Some(frame) = sides[which].conn.poll_transmit(now) {
                    links[which].push_back(frame.to_bytes());
                }
            }
            1 | 2 => {
                for _ in 0..=arg % 4 {
                    if let Some(bytes) = links[other].pop_front() {
                        sides[which].conn.handle_bytes(now, bytes);
                    }
                }
            }
            3 => {
                links[which].pop_front();
                faithful &= lossy;
            }
            4 => {
                if let Some(front) = links[which].front().cloned() {
                    links[which].push_back(front);
                }
                faithful &= lossy;
            }
            5 => {
                if links[which].len() >= 2 {
                    links[which].swap(0, 1);
                }
                faithful &= lossy;
            }
            6 => {
                let at = usize::from(arg);
                let flip = input.small() | 1;
                if let Some(front) = links[which].front_mut() {
                    let mut bytes = front.to_vec();
                    let at = at % bytes.len().max(1);
                    if let Some(byte) = bytes.get_mut(at) {
                        *byte ^= flip;
                    }
                    *front = Bytes::from(bytes);
                    faithful = false;
                }
            }
            7 => {
                // A raw frame: a header from the input (kind byte and flags kept within
                // reach of valid values), then a payload.
                let len = usize::from(arg % 48);
                let mut raw = input.bytes(liaison_wire::HEADER_LEN + len);
                raw[0] %= 0x34;
                raw[2] = 0;
                raw[3] = 0;
                let claimed = u32::from(arg % 48);
                raw[4..8].copy_from_slice(&claimed.to_le_bytes());
                sides[which].conn.handle_bytes(now, Bytes::from(raw));
                faithful = false;
            }
            8 => {
                now += Duration::from_millis(u64::from(arg) * 4);
                for side in &mut sides {
                    if side.conn.poll_timeout().is_some_and(|at| at <= now) {
                        side.conn.handle_timeout(now);
                    }
                }
            }
            9 | 10 => {
                let side = &mut sides[which];
                if side.conn.is_established() && side.conn.is_writable() {
                    let payload = Bytes::from(format!("{which}/{}", side.sent.len()));
                    if side
                        .conn
                        .send(Frame::data(1 + which as u64, payload.clone()))
                        .is_ok()
                    {
                        side.sent.push(payload);
                    }
                }
            }
            _ => match arg % 16 {
                0 => sides[which].conn.close("fuzz"),
                1 => sides[which].conn.abort(),
                _ => {}
            },
        }
        for side in &mut sides {
            side.drain_events();
        }
    }

    if let [Side {
        established: Some(a),
        ..
    }, Side {
        established: Some(b),
        ..
    }] = &sides
    {
        assert_eq!(a, b, "both sides agree on the session id");
    }
    if faithful && mode == SequencingMode::Ordered {
        for (reader, writer) in [(0, 1), (1, 0)] {
            let delivered = &sides[reader].delivered;
            let sent = &sides[writer].sent;
            assert!(
                delivered.len() <= sent.len() && sent[..delivered.len()] == delivered[..],
                "delivered {delivered:?}, sent {sent:?}"
            );
        }
    }
}
