//! Waits the session task has on every pass of its `select!` but that seldom complete: its
//! control queue and its timer.
//!
//! Polling a pending receiver or timer registers the task's waker again (a clone of the
//! waker, a drop of the old one, and atomic writes to memory the other worker touches), and
//! on a busy session that was a tenth of the task's time. A pending wait keeps the waker of
//! its last poll and wakes it when it completes, so once one has been polled while pending,
//! these wrappers poll it again only when it has something (a message queued, the queue
//! closed, the deadline passed), which they can tell without registering anything.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// An unbounded receiver polled only when it has something, once it holds the task's waker.
///
/// It must be polled from one task only (the waker it keeps is that task's).
#[derive(Debug)]
pub(crate) struct QuietReceiver<T> {
    receiver: mpsc::UnboundedReceiver<T>,
    /// The last poll was pending, so the receiver holds the task's waker until a message
    /// or the close wakes it.
    waiting: bool,
}

impl<T> QuietReceiver<T> {
    pub(crate) fn new(receiver: mpsc::UnboundedReceiver<T>) -> Self {
        Self {
            receiver,
            waiting: false,
        }
    }

    /// [`mpsc::UnboundedReceiver::recv`] (cancel-safe as it is).
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.waiting && self.receiver.is_empty() && !self.receiver.is_closed() {
            return Poll::Pending;
        }
        let poll = self.receiver.poll_recv(cx);
        self.waiting = poll.is_pending();
        poll
    }

    /// The receiver itself, to drain it once the task is done.
    pub(crate) fn into_inner(self) -> mpsc::UnboundedReceiver<T> {
        self.receiver
    }
}

/// A timer polled only once its deadline passed, once it holds the task's waker.
///
/// It must be polled from one task only (the waker it keeps is that task's).
#[derive(Debug)]
pub(crate) struct QuietTimer {
    sleep: Pin<Box<Sleep>>,
    /// Polled while pending since the last reset: the timer holds the task's waker.
    waiting: bool,
}

impl QuietTimer {
    /// A timer due at once.
    pub(crate) fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            waiting: false,
        }
    }

    /// Moves the deadline (earlier or later); the next poll registers the waker again.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.waiting = false;
    }

    /// Completes once the deadline has passed (at once, and again, after that).
    pub(crate) async fn elapsed(&mut self) {
        poll_fn(|cx| self.poll_elapsed(cx)).await;
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.waiting && !self.sleep.is_elapsed() {
            return Poll::Pending;
        }
        let poll = self.sleep.as_mut().poll(cx);
        self.waiting = poll.is_pending();
        poll
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (Arc::clone(&count), Waker::from(count))
    }

    fn poll_recv<T>(receiver: &mut QuietReceiver<T>, waker: &Waker) -> Poll<Option<T>> {
        receiver.poll_recv(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_message_and_then_yields_it() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut receiver = QuietReceiver::new(rx);
        let (count, waker) = waker();
        assert!(poll_recv(&mut receiver, &waker).is_pending());
        // Polled again while nothing came: still pending, nothing registered anew.
        assert!(poll_recv(&mut receiver, Waker::noop()).is_pending());
        tx.send(7).expect("send");
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the first poll's waker");
        assert_eq!(poll_recv(&mut receiver, &waker), Poll::Ready(Some(7)));
        // After a message, the next poll registers again: the next message wakes it too.
        assert!(poll_recv(&mut receiver, &waker).is_pending());
        tx.send(8).expect("send");
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(poll_recv(&mut receiver, &waker), Poll::Ready(Some(8)));
    }

    #[test]
    fn a_waiting_receiver_sees_the_close() {
        let (tx, rx) = mpsc::unbounded_channel::<u8>();
        let mut receiver = QuietReceiver::new(rx);
        let (count, waker) = waker();
        assert!(poll_recv(&mut receiver, &waker).is_pending());
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll_recv(&mut receiver, Waker::noop()), Poll::Ready(None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_fires_after_a_reset_either_way() {
        let mut timer = QuietTimer::new();
        let start = Instant::now();
        timer.reset(start + Duration::from_secs(10));
        let (count, waker) = waker();
        let mut cx = Context::from_waker(&waker);
        assert!(timer.poll_elapsed(&mut cx).is_pending());
        // Sooner: the reset registers again, so the new deadline wakes the task.
        timer.reset(start + Duration::from_secs(2));
        timer.elapsed().await;
        assert_eq!(Instant::now(), start + Duration::from_secs(2));
        // Later, then waited for.
        timer.reset(start + Duration::from_secs(5));
        assert!(timer.poll_elapsed(&mut cx).is_pending());
        assert!(timer
            .poll_elapsed(&mut Context::from_waker(Waker::noop()))
            .is_pending());
        tokio::time::sleep_until(start + Duration::from_secs(5)).await;
        assert!(
            count.0.load(Ordering::SeqCst) >= 1,
            "the registered waker was woken"
        );
        assert!(timer
            .poll_elapsed(&mut Context::from_waker(Waker::noop()))
            .is_ready());
        // Once passed, it stays elapsed.
        timer.elapsed().await;
    }
}
