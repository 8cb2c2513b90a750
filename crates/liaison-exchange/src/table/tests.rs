//! Tests of the exchange table: the rules of PROTOCOL.md §9 one by one, and a simulated pair
//! of tables driven by random operations with termination at a random point.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Wake;

use proptest::prelude::*;

use super::*;

/// A waker that counts how often it was woken.
#[derive(Default)]
struct Count(AtomicUsize);

impl Count {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn waker(count: &Arc<Count>) -> Waker {
    Waker::from(Arc::clone(count))
}

fn noop() -> Waker {
    Waker::from(Arc::new(Count::default()))
}

fn reason() -> TerminationReason {
    TerminationReason::Closed {
        origin: Origin::Remote,
        reason: "bye".into(),
    }
}

fn limits(window: u32, outgoing: u32, incoming: u32, negotiated: u32) -> TableLimits {
    TableLimits {
        window,
        outgoing,
        incoming,
        negotiated,
    }
}

fn begin(id: u64, target: u64, credit: u32, message: Option<&'static [u8]>, end: bool) -> Frame {
    Begin {
        target,
        credit,
        message: message.map(Bytes::from_static),
    }
    .frame(id, end)
}

fn recv(table: &mut ExchangeTable, id: u64) -> Poll<Result<Option<Bytes>, ExchangeError>> {
    table.poll_recv(id, &mut Context::from_waker(&noop()))
}

/// The message a `poll_recv` yielded; fails the test otherwise.
fn message(poll: Poll<Result<Option<Bytes>, ExchangeError>>) -> Bytes {
    match poll {
        Poll::Ready(Ok(Some(message))) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn send_ready(table: &mut ExchangeTable, id: u64) -> Poll<Result<(), ExchangeError>> {
    table.poll_send(id, &mut Context::from_waker(&noop()))
}

fn transmits(table: &mut ExchangeTable) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(frame) = table.poll_transmit() {
        table.on_transmitted(&frame);
        out.push(frame);
    }
    out
}

fn is_protocol(result: Result<(), ExchangeError>) -> bool {
    matches!(result, Err(ExchangeError::Protocol(_)))
}

#[test]
fn ids_have_the_parity_of_their_initiator_and_increase() {
    let mut client = ExchangeTable::new(Role::Client, TableLimits::new(8, 16, 16));
    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(8, 16, 16));
    let c: Vec<u64> = (0..3)
        .map(|_| client.open(1, false, false).unwrap())
        .collect();
    let s: Vec<u64> = (0..3)
        .map(|_| server.open(1, false, false).unwrap())
        .collect();
    assert_eq!(c, [1, 3, 5]);
    assert_eq!(s, [2, 4, 6]);
    // Abandoned ids are not reused.
    client.abandon(5);
    assert_eq!(client.open(1, false, false).unwrap(), 7);
}

#[test]
fn a_unary_call_is_one_frame_each_way() {
    let mut client = ExchangeTable::new(Role::Client, TableLimits::new(8, 16, 16));
    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(8, 16, 16));
    let id = client.open(42, true, true).unwrap();
    assert_eq!(client.state(id), Some(&ExchangeState::HalfClosedLocal));

    server
        .handle_frame(begin(id, 42, 8, Some(b"ping"), true))
        .unwrap();
    assert_eq!(
        server.poll_event(),
        Some(Event::Incoming { id, target: 42 })
    );
    server.attach(id);
    assert_eq!(server.state(id), Some(&ExchangeState::HalfClosedRemote));
    assert_eq!(message(recv(&mut server, id)), Bytes::from_static(b"ping"));
    assert!(matches!(recv(&mut server, id), Poll::Ready(Ok(None))));
    assert!(
        transmits(&mut server).is_empty(),
        "no credit for an ended peer"
    );
    assert!(matches!(send_ready(&mut server, id), Poll::Ready(Ok(()))));
    server.commit_send(id, true);
    assert_eq!(server.state(id), Some(&ExchangeState::Closed));
    assert_eq!(server.stats().incoming, 0);
    server.detach(id);
    assert_eq!(server.stats().tracked, 0);

    client
        .handle_frame(Frame::data(id, &b"pong"[..]).with_end())
        .unwrap();
    assert_eq!(client.state(id), Some(&ExchangeState::Closed));
    assert_eq!(client.take_released(), 1);
    assert_eq!(message(recv(&mut client, id)), Bytes::from_static(b"pong"));
    client.detach(id);
    assert!(
        transmits(&mut client).is_empty(),
        "a closed exchange sends no cancel"
    );
    assert_eq!(client.stats(), TableStats::default());
}

#[test]
fn begin_rules() {
    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(8, 16, 16));
    // The server's own parity, and zero.
    assert!(is_protocol(
        server.handle_frame(begin(2, 1, 1, None, false))
    ));
    assert!(is_protocol(
        server.handle_frame(begin(0, 1, 1, None, false))
    ));
    server.handle_frame(begin(5, 1, 1, None, false)).unwrap();
    // Reused, or below the last one.
    assert!(is_protocol(
        server.handle_frame(begin(5, 1, 1, None, false))
    ));
    assert!(is_protocol(
        server.handle_frame(begin(3, 1, 1, None, false))
    ));
    // Truncated payload.
    assert!(is_protocol(server.handle_frame(Frame::on_exchange(
        FrameKind::ExchangeBegin,
        7,
        &b"short"[..]
    ))));
}

#[test]
fn frames_for_unknown_ids_are_ignored_if_closed_and_refused_if_never_opened() {
    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(8, 16, 16));
    server.handle_frame(begin(3, 1, 1, None, true)).unwrap();
    server.attach(3);
    server.check_end(3).unwrap();
    server.commit_end(3);
    server.detach(3);
    assert_eq!(server.stats().tracked, 0);
    // Closed and forgotten: late frames are ignored.
    server.handle_frame(Frame::data(3, &b"late"[..])).unwrap();
    server.handle_frame(Frame::exchange_credit(3, 5)).unwrap();
    // Never opened, by either side.
    assert!(is_protocol(server.handle_frame(Frame::data(5, &b"x"[..]))));
    assert!(is_protocol(server.handle_frame(Frame::data(2, &b"x"[..]))));
    assert!(is_protocol(
        server.handle_frame(Frame::exchange_credit(0, 1))
    ));
    // A closed exchange of the server's own.
    let id = server.open(1, false, false).unwrap();
    server.cancel(id, CancelCode::Cancelled, "no");
    transmits(&mut server);
    server.detach(id);
    server.handle_frame(Frame::data(id, &b"late"[..])).unwrap();
}

#[test]
fn data_beyond_credit_or_after_end_is_a_protocol_error() {
    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(4, 16, 16));
    server.handle_frame(begin(1, 1, 4, None, false)).unwrap();
    server.attach(1);
    // One implicit message plus the window - 1 granted at once.
    for i in 0..4u8 {
        server.handle_frame(Frame::data(1, vec![i])).unwrap();
    }
    assert_eq!(server.buffered(1), 4);
    assert!(is_protocol(server.handle_frame(Frame::data(1, vec![9]))));

    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(4, 16, 16));
    server
        .handle_frame(begin(1, 1, 4, Some(b"only"), true))
        .unwrap();
    server.attach(1);
    assert!(is_protocol(server.handle_frame(Frame::data(1, vec![1]))));
    assert!(is_protocol(server.handle_frame(Outcome::Success.frame(1))));
}

#[test]
fn credit_is_granted_in_batches_of_half_the_window() {
    let mut client = ExchangeTable::new(Role::Client, TableLimits::new(8, 16, 16));
    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(8, 16, 16));
    let id = client.open(1, false, false).unwrap();
    server.handle_frame(begin(id, 1, 8, None, false)).unwrap();
    server.attach(id);
    // The responder grants the rest of its window at once.
    let grant = transmits(&mut server);
    assert_eq!(grant, [Frame::exchange_credit(id, 7)]);
    client.handle_frame(grant[0].clone()).unwrap();
    assert_eq!(client.send_credit(id), Some(8));
    for i in 0..8u8 {
        assert!(matches!(send_ready(&mut client, id), Poll::Ready(Ok(()))));
        client.commit_send(id, false);
        server.handle_frame(Frame::data(id, vec![i])).unwrap();
    }
    let count = Arc::new(Count::default());
    assert!(client
        .poll_send(id, &mut Context::from_waker(&waker(&count)))
        .is_pending());
    for _ in 0..3 {
        assert!(matches!(recv(&mut server, id), Poll::Ready(Ok(Some(_)))));
    }
    assert!(transmits(&mut server).is_empty());
    assert!(matches!(recv(&mut server, id), Poll::Ready(Ok(Some(_)))));
    assert!(server.take_transmit_signal());
    let grant = transmits(&mut server);
    assert_eq!(grant, [Frame::exchange_credit(id, 4)]);
    client.handle_frame(grant[0].clone()).unwrap();
    let mut woken = Vec::new();
    client.take_wakers(&mut woken);
    woken.into_iter().for_each(Waker::wake);
    assert_eq!(count.get(), 1);
    assert_eq!(client.send_credit(id), Some(4));
    // Credit that overflows is refused.
    assert!(is_protocol(
        client.handle_frame(Frame::exchange_credit(id, u32::MAX))
    ));
}

#[test]
fn exchanges_past_the_local_limit_are_refused_and_past_the_negotiated_one_are_errors() {
    let mut server = ExchangeTable::new(Role::Server, limits(8, 2, 2, 3));
    for id in [1, 3] {
        server.handle_frame(begin(id, 1, 1, None, false)).unwrap();
        assert!(matches!(server.poll_event(), Some(Event::Incoming { .. })));
        server.attach(id);
    }
    server.handle_frame(begin(5, 1, 1, None, false)).unwrap();
    assert_eq!(server.poll_event(), None);
    let frames: Vec<Frame> = std::iter::from_fn(|| server.poll_transmit()).collect();
    let refusal = frames
        .iter()
        .find(|f| f.kind == FrameKind::ExchangeCancel)
        .expect("a refusal");
    assert_eq!(refusal.exchange, 5);
    assert_eq!(
        Cancel::decode(&refusal.payload).unwrap().code,
        CancelCode::TooManyExchanges
    );
    // Until the refusal is handed to the session it counts: a fourth open exchange breaks
    // the negotiated limit of three.
    assert_eq!(server.stats().incoming, 3);
    assert!(is_protocol(
        server.handle_frame(begin(7, 1, 1, None, false))
    ));
    server.on_transmitted(refusal);
    assert_eq!(server.stats().incoming, 2);
    assert_eq!(server.stats().tracked, 2);
}

#[test]
fn the_outgoing_limit_holds_until_exchanges_are_final() {
    let mut client = ExchangeTable::new(Role::Client, TableLimits::new(8, 2, 16));
    let a = client.open(1, false, false).unwrap();
    let b = client.open(1, false, false).unwrap();
    assert!(matches!(
        client.open(1, false, false),
        Err(ExchangeError::TooManyExchanges { limit: 2 })
    ));
    client.abandon(b);
    assert_eq!(client.take_released(), 1);
    client.open(1, false, false).unwrap();
    // A cancel frees its slot only once it is handed to the session.
    client.cancel(a, CancelCode::Cancelled, "stop");
    assert!(client.open(1, false, false).is_err());
    let frame = client.poll_transmit().expect("the cancel");
    assert!(client.open(1, false, false).is_err());
    client.on_transmitted(&frame);
    assert_eq!(client.take_released(), 1);
    assert!(client.open(1, false, false).is_ok());
}

#[test]
fn a_cancel_crossing_the_peers_end_is_moot() {
    let mut client = ExchangeTable::new(Role::Client, TableLimits::new(4, 4, 4));
    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(4, 4, 4));
    let id = server.open(1, false, false).unwrap();
    client.handle_frame(begin(id, 1, 4, None, false)).unwrap();
    client.attach(id);
    // The client (responder) ends, then drops its handle: a cancel is queued.
    assert!(matches!(send_ready(&mut client, id), Poll::Ready(Ok(()))));
    client.commit_send(id, true);
    client.detach(id);
    assert_eq!(client.stats().incoming, 1);
    // The server got the client's END and ends too: closed, on its side.
    server
        .handle_frame(Frame::data(id, &b"x"[..]).with_end())
        .unwrap();
    server.commit_end(id);
    assert_eq!(server.stats().outgoing, 0);
    // Its END reaches the client before the cancel left: both ENDs crossed, the exchange is
    // closed on both sides and the cancel is not sent.
    client.handle_frame(Outcome::Success.frame(id)).unwrap();
    assert_eq!(client.stats().incoming, 0);
    assert_eq!(client.stats().tracked, 0);
    assert!(client.poll_transmit().is_none());
}

#[test]
fn cancel_wakes_everyone_and_fails_both_directions() {
    let mut client = ExchangeTable::new(Role::Client, TableLimits::new(1, 4, 4));
    let id = client.open(9, true, false).unwrap();
    let reader = Arc::new(Count::default());
    let writer = Arc::new(Count::default());
    let watcher = Arc::new(Count::default());
    assert!(client
        .poll_recv(id, &mut Context::from_waker(&waker(&reader)))
        .is_pending());
    assert!(client
        .poll_send(id, &mut Context::from_waker(&waker(&writer)))
        .is_pending());
    assert!(client
        .poll_cancelled(id, &mut Context::from_waker(&waker(&watcher)))
        .is_pending());
    client
        .handle_frame(
            Cancel {
                code: CancelCode::UnknownCapability,
                reason: "nothing at 9".into(),
            }
            .frame(id),
        )
        .unwrap();
    let mut woken = Vec::new();
    client.take_wakers(&mut woken);
    woken.into_iter().for_each(Waker::wake);
    assert_eq!((reader.get(), writer.get(), watcher.get()), (1, 1, 1));
    assert!(matches!(
        recv(&mut client, id),
        Poll::Ready(Err(ExchangeError::UnknownCapability { target: 9 }))
    ));
    assert!(matches!(
        send_ready(&mut client, id),
        Poll::Ready(Err(ExchangeError::UnknownCapability { target: 9 }))
    ));
    assert_eq!(client.take_released(), 1);
}

#[test]
fn remote_errors_and_dropped_handles() {
    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(4, 4, 4));
    server
        .handle_frame(begin(1, 1, 4, Some(b"a"), false))
        .unwrap();
    server.attach(1);
    server
        .handle_frame(Outcome::Failed("boom".into()).frame(1))
        .unwrap();
    assert!(matches!(recv(&mut server, 1), Poll::Ready(Ok(Some(_)))));
    assert!(matches!(
        recv(&mut server, 1),
        Poll::Ready(Err(ExchangeError::RemoteError(m))) if m == "boom"
    ));
    // Dropping the last handle of an open exchange cancels it.
    server.detach(1);
    let frames = transmits(&mut server);
    assert_eq!(
        frames.last().map(|f| f.kind),
        Some(FrameKind::ExchangeCancel)
    );
    assert_eq!(server.stats(), TableStats::default());
}

#[test]
fn an_exchange_dropped_with_unread_messages_leaves_none_to_the_next() {
    let mut server = ExchangeTable::new(Role::Server, TableLimits::new(4, 4, 4));
    // Closed both ways, its message unread.
    server
        .handle_frame(begin(1, 1, 4, Some(b"first"), true))
        .unwrap();
    server.attach(1);
    assert!(matches!(send_ready(&mut server, 1), Poll::Ready(Ok(()))));
    server.commit_send(1, true);
    assert_eq!(server.state(1), Some(&ExchangeState::Closed));
    assert_eq!(server.buffered(1), 1);
    server.detach(1);
    assert_eq!(server.stats(), TableStats::default());
    // The next exchange (which may reuse the emptied queue) starts with only its own.
    server
        .handle_frame(begin(3, 1, 4, Some(b"second"), true))
        .unwrap();
    server.attach(3);
    assert_eq!(server.buffered(3), 1);
    assert_eq!(message(recv(&mut server, 3)), Bytes::from_static(b"second"));
    assert!(matches!(recv(&mut server, 3), Poll::Ready(Ok(None))));
}

#[test]
fn a_peer_restart_aborts_the_exchanges_of_before_and_the_table_goes_on() {
    let mut client = ExchangeTable::new(Role::Client, TableLimits::new(4, 4, 4));
    let call = client.open(1, true, true).unwrap();
    client.attach(call);
    client.handle_frame(begin(2, 9, 4, None, false)).unwrap();
    assert!(matches!(
        client.poll_event(),
        Some(Event::Incoming { id: 2, .. })
    ));
    let count = Arc::new(Count::default());
    assert!(client
        .poll_recv(call, &mut Context::from_waker(&waker(&count)))
        .is_pending());

    client.peer_restarted(&TerminationReason::PeerRestarted);
    let mut woken = Vec::new();
    client.take_wakers(&mut woken);
    woken.into_iter().for_each(Waker::wake);
    assert_eq!(count.get(), 1, "the caller is woken");
    assert!(matches!(
        recv(&mut client, call),
        Poll::Ready(Err(ExchangeError::Aborted(
            TerminationReason::PeerRestarted
        )))
    ));
    assert_eq!(client.stats().incoming, 0);
    assert_eq!(client.stats().outgoing, 0);
    // The rebuilt peer numbers its exchanges from the start again; ours go on.
    client.handle_frame(begin(2, 9, 4, None, false)).unwrap();
    assert!(matches!(
        client.poll_event(),
        Some(Event::Incoming { id: 2, .. })
    ));
    assert!(client.open(1, false, false).unwrap() > call);
    assert!(client.termination_reason().is_none());
}

#[test]
fn termination_aborts_open_exchanges_and_revokes_new_ones() {
    let mut client = ExchangeTable::new(Role::Client, TableLimits::new(4, 4, 4));
    let open = client.open(1, false, false).unwrap();
    let closed = client.open(1, true, true).unwrap();
    client
        .handle_frame(Frame::data(closed, &b"reply"[..]).with_end())
        .unwrap();
    let count = Arc::new(Count::default());
    assert!(client
        .poll_recv(open, &mut Context::from_waker(&waker(&count)))
        .is_pending());
    client.terminate(&reason());
    let mut woken = Vec::new();
    client.take_wakers(&mut woken);
    woken.into_iter().for_each(Waker::wake);
    assert_eq!(count.get(), 1);
    assert!(matches!(
        recv(&mut client, open),
        Poll::Ready(Err(ExchangeError::Aborted(r))) if r == reason()
    ));
    assert_eq!(
        message(recv(&mut client, closed)),
        Bytes::from_static(b"reply")
    );
    assert!(matches!(
        client.open(1, false, false),
        Err(ExchangeError::Revoked(r)) if r == reason()
    ));
    assert!(client
        .poll_cancelled(closed, &mut Context::from_waker(&noop()))
        .is_ready());
    assert!(client.poll_transmit().is_none());
}

// -------------------------------------------------------------------------------------
// A simulated pair under random operations
// -------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Begin {
        side: usize,
        message: bool,
        end: bool,
        target: u8,
        /// The `ExchangeBegin` never reaches the session.
        abandon: bool,
    },
    Send {
        h: prop::sample::Index,
        end: bool,
    },
    End {
        h: prop::sample::Index,
        fail: bool,
    },
    Recv {
        h: prop::sample::Index,
    },
    Watch {
        h: prop::sample::Index,
    },
    Cancel {
        h: prop::sample::Index,
    },
    Drop {
        h: prop::sample::Index,
    },
    Deliver {
        side: usize,
        n: u8,
    },
    Flush {
        side: usize,
    },
}

fn any_op() -> impl Strategy<Value = Op> {
    let side = 0..2usize;
    let h = any::<prop::sample::Index>;
    prop_oneof![
        3 => (side.clone(), any::<bool>(), any::<bool>(), 0..8u8, prop::bool::weighted(0.1))
            .prop_map(|(side, message, end, target, abandon)| Op::Begin {
                side,
                message,
                end,
                target,
                abandon,
            }),
        6 => (h(), prop::bool::weighted(0.2)).prop_map(|(h, end)| Op::Send { h, end }),
        1 => (h(), any::<bool>()).prop_map(|(h, fail)| Op::End { h, fail }),
        5 => h().prop_map(|h| Op::Recv { h }),
        1 => h().prop_map(|h| Op::Watch { h }),
        1 => h().prop_map(|h| Op::Cancel { h }),
        1 => h().prop_map(|h| Op::Drop { h }),
        6 => (side.clone(), 1..8u8).prop_map(|(side, n)| Op::Deliver { side, n }),
        3 => side.prop_map(|side| Op::Flush { side }),
    ]
}

/// A handle of the application on one exchange of one side.
struct Handle {
    side: usize,
    id: u64,
    alive: bool,
    reader: Arc<Count>,
    writer: Arc<Count>,
    watcher: Arc<Count>,
    /// Counts when a poll last returned `Pending`, per waker.
    waiting: [Option<usize>; 3],
}

/// A frame in flight and, for an `ExchangeBegin`, the sender's open outgoing exchanges when
/// it sent it.
struct InFlight {
    frame: Frame,
    open_at_send: u32,
}

struct Pair {
    tables: [ExchangeTable; 2],
    wires: [VecDeque<InFlight>; 2],
    handles: Vec<Handle>,
    sent: HashMap<(usize, u64), Vec<Bytes>>,
    received: HashMap<(usize, u64), Vec<Bytes>>,
    next_message: u64,
}

const WINDOW: u32 = 3;

impl Pair {
    fn new() -> Self {
        // The client may open 4 exchanges at once, the server accepts 2 and refuses the rest;
        // both know the negotiated limit of 4.
        Self {
            tables: [
                ExchangeTable::new(Role::Client, limits(WINDOW, 4, 4, 4)),
                ExchangeTable::new(Role::Server, limits(WINDOW, 4, 2, 4)),
            ],
            wires: [VecDeque::new(), VecDeque::new()],
            handles: Vec::new(),
            sent: HashMap::new(),
            received: HashMap::new(),
            next_message: 0,
        }
    }

    fn handle(&mut self, side: usize, id: u64) {
        self.handles.push(Handle {
            side,
            id,
            alive: true,
            reader: Arc::default(),
            writer: Arc::default(),
            watcher: Arc::default(),
            waiting: [None; 3],
        });
    }

    fn pick(&self, index: &prop::sample::Index) -> Option<usize> {
        let alive: Vec<usize> = (0..self.handles.len())
            .filter(|&i| self.handles[i].alive)
            .collect();
        (!alive.is_empty()).then(|| alive[index.index(alive.len())])
    }

    fn message(&mut self, side: usize, id: u64) -> Bytes {
        self.next_message += 1;
        let message = Bytes::from(format!("{side}/{id}/{}", self.next_message));
        self.sent
            .entry((side, id))
            .or_default()
            .push(message.clone());
        message
    }

    fn push(&mut self, side: usize, frame: Frame) {
        let open_at_send = self.tables[side].stats().outgoing;
        self.wires[side].push_back(InFlight {
            frame,
            open_at_send,
        });
    }

    fn wake(&mut self) {
        let mut woken = Vec::new();
        for table in &mut self.tables {
            table.take_wakers(&mut woken);
        }
        woken.into_iter().for_each(Waker::wake);
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Begin {
                side,
                message,
                end,
                target,
                abandon,
            } => {
                let side = *side;
                let Ok(id) = self.tables[side].open(u64::from(*target), *message, *end) else {
                    return Ok(());
                };
                if *abandon {
                    self.tables[side].abandon(id);
                    return self.check_invariants();
                }
                let first = message.then(|| self.message(side, id));
                let frame = Begin {
                    target: u64::from(*target),
                    credit: WINDOW,
                    message: first,
                }
                .frame(id, *end);
                self.push(side, frame);
                self.handle(side, id);
            }
            Op::Send { h, end } => {
                let Some(i) = self.pick(h) else { return Ok(()) };
                let (side, id) = (self.handles[i].side, self.handles[i].id);
                let w = waker(&self.handles[i].writer);
                match self.tables[side].poll_send(id, &mut Context::from_waker(&w)) {
                    Poll::Ready(Ok(())) => {
                        let message = self.message(side, id);
                        let frame = Frame::data(id, message);
                        self.push(side, if *end { frame.with_end() } else { frame });
                        self.tables[side].commit_send(id, *end);
                    }
                    Poll::Ready(Err(_)) => {}
                    Poll::Pending => {
                        self.handles[i].waiting[1] = Some(self.handles[i].writer.get());
                    }
                }
            }
            Op::End { h, fail } => {
                let Some(i) = self.pick(h) else { return Ok(()) };
                let (side, id) = (self.handles[i].side, self.handles[i].id);
                if self.tables[side].check_end(id).is_ok() {
                    let outcome = if *fail {
                        Outcome::Failed("failed".into())
                    } else {
                        Outcome::Success
                    };
                    self.push(side, outcome.frame(id));
                    self.tables[side].commit_end(id);
                }
            }
            Op::Recv { h } => {
                let Some(i) = self.pick(h) else { return Ok(()) };
                let (side, id) = (self.handles[i].side, self.handles[i].id);
                let w = waker(&self.handles[i].reader);
                match self.tables[side].poll_recv(id, &mut Context::from_waker(&w)) {
                    Poll::Ready(Ok(Some(message))) => {
                        self.received.entry((side, id)).or_default().push(message);
                    }
                    Poll::Ready(_) => {}
                    Poll::Pending => {
                        self.handles[i].waiting[0] = Some(self.handles[i].reader.get());
                    }
                }
            }
            Op::Watch { h } => {
                let Some(i) = self.pick(h) else { return Ok(()) };
                let (side, id) = (self.handles[i].side, self.handles[i].id);
                let w = waker(&self.handles[i].watcher);
                if self.tables[side]
                    .poll_cancelled(id, &mut Context::from_waker(&w))
                    .is_pending()
                {
                    self.handles[i].waiting[2] = Some(self.handles[i].watcher.get());
                }
            }
            Op::Cancel { h } => {
                let Some(i) = self.pick(h) else { return Ok(()) };
                let (side, id) = (self.handles[i].side, self.handles[i].id);
                self.tables[side].cancel(id, CancelCode::Cancelled, "test");
            }
            Op::Drop { h } => {
                let Some(i) = self.pick(h) else { return Ok(()) };
                self.handles[i].alive = false;
                let (side, id) = (self.handles[i].side, self.handles[i].id);
                self.tables[side].detach(id);
            }
            Op::Deliver { side, n } => {
                for _ in 0..*n {
                    self.deliver_one(*side)?;
                }
            }
            Op::Flush { side } => self.flush(*side),
        }
        self.wake();
        self.check_invariants()
    }

    fn flush(&mut self, side: usize) {
        while let Some(frame) = self.tables[side].poll_transmit() {
            self.tables[side].on_transmitted(&frame);
            self.push(side, frame);
        }
    }

    fn deliver_one(&mut self, side: usize) -> Result<(), TestCaseError> {
        let Some(InFlight {
            frame,
            open_at_send,
        }) = self.wires[side].pop_front()
        else {
            return Ok(());
        };
        let to = 1 - side;
        if frame.kind == FrameKind::ExchangeBegin {
            // PROTOCOL.md §9.7: whatever the receiver counts as open was open at the
            // sender when it sent this Begin, so the negotiated limit is never exceeded.
            prop_assert!(self.tables[to].stats().incoming < open_at_send);
        }
        let result = self.tables[to].handle_frame(frame);
        prop_assert!(
            result.is_ok(),
            "protocol error between two tables: {result:?}"
        );
        while let Some(Event::Incoming { id, target }) = self.tables[to].poll_event() {
            if target % 4 == 0 {
                self.tables[to].cancel(id, CancelCode::UnknownCapability, "none");
            } else {
                self.tables[to].attach(id);
                self.handle(to, id);
            }
        }
        Ok(())
    }

    fn check_invariants(&self) -> Result<(), TestCaseError> {
        for (side, table) in self.tables.iter().enumerate() {
            prop_assert!(table.stats().outgoing <= table.limits().outgoing);
            for handle in self.handles.iter().filter(|h| h.side == side) {
                prop_assert!(table.buffered(handle.id) <= WINDOW as usize);
            }
        }
        // Messages land on their own exchange, in order: what a side received on an
        // exchange is a prefix of what the other side sent on it.
        for ((side, id), got) in &self.received {
            let sent = self
                .sent
                .get(&(1 - side, *id))
                .map_or(&[][..], Vec::as_slice);
            prop_assert!(
                got.len() <= sent.len() && got[..] == sent[..got.len()],
                "side {} exchange {}: received {:?}, sent {:?}",
                side,
                id,
                got,
                sent
            );
        }
        Ok(())
    }

    fn quiesce(&mut self) -> Result<(), TestCaseError> {
        loop {
            self.flush(0);
            self.flush(1);
            if self.wires.iter().all(VecDeque::is_empty) {
                return Ok(());
            }
            for side in 0..2 {
                while !self.wires[side].is_empty() {
                    self.deliver_one(side)?;
                }
            }
            self.wake();
        }
    }

    fn terminate_and_check(&mut self) -> Result<(), TestCaseError> {
        let before: Vec<Option<ExchangeState>> = self
            .handles
            .iter()
            .map(|h| self.tables[h.side].state(h.id).cloned())
            .collect();
        let reason = reason();
        for table in &mut self.tables {
            table.terminate(&reason);
        }
        self.wake();
        for (handle, before) in self.handles.iter().zip(before) {
            if !handle.alive {
                continue;
            }
            // Every task that was waiting was woken.
            for (count, waiting) in [&handle.reader, &handle.writer, &handle.watcher]
                .into_iter()
                .zip(handle.waiting)
            {
                if let Some(at) = waiting {
                    prop_assert!(
                        count.get() > at,
                        "a waiter of {} was never woken",
                        handle.id
                    );
                }
            }
            let table = &mut self.tables[handle.side];
            let noop = noop();
            let cx = &mut Context::from_waker(&noop);
            let Some(before) = before else {
                return Err(TestCaseError::fail("a live handle lost its exchange"));
            };
            let recv = table.poll_recv(handle.id, cx);
            if let Poll::Ready(Ok(Some(message))) = &recv {
                self.received
                    .entry((handle.side, handle.id))
                    .or_default()
                    .push(message.clone());
            }
            let send = table.poll_send(handle.id, cx);
            prop_assert!(table.poll_cancelled(handle.id, cx).is_ready());
            prop_assert!(recv.is_ready() && send.is_ready());
            if before.is_final() {
                // Closed and cancelled exchanges keep their outcome.
                prop_assert!(!matches!(recv, Poll::Ready(Err(ExchangeError::Aborted(_)))));
            } else {
                prop_assert!(
                    matches!(&recv, Poll::Ready(Err(ExchangeError::Aborted(r))) if *r == reason),
                    "{recv:?}"
                );
                prop_assert!(
                    matches!(&send, Poll::Ready(Err(ExchangeError::Aborted(r))) if *r == reason),
                    "{send:?}"
                );
            }
        }
        for table in &mut self.tables {
            prop_assert!(matches!(
                table.open(1, false, false),
                Err(ExchangeError::Revoked(_))
            ));
            prop_assert!(table.poll_transmit().is_none());
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Two tables under random operations: no protocol error ever, bounded buffers,
    /// messages on their own exchange, open counts that agree once quiet, and at a random
    /// point termination, after which every waiter is woken and every pending value
    /// resolves with the right variant.
    #[test]
    fn random_workloads_with_termination(
        ops in proptest::collection::vec(any_op(), 0..120),
        stop in any::<prop::sample::Index>(),
        quiesce_first in any::<bool>(),
    ) {
        let mut pair = Pair::new();
        let stop = stop.index(ops.len() + 1);
        for op in &ops[..stop] {
            pair.apply(op)?;
        }
        if quiesce_first {
            pair.quiesce()?;
            // With nothing in flight both sides agree on what is open.
            prop_assert_eq!(pair.tables[0].stats().outgoing, pair.tables[1].stats().incoming);
            prop_assert_eq!(pair.tables[1].stats().outgoing, pair.tables[0].stats().incoming);
        }
        pair.terminate_and_check()?;
        // Operations after termination change nothing and never fail the rules.
        for op in &ops[stop..] {
            pair.apply(op)?;
        }
    }
}
