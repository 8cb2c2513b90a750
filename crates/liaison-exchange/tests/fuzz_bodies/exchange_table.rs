//! Body of the `exchange_table` fuzz target, shared with the `fuzz_mirrors` proptest: two
//! sans-IO exchange tables (client and server) joined by an in-order link, driven operation
//! by operation by the input (open, send, end, receive, cancel, drop a handle, deliver,
//! transmit, terminate), with hostile frames mixed in.

use std::collections::HashMap;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use liaison_exchange::payload::{Begin, Outcome};
use liaison_exchange::{CancelCode, Event, ExchangeTable, TableLimits};
use liaison_session::{Origin, Role, TerminationReason};
use liaison_wire::{Frame, FrameKind};

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
}

const WINDOW: u32 = 4;
const MAX_EXCHANGES: u32 = 4;
const TARGET: u64 = 1;

/// One end of the pair and what the checks need to know about it.
struct Side {
    table: ExchangeTable,
    /// Exchanges this side has a handle on.
    handles: Vec<u64>,
    sent: HashMap<u64, Vec<Bytes>>,
    received: HashMap<u64, Vec<Bytes>>,
    /// A protocol error ended this side's session: it takes no more frames.
    dead: bool,
}

impl Side {
    fn new(role: Role) -> Self {
        Self {
            table: ExchangeTable::new(role, TableLimits::new(WINDOW, MAX_EXCHANGES, MAX_EXCHANGES)),
            handles: Vec::new(),
            sent: HashMap::new(),
            received: HashMap::new(),
            dead: false,
        }
    }

    fn pick(&self, arg: u8) -> Option<u64> {
        let index = usize::from(arg & 0x7f);
        (!self.handles.is_empty()).then(|| self.handles[index % self.handles.len()])
    }

    fn check_bounds(&self) {
        let stats = self.table.stats();
        assert!(stats.incoming <= MAX_EXCHANGES, "{stats:?}");
        assert!(stats.outgoing <= MAX_EXCHANGES, "{stats:?}");
        for &id in &self.handles {
            assert!(
                self.table.buffered(id) <= usize::try_from(WINDOW).unwrap_or(usize::MAX),
                "exchange {id}: {stats:?}"
            );
        }
    }
}

fn hostile(input: &mut Input<'_>) -> Frame {
    let kind = match input.small() % 5 {
        0 => FrameKind::ExchangeBegin,
        1 => FrameKind::Data,
        2 => FrameKind::ExchangeEnd,
        3 => FrameKind::ExchangeCancel,
        _ => FrameKind::ExchangeCredit,
    };
    let id = u64::from(input.small() % 12);
    let payload: Vec<u8> = (0..input.small() % 20).map(|_| input.small()).collect();
    let frame = Frame::on_exchange(kind, id, payload);
    if input.small() % 2 == 0 && kind.allowed_flags().contains(liaison_wire::Flags::END) {
        frame.with_end()
    } else {
        frame
    }
}

/// Runs the operations `data` encodes. Unless a hostile frame was fed, no side breaks the
/// protocol, and every exchange delivers to its reader a prefix of exactly the messages the
/// other side sent on it, in order (no loss, no duplicate, no interleaving); in any case
/// nothing panics and the counters stay within the limits.
pub(crate) fn run(data: &[u8]) {
    let mut input = Input(data);
    let mut sides = [Side::new(Role::Client), Side::new(Role::Server)];
    let mut links: [Vec<Frame>; 2] = [Vec::new(), Vec::new()];
    let mut tainted = false;
    let mut cx = Context::from_waker(Waker::noop());

    for _ in 0..2048 {
        let Some(op) = input.byte() else { break };
        // Every operation takes one argument byte; only hostile ones read more.
        let arg = input.small();
        let which = usize::from(op & 1);
        let other = 1 - which;
        match (op >> 1) % 11 {
            0 => {
                let side = &mut sides[which];
                if let Ok(id) = side.table.open(TARGET, false, false) {
                    let begin = Begin {
                        target: TARGET,
                        credit: WINDOW,
                        message: None,
                    };
                    links[which].push(begin.frame(id, false));
                    side.handles.push(id);
                }
            }
            1 => {
                let side = &mut sides[which];
                let end = arg & 0x80 != 0 && arg & 0x40 != 0;
                if let Some(id) = side.pick(arg) {
                    if let Poll::Ready(Ok(())) = side.table.poll_send(id, &mut cx) {
                        let sent = side.sent.entry(id).or_default();
                        let payload = Bytes::from(format!("{id}/{}", sent.len()));
                        sent.push(payload.clone());
                        side.table.commit_send(id, end);
                        let frame = Frame::data(id, payload);
                        links[which].push(if end { frame.with_end() } else { frame });
                    }
                }
            }
            2 => {
                let side = &mut sides[which];
                if let Some(id) = side.pick(arg) {
                    if side.table.check_end(id).is_ok() {
                        side.table.commit_end(id);
                        links[which].push(Outcome::Success.frame(id));
                    }
                }
            }
            3 => {
                let side = &mut sides[which];
                if let Some(id) = side.pick(arg) {
                    while let Poll::Ready(Ok(Some(message))) = side.table.poll_recv(id, &mut cx) {
                        side.received.entry(id).or_default().push(message);
                    }
                }
            }
            4 => {
                let side = &mut sides[which];
                if let Some(id) = side.pick(arg) {
                    side.table.cancel(id, CancelCode::Cancelled, "fuzz");
                }
            }
            5 => {
                let side = &mut sides[which];
                if let Some(id) = side.pick(arg) {
                    side.handles.retain(|&h| h != id);
                    side.table.detach(id);
                }
            }
            6 => {
                let count = usize::from(arg % 8) + 1;
                let frames: Vec<Frame> = {
                    let link = &mut links[other];
                    let n = count.min(link.len());
                    link.drain(..n).collect()
                };
                for frame in frames {
                    feed(&mut sides[which], frame, tainted, arg);
                }
            }
            7 => {
                let side = &mut sides[which];
                while let Some(frame) = side.table.poll_transmit() {
                    side.table.on_transmitted(&frame);
                    links[which].push(frame);
                }
            }
            8 => {
                tainted = true;
                let frame = hostile(&mut input);
                feed(&mut sides[which], frame, tainted, arg);
            }
            9 => {
                if arg % 8 == 0 {
                    sides[which].table.terminate(&TerminationReason::Aborted {
                        origin: Origin::Local,
                    });
                }
            }
            _ => {
                let mut wakers = Vec::new();
                sides[which].table.take_wakers(&mut wakers);
                let _ = sides[which].table.take_released();
                let _ = sides[which].table.take_transmit_signal();
            }
        }
        for side in &sides {
            side.check_bounds();
        }
    }

    if !tainted {
        for (reader, writer) in [(0, 1), (1, 0)] {
            for (id, received) in &sides[reader].received {
                let sent = sides[writer].sent.get(id).map_or(&[][..], Vec::as_slice);
                assert!(
                    received.len() <= sent.len() && sent[..received.len()] == received[..],
                    "exchange {id}: received {received:?}, sent {sent:?}"
                );
            }
        }
    }
}

/// Feeds one frame to `side` as its driver would: a protocol error ends its session; an
/// incoming exchange is attached, or refused as the input says.
fn feed(side: &mut Side, frame: Frame, tainted: bool, arg: u8) {
    if side.dead {
        return;
    }
    if let Err(error) = side.table.handle_frame(frame) {
        assert!(tainted, "a violation between well-behaved tables: {error}");
        side.dead = true;
        side.table.terminate(&TerminationReason::ProtocolViolation {
            origin: Origin::Local,
            detail: error.to_string(),
        });
        return;
    }
    while let Some(event) = side.table.poll_event() {
        if let Event::Incoming { id, .. } = event {
            if arg & 0x80 != 0 && arg % 8 == 0 {
                side.table.cancel(id, CancelCode::Refused, "not now");
            } else {
                side.table.attach(id);
                side.handles.push(id);
            }
        }
    }
}
