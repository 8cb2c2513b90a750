//! What runs an endpoint around its [`ExchangeTable`](crate::ExchangeTable): the
//! dispatcher, which the session calls with its incoming frames on its own task
//! ([`FrameSink`]) to feed them to the table and route the exchanges the peer opens, and
//! which leaves the frames of streams to the dispatch task; the dispatch task, which also
//! terminates the table when the session ends and aborts the exchanges of a peer that
//! restarted; and the transmitter, a task that sends the frames the table queues itself
//! (credit, cancels, refusals).
//!
//! The dispatcher never waits: it takes locks only for short, non-blocking table
//! operations, so one exchange whose reader stopped never stalls the session's reading. The
//! transmitter is the only one that waits for room in the session's send queue. The tasks
//! hold the endpoint weakly, so an endpoint whose every handle was dropped goes away with
//! its session.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Poll, Waker};

use liaison_session::{FrameSink, LinkStatus, RevocationGuard, TerminationReason};
use liaison_wire::{Flags, Frame, FrameKind};
use tokio::sync::{watch, Notify};

use crate::shared::{Handle, Running, Shared};
use crate::table::{Event, ExchangeTable};
use crate::{CancelCode, Context, Exchange, ExchangeError, Service};

/// Frames the transmitter takes from the table under one lock.
const BATCH: usize = 64;

/// What to do with an exchange the peer opened, decided under the table's lock and done
/// after it.
enum Route {
    Serve {
        service: Arc<dyn Service>,
        id: u64,
        target: u64,
    },
    Accept {
        id: u64,
        target: u64,
    },
}

/// The peer restarts the session counted, once it counts more than `seen`.
async fn restarted(links: &mut Option<watch::Receiver<LinkStatus>>, seen: u32) -> u32 {
    if let Some(rx) = links {
        if let Ok(status) = rx.wait_for(|status| status.restarts > seen).await {
            return status.restarts;
        }
    }
    std::future::pending().await
}

/// Feeds the session's incoming frames to the table ([`FrameSink`]). Frames that settle
/// something (an `ExchangeBegin`, whose handler runs up to its first wait; a final
/// message or end, which completes its caller's exchange; a cancel) are handled on the
/// session's own task, without a hand-over to another task. Frames of a stream (messages
/// that do not end their direction, credit) go to the endpoint's dispatch task, so a
/// reader or writer they wake runs beside the session's task rather than behind it. Order
/// is kept: once a frame waits for the task, every later one waits behind it. Frames of
/// the peer before a restart it rebuilt the session after (PROTOCOL.md §10.3) are
/// dropped, and its exchanges of before aborted ([`TerminationReason::PeerRestarted`]).
pub(crate) struct Dispatcher {
    endpoint: Weak<Shared>,
    /// Set once the peer broke the exchange rules: nothing it sends is trusted after.
    failed: AtomicBool,
    /// Frames for the dispatch task, in arrival order; taken under the table's lock.
    streamed: Mutex<VecDeque<(u32, Frame)>>,
    /// Wakes the dispatch task.
    ready: Notify,
    /// The session task's buffers, and the dispatch task's: neither waits for the other's
    /// handlers to start.
    scratch: [Mutex<Scratch>; 2],
}

/// Most frames waiting for the dispatch task: past it, the session's task handles them
/// itself, which bounds the queue (and slows the reading of a peer that sends faster).
const STREAM_BACKLOG: usize = 256;

/// Buffers kept across deliveries, so that a batch allocates nothing.
#[derive(Default)]
struct Scratch {
    wakers: Vec<Waker>,
    routes: Vec<Route>,
    /// The waiting frames a pass took, swapped out of the queue.
    taken: VecDeque<(u32, Frame)>,
}

/// Whether `frame` settles something at once: handled on the session's task.
fn settles(frame: &Frame) -> bool {
    match frame.kind {
        FrameKind::ExchangeBegin | FrameKind::ExchangeEnd | FrameKind::ExchangeCancel => true,
        FrameKind::Data => frame.flags.contains(Flags::END),
        _ => false,
    }
}

/// Which frames a pass handles.
enum Pass<'a> {
    /// Those delivered now, unless earlier ones wait for the dispatch task.
    Delivered(&'a mut Vec<(u32, Frame)>),
    /// Those waiting for the dispatch task.
    Streamed,
}

impl Dispatcher {
    pub(crate) fn new(endpoint: Weak<Shared>) -> Self {
        Self {
            endpoint,
            failed: AtomicBool::new(false),
            streamed: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            scratch: Default::default(),
        }
    }

    /// Feeds frames to the table under its lock, then wakes what they woke and starts the
    /// handlers of the exchanges they opened.
    fn run(&self, pass: Pass<'_>) {
        let shared = match self.endpoint.upgrade() {
            Some(shared) if !self.failed.load(Ordering::Relaxed) => shared,
            _ => {
                // After a protocol violation the session is closing; without an endpoint
                // nobody waits for anything.
                if let Pass::Delivered(frames) = pass {
                    frames.clear();
                }
                self.streamed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                return;
            }
        };
        let task = usize::from(matches!(pass, Pass::Streamed));
        let mut scratch = self.scratch[task]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Scratch {
            wakers,
            routes,
            taken,
        } = &mut *scratch;
        let mut restarted_now = false;
        let mut queued = false;
        let result: Result<(), ExchangeError> = shared.with_core_into(wakers, |core| {
            let mut streamed = self.streamed.lock().unwrap_or_else(PoisonError::into_inner);
            match pass {
                Pass::Delivered(frames) => {
                    if streamed.is_empty() && frames.iter().all(|(_, frame)| settles(frame)) {
                        drop(streamed);
                        return handle(core, &shared, frames.drain(..), routes, &mut restarted_now);
                    }
                    streamed.extend(frames.drain(..));
                    if streamed.len() < STREAM_BACKLOG {
                        queued = true;
                        return Ok(());
                    }
                    // The dispatch task lags: this task catches up.
                }
                Pass::Streamed => {}
            }
            std::mem::swap(&mut *streamed, taken);
            drop(streamed);
            handle(core, &shared, taken.drain(..), routes, &mut restarted_now)
        });
        if queued {
            self.ready.notify_one();
        }
        if restarted_now {
            shared.wake_openers();
        }
        wakers.drain(..).for_each(Waker::wake);
        // Each task runs one pass at a time: its buffers stay locked while the handlers
        // start.
        for route in routes.drain(..) {
            start(&shared, route);
        }
        drop(scratch);
        if let Err(error) = result {
            // PROTOCOL.md §5.3: a protocol error ends the session with `ProtocolViolation`,
            // the peer told why.
            self.failed.store(true, Ordering::Relaxed);
            tracing::debug!(%error, "the peer broke the exchange rules: ending the session");
            shared.session.fail_protocol(error.to_string());
        }
    }
}

/// Feeds `frames` to the table, dropping those of the peer before its last restart.
fn handle(
    core: &mut ExchangeTable,
    shared: &Shared,
    frames: impl Iterator<Item = (u32, Frame)>,
    routes: &mut Vec<Route>,
    restarted_now: &mut bool,
) -> Result<(), ExchangeError> {
    for (restarts, frame) in frames {
        let epoch = shared.epoch();
        if restarts < epoch {
            // From the peer before its restart: its exchanges are gone.
            continue;
        }
        if restarts > epoch {
            *restarted_now = true;
            shared.restart_core(core, restarts);
        }
        core.handle_frame(frame)?;
        route(core, shared, routes);
    }
    Ok(())
}

impl FrameSink for Dispatcher {
    fn deliver(&self, frames: &mut Vec<(u32, Frame)>) {
        self.run(Pass::Delivered(frames));
    }
}

/// The endpoint's dispatch task: handles the frames of streams the session's task left
/// for it, and when the session ends (after what it received before) terminates the table
/// with its reason; meanwhile aborts the exchanges of before each restart of the peer
/// that rebuilt the session, as soon as the session learns of it (a resumable session
/// only).
pub(crate) async fn dispatch(dispatcher: Arc<Dispatcher>, guard: RevocationGuard) {
    let endpoint = &dispatcher.endpoint;
    let revoked = guard.revoked();
    tokio::pin!(revoked);
    // Only a resumable session's peer can restart.
    let mut links = endpoint
        .upgrade()
        .filter(|s| s.session.is_resumable())
        .map(|s| s.session.link_changes());
    let resumable = links.is_some();
    let mut seen = 0u32;
    loop {
        tokio::select! {
            biased;
            () = dispatcher.ready.notified() => dispatcher.run(Pass::Streamed),
            revoked = &mut revoked => {
                // Frames received before the end still count.
                dispatcher.run(Pass::Streamed);
                terminate(endpoint, &revoked.into_reason());
                return;
            }
            restarts = restarted(&mut links, seen), if resumable => {
                seen = restarts;
                let Some(shared) = endpoint.upgrade() else { return };
                shared.peer_restarted(restarts);
            }
        }
    }
}

/// Decides, for each exchange the peer opened, which service serves it, whether it waits
/// for [`Endpoint::accept`](crate::Endpoint::accept), or that it is refused.
fn route(core: &mut ExchangeTable, shared: &Shared, routes: &mut Vec<Route>) {
    while let Some(event) = core.poll_event() {
        let Event::Incoming { id, target } = event;
        let service = shared
            .services
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&target)
            .cloned();
        match service {
            Some(service) => {
                // One handle for the exchange, one for its context.
                core.attach(id);
                core.attach(id);
                routes.push(Route::Serve {
                    service,
                    id,
                    target,
                });
            }
            None if shared.accepting() => {
                core.attach(id);
                routes.push(Route::Accept { id, target });
            }
            None => {
                tracing::debug!(id, target, "exchange for an unknown capability refused");
                core.cancel(
                    id,
                    CancelCode::UnknownCapability,
                    &format!("no capability {target}"),
                );
            }
        }
    }
}

fn start(shared: &Arc<Shared>, route: Route) {
    match route {
        Route::Serve {
            service,
            id,
            target,
        } => {
            let exchange = Exchange::new(Handle::adopt(Arc::clone(shared), id), target, false);
            let ctx = Context::new(Handle::adopt(Arc::clone(shared), id), target);
            let running = Running::new(Arc::clone(shared));
            run_handler(Box::pin(async move {
                let _running = running;
                service.handle(exchange, &ctx).await;
            }));
        }
        Route::Accept { id, target } => {
            let exchange = Exchange::new(Handle::adopt(Arc::clone(shared), id), target, false);
            let tx = shared
                .accept_tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            // Without a receiver the exchange is dropped here, which cancels it.
            if let Some(tx) = tx {
                let _ = tx.send(exchange);
            }
        }
    }
}

/// Runs a handler up to its first wait here, and in a task of its own only if it waits: a
/// handler that answers at once (its request arrived with its `ExchangeBegin`, its reply
/// fits the session's send queue) costs no task. The handler is polled once without a
/// waker; the task's first poll registers its own. A handler that panics here ends like one
/// that panics in its task: it is dropped, which cancels its exchange.
fn run_handler(mut handler: Pin<Box<dyn Future<Output = ()> + Send>>) {
    let mut cx = std::task::Context::from_waker(Waker::noop());
    match panic::catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(&mut cx))) {
        Ok(Poll::Ready(())) => {}
        Ok(Poll::Pending) => {
            tokio::spawn(handler);
        }
        Err(_) => tracing::warn!("a handler panicked: its exchange is cancelled"),
    }
}

fn terminate(endpoint: &Weak<Shared>, reason: &TerminationReason) {
    if let Some(shared) = endpoint.upgrade() {
        tracing::debug!(%reason, "session ended: aborting its exchanges");
        shared.terminate(reason);
    }
}

/// Sends what the table queues itself, in order, waiting for room in the session's send
/// queue.
pub(crate) async fn transmit(endpoint: Weak<Shared>, outbox: Arc<Notify>, guard: RevocationGuard) {
    let revoked = guard.revoked();
    tokio::pin!(revoked);
    let mut batch: Vec<Frame> = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            biased;
            _ = &mut revoked => return,
            () = outbox.notified() => {}
        }
        let Some(shared) = endpoint.upgrade() else {
            return;
        };
        loop {
            // Stamped with the peer restarts the table had seen when it queued them.
            let epoch = shared.with_core(|core| {
                while batch.len() < BATCH {
                    match core.poll_transmit() {
                        Some(frame) => batch.push(frame),
                        None => break,
                    }
                }
                shared.epoch()
            });
            if batch.is_empty() {
                break;
            }
            for frame in batch.drain(..) {
                // A cancel makes its exchange final once the session took it (§9.7).
                let sent = (frame.kind == FrameKind::ExchangeCancel).then(|| {
                    Frame::on_exchange(
                        FrameKind::ExchangeCancel,
                        frame.exchange,
                        bytes::Bytes::new(),
                    )
                });
                if shared.session.send_as_of(epoch, frame).await.is_err() {
                    return;
                }
                if let Some(sent) = sent {
                    shared.with_core(|core| core.on_transmitted(&sent));
                }
            }
        }
    }
}
