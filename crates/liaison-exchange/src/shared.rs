//! What every handle of one endpoint shares ([`Shared`]: the session, the exchange table
//! behind a mutex, the outgoing limit, the served capabilities) and the counted handle on
//! one exchange ([`Handle`]) that the public types wrap.

use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
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
    /// `ExchangeBegin`s leave in the order of their ids (PROTOCOL.md §9.1).
    begin_order: tokio::sync::Mutex<()>,
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
            begin_order: tokio::sync::Mutex::new(()),
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
        let mut woken = Woken::default();
        let result = self.with_core_into(&mut woken, f);
        woken.wake();
        result
    }

    /// As [`with_core`](Self::with_core), leaving the wakers in `wakers` for the caller.
    pub(crate) fn with_core_into<R>(
        &self,
        wakers: &mut impl Extend<Waker>,
        f: impl FnOnce(&mut ExchangeTable) -> R,
    ) -> R {
        let (result, released, signal) = {
            let mut core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
            let result = f(&mut core);
            core.take_wakers(wakers);
            (result, core.take_released(), core.take_transmit_signal())
        };
        if released > 0 {
            // Openers wait one at a time (`begin_order`), so one wake-up is enough.
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
        self.check_revoked()?;
        if let Some(first) = &first {
            self.check_size(first)?;
        }
        let (message, rest) = match first {
            Some(message) if message.len() <= self.max_begin_message => (Some(message), None),
            other => (None, other),
        };
        let carried = message.is_some();
        let begin_end = end && rest.is_none();
        // `ExchangeBegin`s leave in the order of their ids (PROTOCOL.md §9.1): the id is
        // allocated and the frame handed to the session under this lock. It is fair, so
        // openers waiting for room are served in order.
        let order = self.begin_order.lock().await;
        let mut room = None;
        let (id, epoch) = loop {
            let opened = self.with_core(|core| {
                core.open(target, carried, begin_end)
                    .map(|id| (id, self.epoch()))
            });
            match opened {
                Ok(opened) => break opened,
                Err(ExchangeError::TooManyExchanges { .. }) if self.policy == LimitPolicy::Wait => {
                    match room.take() {
                        // Registered before the last try: wait for room.
                        Some(waiting) => waiting.await,
                        // Full: register, then try again, so that room made in between
                        // is not missed.
                        None => {
                            let mut waiting = Box::pin(self.room.notified());
                            waiting.as_mut().enable();
                            room = Some(waiting);
                        }
                    }
                }
                // The session ended while this call waited: it was pending, so aborted.
                Err(ExchangeError::Revoked(reason)) => return Err(ExchangeError::Aborted(reason)),
                Err(other) => return Err(other),
            }
        };
        let mut reservation = Reservation {
            shared: self,
            id,
            sent: false,
        };
        let frame = Begin {
            target,
            credit: self.window,
            message,
        }
        .frame(id, begin_end);
        self.send_frame(epoch, frame).await?;
        reservation.sent = true;
        drop(order);
        let handle = Handle {
            shared: Arc::clone(self),
            id,
        };
        if let Some(message) = rest {
            // Too large to share a frame with the fixed fields: the first Data, on the
            // credit every exchange starts with (PROTOCOL.md §9.5).
            handle.send(message, end).await?;
        }
        Ok(handle)
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

/// An exchange between id allocation and its `ExchangeBegin` reaching the session; dropped
/// before that (the caller gave up, or the session refused the frame), it is abandoned.
struct Reservation<'a> {
    shared: &'a Shared,
    id: u64,
    sent: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.sent {
            let id = self.id;
            self.shared.with_core(|core| core.abandon(id));
        }
    }
}

/// A counted handle on one exchange: the table keeps the exchange while handles exist, and
/// cancels it when the last one is dropped before the exchange is closed.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u64,
}

impl Handle {
    /// A handle the table already counts ([`ExchangeTable::attach`] was called for it).
    pub(crate) fn adopt(shared: Arc<Shared>, id: u64) -> Self {
        Self { shared, id }
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
        Self {
            shared: Arc::clone(&self.shared),
            id,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let id = self.id;
        self.shared.with_core(|core| core.detach(id));
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
