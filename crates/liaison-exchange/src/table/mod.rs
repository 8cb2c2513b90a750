//! The exchange table: the sans-IO state machine of every exchange of one session
//! (PROTOCOL.md §9). It owns no socket, spawns no task and reads no clock.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use liaison_session::{Origin, Role, TerminationReason};
use liaison_wire::{Frame, FrameKind};

use crate::payload::{Begin, Cancel, Outcome};
use crate::{CancelCode, ExchangeError, ExchangeState};

/// The limits an [`ExchangeTable`] enforces, all counted in exchanges or messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TableLimits {
    /// Messages each side lets its peer send on one exchange before more credit
    /// (PROTOCOL.md §9.5). At least 1.
    pub window: u32,
    /// Exchanges this side opens at once; [`open`](ExchangeTable::open) fails past it.
    pub outgoing: u32,
    /// Exchanges the peer may have open at once before this side refuses new ones with
    /// `ExchangeCancel` ([`CancelCode::TooManyExchanges`]).
    pub incoming: u32,
    /// The negotiated `max_exchanges` both sides know: a peer with more exchanges open at
    /// once (refused ones included) breaks the protocol.
    pub negotiated: u32,
}

impl TableLimits {
    /// Limits from a window and the negotiated `max_exchanges`, with local limits of at most
    /// `local` exchanges each way.
    pub fn new(window: u32, local: u32, negotiated: u32) -> Self {
        let negotiated = negotiated.max(1);
        let local = local.clamp(1, negotiated);
        Self {
            window: window.max(1),
            outgoing: local,
            incoming: local,
            negotiated,
        }
    }
}

/// What the table tells its driver, besides frames to send and wakers to wake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer opened exchange `id` targeting capability `target`. The driver gives it a
    /// handle ([`attach`](ExchangeTable::attach)) or refuses it
    /// ([`cancel`](ExchangeTable::cancel)), before feeding the next frame.
    Incoming {
        /// The exchange.
        id: u64,
        /// The capability it targets.
        target: u64,
    },
}

/// Counters of an [`ExchangeTable`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TableStats {
    /// Exchanges this side opened that are not final yet.
    pub outgoing: u32,
    /// Exchanges the peer opened that are not final yet (refused ones until their cancel
    /// was handed to the session).
    pub incoming: u32,
    /// Exchanges the table tracks: open ones and final ones that still have handles.
    pub tracked: usize,
    /// Messages received and not yet taken by a reader, over every exchange.
    pub buffered_messages: usize,
    /// Bytes of those messages.
    pub buffered_bytes: usize,
}

/// Every exchange of one session: ids, states, credit, receive queues and the rules of
/// PROTOCOL.md §9.
///
/// Inputs are frames from the peer ([`handle_frame`](Self::handle_frame)), the termination
/// of the session ([`terminate`](Self::terminate)) and user commands: open an exchange
/// ([`open`](Self::open), or [`abandon`](Self::abandon) if its `ExchangeBegin` never
/// reached the session), send ([`poll_send`](Self::poll_send) for credit, then
/// [`commit_send`](Self::commit_send)), end ([`check_end`](Self::check_end),
/// [`commit_end`](Self::commit_end)), receive ([`poll_recv`](Self::poll_recv)), cancel
/// ([`cancel`](Self::cancel)), and handle counting ([`attach`](Self::attach),
/// [`detach`](Self::detach)). State changes of `Data` and `ExchangeEnd` are committed only
/// after the frame that makes them left, and an open is undone if its `ExchangeBegin` never
/// left, so an operation abandoned halfway never leaves the two sides disagreeing.
///
/// Outputs, which a driver collects after every input, in this order:
///
/// 1. [`poll_event`](Self::poll_event): exchanges the peer opened, to route;
/// 2. [`poll_transmit`](Self::poll_transmit): frames the table itself sends (credit,
///    cancels, refusals), each reported back with [`on_transmitted`](Self::on_transmitted)
///    once the session took it; [`take_transmit_signal`](Self::take_transmit_signal) says
///    whether new ones were queued;
/// 3. [`take_wakers`](Self::take_wakers): tasks whose exchange became readable, writable,
///    cancelled or aborted;
/// 4. [`take_released`](Self::take_released): how many exchanges this side opened became
///    final (room under the outgoing limit).
///
/// Ids: the client allocates odd ids, the server even ones, each side in increasing order
/// and never twice; `ExchangeBegin`s must therefore arrive in increasing order.
pub struct ExchangeTable {
    role: Role,
    limits: TableLimits,
    /// The next id this side allocates.
    next_local: u64,
    /// The highest id the peer opened (0: none yet).
    last_peer: u64,
    entries: HashMap<u64, Entry, BuildHasherDefault<IdHasher>>,
    /// Exchanges with a credit grant or a cancel to send, each at most once.
    transmits: VecDeque<u64>,
    events: VecDeque<Event>,
    wakers: Vec<Waker>,
    terminated: Option<TerminationReason>,
    incoming_open: u32,
    outgoing_open: u32,
    released: u32,
    buffered_messages: usize,
    buffered_bytes: usize,
    transmit_signal: bool,
    /// Emptied message queues of removed exchanges, for new ones: most exchanges carry a
    /// message or two, and reusing a queue saves allocating and freeing one each time.
    spare_queues: Vec<VecDeque<Bytes>>,
}

/// Most emptied queues kept for reuse.
const SPARE_QUEUES: usize = 256;

/// Queues grown past this many messages are freed rather than kept.
const SPARE_QUEUE_CAPACITY: usize = 16;

/// One exchange.
struct Entry {
    state: ExchangeState,
    /// This side opened it.
    local: bool,
    target: u64,
    /// Messages this side may still send.
    send_credit: u32,
    /// Messages the peer may still send.
    recv_allowance: u32,
    /// Messages taken by the reader since the last grant.
    recv_consumed: u32,
    /// Credit granted but not yet sent in an `ExchangeCredit`.
    grant_pending: u32,
    /// This side cancelled and the `ExchangeCancel` was not yet handed to the session.
    cancel_unsent: bool,
    /// This side ended its direction (before any cancel).
    local_ended: bool,
    /// The id is in the transmit queue.
    queued: bool,
    queue: VecDeque<Bytes>,
    /// The peer ended with an application error.
    remote_error: Option<String>,
    /// Handles of the application on this exchange.
    handles: u32,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// Tasks waiting for a cancel or an abort.
    watchers: Vec<Waker>,
}

impl Entry {
    fn new(local: bool, target: u64) -> Self {
        Self {
            state: ExchangeState::Open,
            local,
            target,
            send_credit: 0,
            recv_allowance: 0,
            recv_consumed: 0,
            grant_pending: 0,
            cancel_unsent: false,
            local_ended: false,
            queued: false,
            queue: VecDeque::new(),
            remote_error: None,
            handles: 0,
            reader: None,
            writer: None,
            watchers: Vec::new(),
        }
    }

    fn wake_all(&mut self, wakers: &mut Vec<Waker>) {
        wakers.extend(self.reader.take());
        wakers.extend(self.writer.take());
        wakers.append(&mut self.watchers);
    }
}

fn protocol(detail: String) -> ExchangeError {
    ExchangeError::Protocol(detail)
}

/// Messages a reader takes before its side grants them back as credit.
fn grant_threshold(window: u32) -> u32 {
    (window / 2).max(1)
}

impl ExchangeTable {
    /// An empty table for the `role` end of a session.
    pub fn new(role: Role, limits: TableLimits) -> Self {
        let negotiated = limits.negotiated.max(1);
        let limits = TableLimits {
            window: limits.window.max(1),
            outgoing: limits.outgoing.clamp(1, negotiated),
            incoming: limits.incoming.clamp(1, negotiated),
            negotiated,
        };
        Self {
            role,
            limits,
            next_local: match role {
                Role::Client => 1,
                Role::Server => 2,
            },
            last_peer: 0,
            entries: HashMap::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            wakers: Vec::new(),
            terminated: None,
            incoming_open: 0,
            outgoing_open: 0,
            released: 0,
            buffered_messages: 0,
            buffered_bytes: 0,
            transmit_signal: false,
            spare_queues: Vec::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> TableLimits {
        self.limits
    }

    /// Which end of the session this table is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether `id` is of the parity this side allocates (PROTOCOL.md §9.1).
    pub fn is_local_id(&self, id: u64) -> bool {
        let odd = id % 2 == 1;
        match self.role {
            Role::Client => odd,
            Role::Server => !odd,
        }
    }

    /// The state of exchange `id`, while the table tracks it.
    pub fn state(&self, id: u64) -> Option<&ExchangeState> {
        self.entries.get(&id).map(|e| &e.state)
    }

    /// The capability exchange `id` targets, while the table tracks it.
    pub fn target(&self, id: u64) -> Option<u64> {
        self.entries.get(&id).map(|e| e.target)
    }

    /// Messages exchange `id` may still send before it needs more credit.
    pub fn send_credit(&self, id: u64) -> Option<u32> {
        self.entries.get(&id).map(|e| e.send_credit)
    }

    /// Messages received on exchange `id` and not yet taken.
    pub fn buffered(&self, id: u64) -> usize {
        self.entries.get(&id).map_or(0, |e| e.queue.len())
    }

    /// The counters.
    pub fn stats(&self) -> TableStats {
        TableStats {
            outgoing: self.outgoing_open,
            incoming: self.incoming_open,
            tracked: self.entries.len(),
            buffered_messages: self.buffered_messages,
            buffered_bytes: self.buffered_bytes,
        }
    }

    /// Why the session ended, once [`terminate`](Self::terminate) was called.
    pub fn termination_reason(&self) -> Option<&TerminationReason> {
        self.terminated.as_ref()
    }

    // ---------------------------------------------------------------------------------
    // Frames from the peer
    // ---------------------------------------------------------------------------------

    /// Feeds a frame the session received. Kinds other than the exchange kinds are
    /// ignored (they belong to other layers).
    ///
    /// Fails with [`ExchangeError::Protocol`] when the frame breaks a rule of PROTOCOL.md §9;
    /// the driver then ends the session and feeds nothing more.
    pub fn handle_frame(&mut self, frame: Frame) -> Result<(), ExchangeError> {
        if self.terminated.is_some() {
            return Ok(());
        }
        match frame.kind {
            FrameKind::ExchangeBegin => self.on_begin(&frame),
            FrameKind::Data => self.on_data(frame),
            FrameKind::ExchangeEnd => self.on_end(&frame),
            FrameKind::ExchangeCancel => self.on_cancel(&frame),
            FrameKind::ExchangeCredit => self.on_credit(&frame),
            _ => Ok(()),
        }
    }

    /// Whether a frame for `id` that is not `ExchangeBegin` concerns a tracked exchange
    /// (`true`), one that was closed and forgotten (`false`: ignore the frame), or one that
    /// was never opened (a protocol error) (PROTOCOL.md §9.6).
    fn known(&self, kind: FrameKind, id: u64) -> Result<bool, ExchangeError> {
        if self.entries.contains_key(&id) {
            return Ok(true);
        }
        let opened = id != 0
            && if self.is_local_id(id) {
                id < self.next_local
            } else {
                id <= self.last_peer
            };
        if opened {
            Ok(false)
        } else {
            Err(protocol(format!(
                "{kind} for exchange {id}, which was never opened"
            )))
        }
    }

    /// PROTOCOL.md §9.1.
    fn on_begin(&mut self, frame: &Frame) -> Result<(), ExchangeError> {
        let id = frame.exchange;
        if id == 0 || self.is_local_id(id) {
            return Err(protocol(format!(
                "ExchangeBegin {id} has the parity of the receiver's ids"
            )));
        }
        if id <= self.last_peer {
            return Err(protocol(format!(
                "ExchangeBegin {id} after {}: ids must increase and are never reused",
                self.last_peer
            )));
        }
        let begin = Begin::decode(&frame.payload)
            .map_err(|e| protocol(format!("ExchangeBegin {id}: {e}")))?;
        // §9.7: a peer never has more exchanges open than the negotiated limit. Refused
        // exchanges count until their cancel is sent, so a peer that floods refused
        // exchanges without reading is caught here too.
        if self.incoming_open >= self.limits.negotiated {
            return Err(protocol(format!(
                "ExchangeBegin {id} exceeds the negotiated limit of {} open exchanges",
                self.limits.negotiated
            )));
        }
        self.last_peer = id;
        self.incoming_open += 1;
        let mut entry = self.new_entry(false, begin.target);
        entry.send_credit = begin.credit;
        if self.incoming_open > self.limits.incoming {
            entry.state = ExchangeState::Cancelled {
                by: Origin::Local,
                code: CancelCode::TooManyExchanges,
                reason: format!("more than {} open exchanges", self.limits.incoming),
            };
            entry.cancel_unsent = true;
            self.entries.insert(id, entry);
            self.schedule(id);
            tracing::debug!(id, "exchange refused: too many open exchanges");
            return Ok(());
        }
        // The initiator's first message uses the one message of credit every exchange
        // starts with (§9.5).
        entry.recv_allowance = u32::from(begin.message.is_none());
        if let Some(message) = begin.message {
            self.buffered_messages += 1;
            self.buffered_bytes += message.len();
            entry.queue.push_back(message);
        }
        let window = self.limits.window;
        if frame.is_end() {
            entry.state = ExchangeState::HalfClosedRemote;
            entry.recv_allowance = 0;
        } else if window > 1 {
            entry.grant_pending = window - 1;
            entry.recv_allowance += window - 1;
        }
        let grant = entry.grant_pending > 0;
        self.entries.insert(id, entry);
        if grant {
            self.schedule(id);
        }
        self.events.push_back(Event::Incoming {
            id,
            target: begin.target,
        });
        Ok(())
    }

    /// PROTOCOL.md §9.2.
    fn on_data(&mut self, frame: Frame) -> Result<(), ExchangeError> {
        let id = frame.exchange;
        if !self.known(frame.kind, id)? {
            return Ok(());
        }
        let Some(entry) = self.entries.get_mut(&id) else {
            return Ok(());
        };
        if entry.state.is_final() {
            if frame.is_end() {
                self.ended_while_cancelling(id);
            }
            return Ok(());
        }
        if !entry.state.peer_can_send() {
            return Err(protocol(format!("Data on exchange {id} after its END")));
        }
        if entry.recv_allowance == 0 {
            return Err(protocol(format!(
                "Data on exchange {id} beyond the credit granted"
            )));
        }
        entry.recv_allowance -= 1;
        self.buffered_messages += 1;
        self.buffered_bytes += frame.payload.len();
        entry.queue.push_back(frame.payload);
        self.wakers.extend(entry.reader.take());
        if frame.flags.contains(liaison_wire::Flags::END) {
            self.remote_end(id, None);
        }
        Ok(())
    }

    /// PROTOCOL.md §9.3.
    fn on_end(&mut self, frame: &Frame) -> Result<(), ExchangeError> {
        let id = frame.exchange;
        if !self.known(frame.kind, id)? {
            return Ok(());
        }
        let Some(entry) = self.entries.get(&id) else {
            return Ok(());
        };
        if entry.state.is_final() {
            self.ended_while_cancelling(id);
            return Ok(());
        }
        if !entry.state.peer_can_send() {
            return Err(protocol(format!(
                "ExchangeEnd on exchange {id} after its END"
            )));
        }
        let outcome = Outcome::decode(&frame.payload)
            .map_err(|e| protocol(format!("ExchangeEnd {id}: {e}")))?;
        self.remote_end(
            id,
            match outcome {
                Outcome::Success => None,
                Outcome::Failed(message) => Some(message),
            },
        );
        Ok(())
    }

    /// PROTOCOL.md §9.4.
    fn on_cancel(&mut self, frame: &Frame) -> Result<(), ExchangeError> {
        let id = frame.exchange;
        if !self.known(frame.kind, id)? {
            return Ok(());
        }
        let cancel = Cancel::decode(&frame.payload)
            .map_err(|e| protocol(format!("ExchangeCancel {id}: {e}")))?;
        let Some(entry) = self.entries.get_mut(&id) else {
            return Ok(());
        };
        if entry.cancel_unsent {
            // Both sides cancelled at once: the peer's cancel closes the exchange, ours need
            // not be sent.
            entry.cancel_unsent = false;
            self.finish(id);
            return Ok(());
        }
        if entry.state.is_final() {
            return Ok(());
        }
        tracing::trace!(id, code = %cancel.code, "exchange cancelled by the peer");
        entry.state = ExchangeState::Cancelled {
            by: Origin::Remote,
            code: cancel.code,
            reason: cancel.reason,
        };
        entry.wake_all(&mut self.wakers);
        self.discard_queue(id);
        self.finish(id);
        Ok(())
    }

    /// PROTOCOL.md §9.5.
    fn on_credit(&mut self, frame: &Frame) -> Result<(), ExchangeError> {
        let id = frame.exchange;
        if !self.known(frame.kind, id)? {
            return Ok(());
        }
        let credit = frame
            .credit()
            .map_err(|e| protocol(format!("ExchangeCredit {id}: {e}")))?;
        let Some(entry) = self.entries.get_mut(&id) else {
            return Ok(());
        };
        if !entry.state.can_send() {
            // Credit crossing this side's END or cancel: nothing to send with it.
            return Ok(());
        }
        entry.send_credit = entry
            .send_credit
            .checked_add(credit)
            .ok_or_else(|| protocol(format!("credit of exchange {id} overflows u32")))?;
        self.wakers.extend(entry.writer.take());
        Ok(())
    }

    /// The peer's END reached exchange `id`, which this side is cancelling: if this side
    /// had ended its direction before, both ENDs have crossed, so the peer is closing the
    /// exchange without waiting for the cancel. It is final now (PROTOCOL.md §9.7), and the
    /// cancel need not be sent.
    fn ended_while_cancelling(&mut self, id: u64) {
        if let Some(entry) = self.entries.get_mut(&id) {
            if entry.cancel_unsent && entry.local_ended {
                entry.cancel_unsent = false;
                self.finish(id);
            }
        }
    }

    /// The peer ended its direction of `id` (the state allows it).
    fn remote_end(&mut self, id: u64, error: Option<String>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let Some(next) = entry.state.after_remote_end() else {
            return;
        };
        entry.state = next;
        entry.remote_error = error;
        entry.grant_pending = 0;
        self.wakers.extend(entry.reader.take());
        if entry.state.is_final() {
            self.finish(id);
        }
    }

    /// This side ended its direction of `id`.
    fn local_end(&mut self, id: u64) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let Some(next) = entry.state.after_local_end() else {
            return;
        };
        entry.state = next;
        entry.local_ended = true;
        if entry.state.is_final() {
            self.finish(id);
        }
    }

    /// `id` became final: it no longer counts as open, and is forgotten once no handle
    /// refers to it.
    fn finish(&mut self, id: u64) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.grant_pending = 0;
        if entry.local {
            self.outgoing_open = self.outgoing_open.saturating_sub(1);
            self.released += 1;
        } else {
            self.incoming_open = self.incoming_open.saturating_sub(1);
        }
        if entry.handles == 0 {
            self.remove(id);
        }
    }

    fn new_entry(&mut self, local: bool, target: u64) -> Entry {
        let mut entry = Entry::new(local, target);
        if let Some(queue) = self.spare_queues.pop() {
            entry.queue = queue;
        }
        entry
    }

    fn remove(&mut self, id: u64) {
        if let Some(entry) = self.entries.remove(&id) {
            self.buffered_messages -= entry.queue.len();
            self.buffered_bytes -= entry.queue.iter().map(Bytes::len).sum::<usize>();
            let mut queue = entry.queue;
            if queue.capacity() <= SPARE_QUEUE_CAPACITY && self.spare_queues.len() < SPARE_QUEUES {
                queue.clear();
                self.spare_queues.push(queue);
            }
        }
    }

    fn discard_queue(&mut self, id: u64) {
        if let Some(entry) = self.entries.get_mut(&id) {
            self.buffered_messages -= entry.queue.len();
            self.buffered_bytes -= entry.queue.iter().map(Bytes::len).sum::<usize>();
            entry.queue.clear();
        }
    }

    fn schedule(&mut self, id: u64) {
        if let Some(entry) = self.entries.get_mut(&id) {
            if !entry.queued {
                entry.queued = true;
                self.transmits.push_back(id);
                self.transmit_signal = true;
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // User commands
    // ---------------------------------------------------------------------------------

    /// Opens an exchange towards `target`: allocates the next id, with one handle, and
    /// records its `ExchangeBegin` (with credit [`TableLimits::window`]; `carried_message`
    /// says whether it carries the first message, `end` whether it has `END`) as sent. The
    /// driver then hands that frame to the session, and calls [`abandon`](Self::abandon) if
    /// it never gets there. `ExchangeBegin`s must reach the session in the order of their
    /// ids.
    ///
    /// Fails with [`ExchangeError::Revoked`] after termination and
    /// [`ExchangeError::TooManyExchanges`] at the outgoing limit.
    pub fn open(
        &mut self,
        target: u64,
        carried_message: bool,
        end: bool,
    ) -> Result<u64, ExchangeError> {
        if let Some(reason) = &self.terminated {
            return Err(ExchangeError::Revoked(reason.clone()));
        }
        if self.outgoing_open >= self.limits.outgoing {
            return Err(ExchangeError::TooManyExchanges {
                limit: self.limits.outgoing,
            });
        }
        let id = self.next_local;
        self.next_local = id
            .checked_add(2)
            .ok_or_else(|| protocol("exchange ids exhausted".into()))?;
        let mut entry = self.new_entry(true, target);
        // Every exchange starts with one message of credit for its initiator (§9.5).
        entry.send_credit = u32::from(!carried_message);
        entry.recv_allowance = self.limits.window;
        entry.handles = 1;
        if end {
            entry.state = ExchangeState::HalfClosedLocal;
            entry.local_ended = true;
        }
        self.entries.insert(id, entry);
        self.outgoing_open += 1;
        Ok(id)
    }

    /// Forgets exchange `id`, opened by [`open`](Self::open), whose `ExchangeBegin` never
    /// reached the session: the peer never heard of it.
    pub fn abandon(&mut self, id: u64) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        if !entry.local {
            return;
        }
        if !entry.state.is_final() {
            self.outgoing_open = self.outgoing_open.saturating_sub(1);
            self.released += 1;
        }
        self.remove(id);
    }

    /// Whether exchange `id` may send a message now: `Ready(Ok)` with credit, `Pending`
    /// (the waker is registered) without, an error when it can no longer send.
    pub fn poll_send(&mut self, id: u64, cx: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        let Some(entry) = self.entries.get_mut(&id) else {
            return Poll::Ready(Err(ExchangeError::Ended));
        };
        if let Some(error) = entry.state.failure(entry.target) {
            return Poll::Ready(Err(error));
        }
        if !entry.state.can_send() {
            return Poll::Ready(Err(ExchangeError::Ended));
        }
        if entry.send_credit > 0 {
            return Poll::Ready(Ok(()));
        }
        entry.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// A `Data` frame of `id` (with `END` if `end`) was handed to the session.
    pub fn commit_send(&mut self, id: u64, end: bool) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.send_credit = entry.send_credit.saturating_sub(1);
        if end {
            self.local_end(id);
        }
    }

    /// Whether exchange `id` may end its direction now.
    pub fn check_end(&self, id: u64) -> Result<(), ExchangeError> {
        let Some(entry) = self.entries.get(&id) else {
            return Err(ExchangeError::Ended);
        };
        if let Some(error) = entry.state.failure(entry.target) {
            return Err(error);
        }
        if !entry.state.can_send() {
            return Err(ExchangeError::Ended);
        }
        Ok(())
    }

    /// An `ExchangeEnd` of `id` was handed to the session.
    pub fn commit_end(&mut self, id: u64) {
        self.local_end(id);
    }

    /// The next message of exchange `id`: `Ready(Ok(Some))` with a message, `Ready(Ok(None))`
    /// once the peer ended and every message was taken, `Pending` (the waker is registered)
    /// while the peer may still send, an error once the exchange was cancelled or aborted
    /// or the peer ended it with an application error.
    ///
    /// Taking messages grants them back to the peer as credit, in batches of half the window
    /// (PROTOCOL.md §9.5).
    pub fn poll_recv(
        &mut self,
        id: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, ExchangeError>> {
        let window = self.limits.window;
        let Some(entry) = self.entries.get_mut(&id) else {
            return Poll::Ready(Ok(None));
        };
        if let Some(error) = entry.state.failure(entry.target) {
            return Poll::Ready(Err(error));
        }
        if let Some(message) = entry.queue.pop_front() {
            self.buffered_messages -= 1;
            self.buffered_bytes -= message.len();
            entry.recv_consumed += 1;
            if entry.state.peer_can_send() && entry.recv_consumed >= grant_threshold(window) {
                entry.grant_pending += entry.recv_consumed;
                entry.recv_allowance += entry.recv_consumed;
                entry.recv_consumed = 0;
                self.schedule(id);
            }
            return Poll::Ready(Ok(Some(message)));
        }
        if !entry.state.peer_can_send() {
            return Poll::Ready(match &entry.remote_error {
                Some(message) => Err(ExchangeError::RemoteError(message.clone())),
                None => Ok(None),
            });
        }
        entry.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// `Ready` once exchange `id` is cancelled (by either side) or aborted, or the table
    /// terminated; otherwise the waker is registered.
    pub fn poll_cancelled(&mut self, id: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.terminated.is_some() {
            return Poll::Ready(());
        }
        let Some(entry) = self.entries.get_mut(&id) else {
            return Poll::Ready(());
        };
        if matches!(
            entry.state,
            ExchangeState::Cancelled { .. } | ExchangeState::Aborted(_)
        ) {
            return Poll::Ready(());
        }
        if !entry.watchers.iter().any(|w| w.will_wake(cx.waker())) {
            entry.watchers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Whether exchange `id` is cancelled (by either side) or aborted, or the table
    /// terminated.
    pub fn is_cancelled(&self, id: u64) -> bool {
        self.terminated.is_some()
            || self.entries.get(&id).is_none_or(|entry| {
                matches!(
                    entry.state,
                    ExchangeState::Cancelled { .. } | ExchangeState::Aborted(_)
                )
            })
    }

    /// Cancels exchange `id` (PROTOCOL.md §9.4): both directions stop at once, buffered
    /// messages are dropped, and an `ExchangeCancel` with `code` and `reason` is queued.
    /// Does nothing once the exchange is final. Also refuses an incoming exchange.
    pub fn cancel(&mut self, id: u64, code: CancelCode, reason: &str) {
        if self.terminated.is_some() {
            return;
        }
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.state.is_final() {
            return;
        }
        entry.state = ExchangeState::Cancelled {
            by: Origin::Local,
            code,
            reason: crate::payload::truncate(reason).to_owned(),
        };
        entry.cancel_unsent = true;
        entry.grant_pending = 0;
        entry.wake_all(&mut self.wakers);
        self.discard_queue(id);
        self.schedule(id);
    }

    /// Adds a handle on exchange `id`.
    pub fn attach(&mut self, id: u64) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.handles += 1;
        }
    }

    /// Drops a handle on exchange `id`. When the last one goes, a final exchange is
    /// forgotten and an open one is cancelled ([`CancelCode::Cancelled`]).
    pub fn detach(&mut self, id: u64) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.handles = entry.handles.saturating_sub(1);
        if entry.handles > 0 {
            return;
        }
        if !entry.state.is_final() {
            self.cancel(
                id,
                CancelCode::Cancelled,
                "the exchange was dropped before it was closed",
            );
        }
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        if entry.state.is_final() && !entry.cancel_unsent {
            self.remove(id);
        }
    }

    /// Ends every exchange: open ones become [`ExchangeState::Aborted`] with `reason`,
    /// buffered messages of those are dropped, every waiting task is woken, nothing more is
    /// sent, and later [`open`](Self::open)s fail with [`ExchangeError::Revoked`].
    /// Closed exchanges keep their unread messages.
    pub fn terminate(&mut self, reason: &TerminationReason) {
        if self.terminated.is_some() {
            return;
        }
        self.terminated = Some(reason.clone());
        for entry in self.entries.values_mut() {
            if !entry.state.is_final() {
                entry.state = ExchangeState::Aborted(reason.clone());
                entry.queue.clear();
            }
            entry.cancel_unsent = false;
            entry.queued = false;
            entry.grant_pending = 0;
            entry.wake_all(&mut self.wakers);
        }
        self.entries.retain(|_, entry| entry.handles > 0);
        self.buffered_messages = self.entries.values().map(|e| e.queue.len()).sum();
        self.buffered_bytes = self
            .entries
            .values()
            .flat_map(|e| e.queue.iter())
            .map(Bytes::len)
            .sum();
        self.incoming_open = 0;
        self.outgoing_open = 0;
        self.transmits.clear();
        self.events.clear();
    }

    /// The peer restarted and rebuilt the session from this side's state (PROTOCOL.md
    /// §10.2): exchanges it knew are gone. Every exchange that is not final becomes
    /// [`ExchangeState::Aborted`] with `reason` (waiting tasks are woken), the peer's
    /// exchanges are forgotten (the rebuilt peer numbers its ids from the start again),
    /// and nothing queued for the old peer is sent. Unlike [`terminate`](Self::terminate),
    /// the table goes on: new exchanges open as usual.
    pub fn peer_restarted(&mut self, reason: &TerminationReason) {
        if self.terminated.is_some() {
            return;
        }
        for entry in self.entries.values_mut() {
            if !entry.state.is_final() {
                entry.state = ExchangeState::Aborted(reason.clone());
                entry.queue.clear();
            }
            entry.cancel_unsent = false;
            entry.queued = false;
            entry.grant_pending = 0;
            entry.wake_all(&mut self.wakers);
        }
        self.entries
            .retain(|_, entry| entry.local && entry.handles > 0);
        self.buffered_messages = self.entries.values().map(|e| e.queue.len()).sum();
        self.buffered_bytes = self
            .entries
            .values()
            .flat_map(|e| e.queue.iter())
            .map(Bytes::len)
            .sum();
        self.last_peer = 0;
        self.incoming_open = 0;
        self.outgoing_open = 0;
        self.transmits.clear();
        self.events.clear();
    }

    // ---------------------------------------------------------------------------------
    // Outputs
    // ---------------------------------------------------------------------------------

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next frame the table sends itself: an `ExchangeCredit` or an `ExchangeCancel`.
    /// Report it with [`on_transmitted`](Self::on_transmitted) once the session took it.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        while let Some(id) = self.transmits.pop_front() {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            entry.queued = false;
            if entry.cancel_unsent {
                if let ExchangeState::Cancelled { code, reason, .. } = &entry.state {
                    return Some(
                        Cancel {
                            code: *code,
                            reason: reason.clone(),
                        }
                        .frame(id),
                    );
                }
            }
            if entry.grant_pending > 0 && entry.state.peer_can_send() {
                let credit = std::mem::take(&mut entry.grant_pending);
                return Some(Frame::exchange_credit(id, credit));
            }
        }
        None
    }

    /// Whether frames wait in [`poll_transmit`](Self::poll_transmit).
    pub fn has_transmit(&self) -> bool {
        !self.transmits.is_empty()
    }

    /// A frame from [`poll_transmit`](Self::poll_transmit) was handed to the session: a
    /// cancel this side sent makes its exchange final now (PROTOCOL.md §9.7).
    pub fn on_transmitted(&mut self, frame: &Frame) {
        if frame.kind != FrameKind::ExchangeCancel {
            return;
        }
        let id = frame.exchange;
        if let Some(entry) = self.entries.get_mut(&id) {
            if entry.cancel_unsent {
                entry.cancel_unsent = false;
                self.finish(id);
            }
        }
    }

    /// Whether frames were queued for [`poll_transmit`](Self::poll_transmit) since the last
    /// call.
    pub fn take_transmit_signal(&mut self) -> bool {
        std::mem::take(&mut self.transmit_signal)
    }

    /// Moves the wakers of tasks to wake into `out`. The table keeps its own buffer, so a
    /// driver that reuses `out` allocates nothing in steady state.
    pub fn take_wakers(&mut self, out: &mut impl Extend<Waker>) {
        if !self.wakers.is_empty() {
            out.extend(self.wakers.drain(..));
        }
    }

    /// How many exchanges this side opened became final since the last call.
    pub fn take_released(&mut self) -> u32 {
        std::mem::take(&mut self.released)
    }
}

impl std::fmt::Debug for ExchangeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeTable")
            .field("role", &self.role)
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .field("terminated", &self.terminated)
            .finish()
    }
}

/// A hasher for exchange ids: a splitmix64 finaliser, so sequential ids of one parity spread
/// over every bucket. The table holds at most the negotiated number of open exchanges, which
/// bounds the cost of any collisions a peer could aim for.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests;
