//! The two tasks of an endpoint around its [`ExchangeTable`](crate::ExchangeTable): the
//! dispatcher, which feeds the session's incoming frames to the table and routes the
//! exchanges the peer opens, and the transmitter, which sends the frames the table queues
//! itself (credit, cancels, refusals).
//!
//! Neither task ever waits on anything but its input: the dispatcher only takes locks for
//! short, non-blocking table operations and never sends, so one exchange whose reader
//! stopped never stalls the session's reading; the transmitter is the only one that waits
//! for room in the session's send queue. Both hold the endpoint weakly, so an endpoint whose
//! every handle was dropped goes away with its session.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, Weak};
use std::task::{Poll, Waker};

use liaison_session::{IncomingFrames, LinkStatus, RevocationGuard, TerminationReason};
use liaison_wire::{Frame, FrameKind};
use tokio::sync::{watch, Notify};

use crate::shared::{Handle, Running, Shared};
use crate::table::{Event, ExchangeTable};
use crate::{CancelCode, Context, Exchange, ExchangeError, Service};

/// Frames handled under one lock of the table.
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

/// Feeds incoming frames to the table until the session ends, then terminates the table
/// with the session's reason. When the peer restarted and rebuilt the session from this
/// side's state (PROTOCOL.md §10.3), exchanges of before are aborted
/// ([`TerminationReason::PeerRestarted`]), frames the old peer sent are dropped, and
/// frames this side wrote for them never reach the rebuilt peer (they are stamped with the
/// restarts the table had seen, [`Session::send_as_of`](liaison_session::Session::send_as_of)).
pub(crate) async fn dispatch(
    endpoint: Weak<Shared>,
    mut incoming: IncomingFrames,
    guard: RevocationGuard,
) {
    let revoked = guard.revoked();
    tokio::pin!(revoked);
    // Only a resumable session's peer can restart.
    let mut links = endpoint
        .upgrade()
        .filter(|s| s.session.is_resumable())
        .map(|s| s.session.link_changes());
    let resumable = links.is_some();
    let mut epoch = 0u32;
    let mut batch: Vec<(u32, Frame)> = Vec::with_capacity(BATCH);
    let mut wakers = Vec::new();
    let mut routes = Vec::new();
    let mut failed = false;
    loop {
        // Frames first: those the session received before it ended still count.
        let frame = tokio::select! {
            biased;
            frame = incoming.recv() => frame,
            revoked = &mut revoked => {
                terminate(&endpoint, &revoked.into_reason());
                return;
            }
            restarts = restarted(&mut links, epoch), if resumable => {
                epoch = restarts;
                if let Some(shared) = endpoint.upgrade() {
                    tracing::debug!(restarts, "the peer restarted: aborting its exchanges");
                    shared.peer_restarted(restarts);
                }
                continue;
            }
        };
        let Some(frame) = frame else {
            // The session ended; its reason is known by now or very soon.
            let reason = (&mut revoked).await.into_reason();
            terminate(&endpoint, &reason);
            return;
        };
        if failed {
            // After a protocol violation nothing the peer sends is trusted; the session is
            // closing.
            continue;
        }
        batch.push((incoming.restarts(), frame));
        while batch.len() < BATCH {
            match incoming.try_recv() {
                Some(frame) => batch.push((incoming.restarts(), frame)),
                None => break,
            }
        }
        let Some(shared) = endpoint.upgrade() else {
            return;
        };
        let mut restarted_now = false;
        let result: Result<(), ExchangeError> = shared.with_core_into(&mut wakers, |core| {
            for (restarts, frame) in batch.drain(..) {
                if restarts < epoch {
                    // From the peer before its restart: its exchanges are gone.
                    continue;
                }
                if restarts > epoch {
                    epoch = restarts;
                    restarted_now = true;
                    shared.restart_core(core, restarts);
                }
                core.handle_frame(frame)?;
                route(core, &shared, &mut routes);
            }
            Ok(())
        });
        if restarted_now {
            shared.wake_openers();
        }
        batch.clear();
        wakers.drain(..).for_each(Waker::wake);
        for route in routes.drain(..) {
            start(&shared, route);
        }
        if let Err(error) = result {
            // PROTOCOL.md §5.3: a protocol error ends the session with `ProtocolViolation`,
            // the peer told why.
            failed = true;
            tracing::debug!(%error, "the peer broke the exchange rules: ending the session");
            shared.session.fail_protocol(error.to_string());
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
