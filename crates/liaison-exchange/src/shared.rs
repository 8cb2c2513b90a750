//! What every handle of one endpoint shares ([`Shared`]: the session, the exchange table
//! behind a mutex, the outgoing limit, the served capabilities) and the counted handle on
//! one exchange ([`Handle`]) that the public types wrap.

use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, TryLockError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use liaison_session::{RevocationGuard, Session, TerminationReason};
use liaison_wire::{DefaultCodec, Frame};
use tokio::sync::{mpsc, Notify};

use crate::payload::{Begin, Outcome, BEGIN_HEADER_LEN};
use crate::table::{ExchangeTable, IdHasher};
use crate::{CancelCode, Exchange, ExchangeError, ExchangeState, LimitPolicy, Service};

/// Services by capability id.
pub(crate) type Services = HashMap<u64, Arc<dyn Service>, BuildHasherDefault<IdHasher>>;

/// The state of one endpoint, shared by its handles and its two tasks.
pub(crate) struct Shared {
    pub(crate) session: Session,
    core: Mutex<ExchangeTable>,
    /// Held from allocating an id to handing its `ExchangeBegin` to the session, so
    /// `ExchangeBegin`s leave in the order of their ids (PROTOCOL.md §9.1); never across a
    /// wait.
    open_order: Mutex<()>,
    /// Openers that could not open at once (no room under the limit or in the session's
    /// send queue, or others busy with the table) take turns on this lock, first come,
    /// first served ...
    turn: tokio::sync::Mutex<()>,
    /// ... and while any waits, new openers line up behind.
    line: AtomicUsize,
    /// Notified when exchanges this side opened become final (room under the limit), and
    /// on termination.
    room: Notify,
    pub(crate) policy: LimitPolicy,
    pub(crate) limit: u32,
    pub(crate) window: u32,
    /// Wakes the transmit task when the table queued frames.
    pub(crate) outbox: Arc<Notify>,
    pub(crate) services: RwLock<Services>,
    next_capability: AtomicU64,
    pub(crate) root: Option<u64>,
    pub(crate) guard: RevocationGuard,
    pub(crate) codec: DefaultCodec,
    /// Largest message: the negotiated `max_frame_payload`.
    pub(crate) max_message: u32,
    /// Largest first message an `ExchangeBegin` carries: the same limit applies to the
    /// whole payload, fixed fields included (PROTOCOL.md §5.1, §9.1).
    max_begin_message: usize,
    pub(crate) accept_tx: Mutex<Option<mpsc::UnboundedSender<Exchange>>>,
    pub(crate) accept_rx: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<Exchange>>>,
    pub(crate) running: AtomicUsize,
    /// The peer restarts the table has acted on (PROTOCOL.md §10.3). Written and read
    /// under the table's lock, so that a frame is stamped with the restarts its exchange
    /// belongs to: one of an exchange of before a restart never reaches the rebuilt peer
    /// ([`Session::send_as_of`]).
    epoch: AtomicU32,
}

/// Settings [`Shared::new`] takes.
pub(crate) struct Parts {
    pub(crate) session: Session,
    pub(crate) core: ExchangeTable,
    pub(crate) policy: LimitPolicy,
    pub(crate) services: Services,
    pub(crate) root: Option<u64>,
    pub(crate) accept: bool,
}

impl Shared {
    pub(crate) fn new(parts: Parts) -> Self {
        let limits = parts.core.limits();
        let max_message = parts.session.config().limits.max_frame_payload;
        let (accept_tx, accept_rx) = if parts.accept {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        Self {
            guard: parts.session.revocation_guard(),
            session: parts.session,
            core: Mutex::new(parts.core),
            open_order: Mutex::new(()),
            turn: tokio::sync::Mutex::new(()),
            line: AtomicUsize::new(0),
            room: Notify::new(),
            policy: parts.policy,
            limit: limits.outgoing,
            window: limits.window,
            outbox: Arc::new(Notify::new()),
            services: RwLock::new(parts.services),
            next_capability: AtomicU64::new(1),
            root: parts.root,
            codec: DefaultCodec::new(max_message),
            max_message,
            max_begin_message: usize::try_from(max_message)
                .unwrap_or(usize::MAX)
                .saturating_sub(BEGIN_HEADER_LEN),
            accept_tx: Mutex::new(accept_tx),
            accept_rx: tokio::sync::Mutex::new(accept_rx),
            running: AtomicUsize::new(0),
            epoch: AtomicU32::new(0),
        }
    }

    /// The peer restarts the table has acted on; call under the table's lock.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Aborts, under the table's lock, every exchange of before the peer's `restarts`-th
    /// restart; the table goes on (PROTOCOL.md §10.3).
    pub(crate) fn restart_core(&self, core: &mut ExchangeTable, restarts: u32) {
        core.peer_restarted(&TerminationReason::PeerRestarted);
        self.epoch.store(restarts, Ordering::Relaxed);
    }

    /// Sends a frame written when the table had seen `epoch` peer restarts.
    pub(crate) async fn send_frame(&self, epoch: u32, frame: Frame) -> Result<(), ExchangeError> {
        self.session
            .send_as_of(epoch, frame)
            .await
            .map_err(ExchangeError::from_send)
    }

    /// Runs `f` on the table, then (outside the lock) wakes the tasks it woke, an opener
    /// waiting for room if exchanges became final, and the transmit task if needed.
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut ExchangeTable) -> R) -> R {
        self.with_locked(self.core.lock().unwrap_or_else(PoisonError::into_inner), f)
    }

    /// As [`with_core`](Self::with_core) if nobody else holds the table; `None` otherwise.
    fn try_with_core<R>(&self, f: impl FnOnce(&mut ExchangeTable) -> R) -> Option<R> {
        let core = match self.core.try_lock() {
            Ok(core) => core,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(self.with_locked(core, f))
    }

    /// [`with_core`](Self::with_core) on the table `core`, locked already.
    fn with_locked<R>(
        &self,
        core: MutexGuard<'_, ExchangeTable>,
        f: impl FnOnce(&mut ExchangeTable) -> R,
    ) -> R {
        let mut woken = Woken::default();
        let result = self.finish_with_core(core, &mut woken, f);
        woken.wake();
        result
    }

    /// As [`with_core`](Self::with_core), leaving the wakers in `wakers` for the caller.
    pub(crate) fn with_core_into<R>(
        &self,
        wakers: &mut impl Extend<Waker>,
        f: impl FnOnce(&mut ExchangeTable) -> R,
    ) -> R {
        let core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        self.finish_with_core(core, wakers, f)
    }

    /// Runs `f` on the locked table, then does what [`with_core_into`](Self::with_core_into)
    /// does after it.
    fn finish_with_core<R>(
        &self,
        mut core: MutexGuard<'_, ExchangeTable>,
        wakers: &mut impl Extend<Waker>,
        f: impl FnOnce(&mut ExchangeTable) -> R,
    ) -> R {
        let result = f(&mut core);
        core.take_wakers(wakers);
        let (released, signal) = (core.take_released(), core.take_transmit_signal());
        drop(core);
        if released > 0 {
            // Openers wait for room one at a time (`turn`), so one wake-up is enough.
            self.room.notify_one();
        }
        if signal {
            self.outbox.notify_one();
        }
        result
    }

    /// Whether unrouted exchanges wait for `accept`.
    pub(crate) fn accepting(&self) -> bool {
        self.accept_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Aborts every exchange of before the peer's `restarts`-th restart; the table goes on
    /// (PROTOCOL.md §10.3).
    pub(crate) fn peer_restarted(&self, restarts: u32) {
        let acted = self.with_core(|core| {
            // Frames of the rebuilt peer may have told the table first.
            let new = restarts > self.epoch();
            if new {
                self.restart_core(core, restarts);
            }
            new
        });
        if acted {
            tracing::debug!(restarts, "the peer restarted: aborting its exchanges");
            self.wake_openers();
        }
    }

    /// Wakes every opener waiting for room (the count of open exchanges was reset).
    pub(crate) fn wake_openers(&self) {
        self.room.notify_waiters();
    }

    /// Ends every exchange after the session ended.
    pub(crate) fn terminate(&self, reason: &TerminationReason) {
        self.with_core(|core| core.terminate(reason));
        self.room.notify_waiters();
        // Exchanges queued for `accept` are dropped (they are aborted already); a task
        // waiting in `accept` gets the queued ones, then `None`.
        let tx = self
            .accept_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(tx);
        if let Ok(mut rx) = self.accept_rx.try_lock() {
            if let Some(rx) = rx.as_mut() {
                while rx.try_recv().is_ok() {}
            }
        }
    }

    /// Fails with [`ExchangeError::Revoked`] once the session has ended.
    pub(crate) fn check_revoked(&self) -> Result<(), ExchangeError> {
        self.guard
            .check()
            .map_err(|revoked| ExchangeError::Revoked(revoked.into_reason()))
    }

    /// A fresh capability id, never the root's.
    pub(crate) fn next_capability(&self) -> u64 {
        loop {
            let id = self.next_capability.fetch_add(1, Ordering::Relaxed);
            if Some(id) != self.root && id != 0 {
                return id;
            }
        }
    }

    /// Opens an exchange towards `target`, with `first` as its first message and `END` if
    /// `end` (PROTOCOL.md §9.1). Waits for room under the limit or fails, per the policy.
    pub(crate) async fn open(
        self: &Arc<Self>,
        target: u64,
        first: Option<Bytes>,
        end: bool,
    ) -> Result<Handle, ExchangeError> {
        match self.open_at_once(target, first, end)? {
            Ok(handle) => Ok(handle),
            Err(opener) => self.open_later(opener).await,
        }
    }

    /// Checks an exchange to open and writes its `ExchangeBegin`.
    fn opener(
        &self,
        target: u64,
        first: Option<Bytes>,
        end: bool,
    ) -> Result<Opener, ExchangeError> {
        self.check_revoked()?;
        if let Some(first) = &first {
            self.check_size(first)?;
        }
        let (message, rest) = match first {
            Some(message) if message.len() <= self.max_begin_message => (Some(message), None),
            other => (None, other),
        };
        let carried = message.is_some();
        let frame = Begin {
            target,
            credit: self.window,
            message,
        }
        .frame(0, end && rest.is_none());
        Ok(Opener {
            target,
            carried,
            frame,
            rest: rest.map(|message| (message, end)),
        })
    }

    /// Opens an exchange as [`open`](Self::open) does if that needs no wait: nobody waits
    /// in line, nobody else holds the table, there is room under the limit and in the
    /// session's send queue, and the first message fits the `ExchangeBegin`. Otherwise gives
    /// back the [`Opener`] to finish with [`open_later`](Self::open_later).
    pub(crate) fn open_at_once(
        self: &Arc<Self>,
        target: u64,
        first: Option<Bytes>,
        end: bool,
    ) -> Result<Result<Handle, Opener>, ExchangeError> {
        let mut opener = self.opener(target, first, end)?;
        if opener.rest.is_some() || self.line.load(Ordering::Acquire) > 0 {
            return Ok(Err(opener));
        }
        let Ok(order) = self.open_order.try_lock() else {
            return Ok(Err(opener));
        };
        let Opener {
            target,
            carried,
            frame,
            ..
        } = opener;
        match self.try_open(&order, target, carried, frame, Contention::Yield)? {
            Opening::Opened(id) => Ok(Ok(Handle::adopt(Arc::clone(self), id))),
            Opening::Blocked(frame, _) => {
                opener.frame = frame;
                Ok(Err(opener))
            }
        }
    }

    /// Opens `opener`'s exchange, waiting in line for room, then sends a first message too
    /// large for the `ExchangeBegin`.
    pub(crate) async fn open_later(
        self: &Arc<Self>,
        opener: Opener,
    ) -> Result<Handle, ExchangeError> {
        let Opener {
            target,
            carried,
            frame,
            rest,
        } = opener;
        let id = self.open_in_line(target, carried, frame).await?;
        let handle = Handle::adopt(Arc::clone(self), id);
        if let Some((message, end)) = rest {
            // Too large to share a frame with the fixed fields: the first Data, on the
            // credit every exchange starts with (PROTOCOL.md §9.5).
            // (Boxed: rare, and it would make every opener in line larger.)
            Box::pin(handle.send(message, end)).await?;
        }
        Ok(handle)
    }

    /// Opens the exchange of the `ExchangeBegin` `frame` (its id not set yet) towards
    /// `target` once there is room under the limit and in the session's send queue, waiting
    /// in line: openers that find no room are served first come, first served.
    async fn open_in_line(
        &self,
        target: u64,
        carried: bool,
        mut frame: Frame,
    ) -> Result<u64, ExchangeError> {
        self.line.fetch_add(1, Ordering::AcqRel);
        let _in_line = InLine(&self.line);
        let _turn = self.turn.lock().await;
        let mut room = None;
        loop {
            let opened = {
                let order = self
                    .open_order
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                self.try_open(&order, target, carried, frame, Contention::Wait)
            };
            let (back, blocked) = match opened? {
                Opening::Opened(id) => return Ok(id),
                Opening::Blocked(back, blocked) => (back, blocked),
            };
            frame = back;
            match blocked {
                // Only openers that do not wait for the table are turned away busy.
                Blocked::Busy => {}
                Blocked::SendQueue => Box::pin(self.session.send_ready())
                    .await
                    .map_err(ExchangeError::from_send)?,
                Blocked::Limit => match room.take() {
                    // Registered before the last try: wait for room.
                    Some(waiting) => waiting.await,
                    // Full: register, then try again, so that room made in between is not
                    // missed.
                    None => {
                        let mut waiting = Box::pin(self.room.notified());
                        waiting.as_mut().enable();
                        room = Some(waiting);
                    }
                },
            }
        }
    }

    /// Allocates an id for the `ExchangeBegin` `frame` (towards `target`, carrying a
    /// message if `carried`) and hands the frame to the session, without waiting.
    /// `ExchangeBegin`s leave in the order of their ids (PROTOCOL.md §9.1), so both happen
    /// under one lock; an id whose frame the session could not take is abandoned (the peer
    /// never hears of it, and ids need only increase).
    fn try_open(
        &self,
        _order: &MutexGuard<'_, ()>,
        target: u64,
        carried: bool,
        mut frame: Frame,
        contended: Contention,
    ) -> Result<Opening, ExchangeError> {
        let end = frame.is_end();
        let open =
            |core: &mut ExchangeTable| core.open(target, carried, end).map(|id| (id, self.epoch()));
        let opened = if contended == Contention::Yield {
            match self.try_with_core(open) {
                Some(opened) => opened,
                None => return Ok(Opening::Blocked(frame, Blocked::Busy)),
            }
        } else {
            self.with_core(open)
        };
        let (id, epoch) = match opened {
            Ok(opened) => opened,
            Err(ExchangeError::TooManyExchanges { .. }) if self.policy == LimitPolicy::Wait => {
                return Ok(Opening::Blocked(frame, Blocked::Limit));
            }
            // The session ended while this call waited: it was pending, so aborted.
            Err(ExchangeError::Revoked(reason)) => return Err(ExchangeError::Aborted(reason)),
            Err(other) => return Err(other),
        };
        frame.exchange = id;
        match self.session.try_send_as_of(epoch, frame) {
            Ok(None) => Ok(Opening::Opened(id)),
            Ok(Some(mut back)) => {
                self.with_core(|core| core.abandon(id));
                back.exchange = 0;
                Ok(Opening::Blocked(back, Blocked::SendQueue))
            }
            Err(error) => {
                self.with_core(|core| core.abandon(id));
                Err(ExchangeError::from_send(error))
            }
        }
    }

    fn check_size(&self, message: &Bytes) -> Result<(), ExchangeError> {
        if message.len() > usize::try_from(self.max_message).unwrap_or(usize::MAX) {
            return Err(ExchangeError::MessageTooLarge {
                size: message.len(),
                max: self.max_message,
            });
        }
        Ok(())
    }
}

/// Wakers taken from the table under its lock, to wake after it: the first two without
/// allocating (most table operations wake one task, or none).
#[derive(Default)]
struct Woken {
    first: [Option<Waker>; 2],
    more: Vec<Waker>,
}

impl Woken {
    fn wake(self) {
        if self.first[0].is_none() {
            return;
        }
        self.first
            .into_iter()
            .flatten()
            .chain(self.more)
            .for_each(Waker::wake);
    }
}

impl Extend<Waker> for Woken {
    fn extend<I: IntoIterator<Item = Waker>>(&mut self, wakers: I) {
        for waker in wakers {
            match self.first.iter_mut().find(|slot| slot.is_none()) {
                Some(slot) => *slot = Some(waker),
                None => self.more.push(waker),
            }
        }
    }
}

/// An exchange to open ([`Shared::opener`]): its `ExchangeBegin`, whose id is set once
/// allocated, and what goes with it.
pub(crate) struct Opener {
    target: u64,
    /// The `ExchangeBegin` carries the first message.
    carried: bool,
    frame: Frame,
    /// A first message too large for the `ExchangeBegin`, sent after it, and whether it
    /// ends this side's direction.
    rest: Option<(Bytes, bool)>,
}

/// What [`Shared::try_open`] did.
enum Opening {
    /// The exchange is open and its `ExchangeBegin` with the session.
    Opened(u64),
    /// Nothing happened: the frame back, and what there was no room in.
    Blocked(Frame, Blocked),
}

/// What an opener does if another holds the table.
#[derive(PartialEq, Eq)]
enum Contention {
    /// Gives up, to wait in line (on a lock that lets the thread run other tasks).
    Yield,
    /// Waits for the table (briefly: nobody holds it across a wait).
    Wait,
}

/// Where an opener found no room.
enum Blocked {
    /// Others were using the table.
    Busy,
    /// The limit on open exchanges (and the policy is to wait).
    Limit,
    /// The session's send queue.
    SendQueue,
}

/// Counts an opener in line while it lives.
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A counted handle on one exchange: the table keeps the exchange while handles exist, and
/// cancels it when the last one is dropped before the exchange is closed.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u64,
    /// The table counts this handle: it is detached on drop.
    attached: bool,
}

impl Handle {
    /// A handle the table already counts ([`ExchangeTable::attach`] was called for it).
    pub(crate) fn adopt(shared: Arc<Shared>, id: u64) -> Self {
        Self {
            shared,
            id,
            attached: true,
        }
    }

    /// Sends one message, waiting for credit (PROTOCOL.md §9.2, §9.5).
    pub(crate) async fn send(&self, message: Bytes, end: bool) -> Result<(), ExchangeError> {
        self.shared.check_size(&message)?;
        let id = self.id;
        let epoch = poll_fn(|cx| {
            self.shared.with_core(|core| {
                core.poll_send(id, cx)
                    .map(|ready| ready.map(|()| self.shared.epoch()))
            })
        })
        .await?;
        let frame = Frame::data(id, message);
        let frame = if end { frame.with_end() } else { frame };
        self.shared.send_frame(epoch, frame).await?;
        self.shared.with_core(|core| core.commit_send(id, end));
        Ok(())
    }

    /// Ends this side's direction with `ExchangeEnd` (PROTOCOL.md §9.3).
    pub(crate) async fn end(&self, outcome: Outcome) -> Result<(), ExchangeError> {
        let id = self.id;
        let epoch = self
            .shared
            .with_core(|core| core.check_end(id).map(|()| self.shared.epoch()))?;
        self.shared.send_frame(epoch, outcome.frame(id)).await?;
        self.shared.with_core(|core| core.commit_end(id));
        Ok(())
    }

    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, ExchangeError>> {
        let id = self.id;
        self.shared.with_core(|core| core.poll_recv(id, cx))
    }

    pub(crate) async fn recv(&self) -> Result<Option<Bytes>, ExchangeError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message, as [`poll_recv`](Self::poll_recv), giving up the handle
    /// in the same pass over the table once it is ready: what a unary call waits for, with
    /// one lock fewer than a receive followed by a drop.
    pub(crate) fn poll_recv_last(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, ExchangeError>> {
        let id = self.id;
        let received = self.shared.with_core(|core| {
            let received = core.poll_recv(id, cx);
            if received.is_ready() {
                core.detach(id);
            }
            received
        });
        if received.is_ready() {
            self.attached = false;
        }
        received
    }

    pub(crate) async fn cancelled(&self) {
        let id = self.id;
        poll_fn(|cx| self.shared.with_core(|core| core.poll_cancelled(id, cx))).await;
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        let id = self.id;
        self.shared.with_core(|core| core.is_cancelled(id))
    }

    pub(crate) fn cancel(&self, reason: &str) {
        let id = self.id;
        self.shared
            .with_core(|core| core.cancel(id, CancelCode::Cancelled, reason));
    }

    pub(crate) fn state(&self) -> ExchangeState {
        let id = self.id;
        self.shared
            .with_core(|core| core.state(id).cloned().unwrap_or(ExchangeState::Closed))
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        let id = self.id;
        self.shared.with_core(|core| core.attach(id));
        Self::adopt(Arc::clone(&self.shared), id)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.attached {
            let id = self.id;
            self.shared.with_core(|core| core.detach(id));
        }
    }
}

/// Counts a running handler while it lives.
pub(crate) struct Running(pub(crate) Arc<Shared>);

impl Running {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        shared.running.fetch_add(1, Ordering::Relaxed);
        Self(shared)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}
