//! Key locks in the store: owner tokens, waiting for a lock, renewing its lease, and the
//! guard that releases it however its holder ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use liaison_resume::ResumeError;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::protocol::{hex, Failure};
use crate::service::Inner;

/// A fresh lock owner token: 128 random bits, unique per holder across every server that
/// shares the store.
pub(crate) fn new_token() -> [u8; 16] {
    rand::random::<u128>().to_le_bytes()
}

/// The writers of this server waiting for a lock, by lock key: a release wakes the first
/// of them (first come, first served); a key's entry lives while someone waits.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    keys: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waiters {
    fn keys(&self) -> MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        // Every use is one map call: a panic elsewhere cannot leave it half-changed.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the waiters of `lock_key`.
    fn join<'a>(&'a self, lock_key: &'a str) -> Waiting<'a> {
        let notify = Arc::clone(self.keys().entry(lock_key.to_owned()).or_default());
        Waiting {
            waiters: self,
            lock_key,
            notify,
        }
    }

    /// Wakes the first writer waiting for `lock_key`, if any.
    pub(crate) fn wake(&self, lock_key: &str) {
        if let Some(notify) = self.keys().get(lock_key) {
            notify.notify_one();
        }
    }

    /// How many keys have waiters (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys().len()
    }
}

/// One writer's place among the waiters of a key; leaving removes the key's entry when it
/// was the last.
struct Waiting<'a> {
    waiters: &'a Waiters,
    lock_key: &'a str,
    notify: Arc<Notify>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut keys = self.waiters.keys();
        // The map's reference and this one: nobody else waits.
        if keys
            .get(self.lock_key)
            .is_some_and(|entry| Arc::ptr_eq(entry, &self.notify) && Arc::strong_count(entry) == 2)
        {
            keys.remove(self.lock_key);
        }
    }
}

/// A lock on one key for one owner token, possibly not (or no longer) held. Dropping it
/// without [`release`](Self::release) or [`forget`](Self::forget) releases the lock in a
/// task of its own, so a handler cut short (its session aborted) never leaves it behind.
pub(crate) struct LockGuard {
    inner: Arc<Inner>,
    lock_key: String,
    token: [u8; 16],
    owner: String,
    done: bool,
}

impl LockGuard {
    /// A guard for the lock on `lock_key`, under a fresh owner token.
    pub(crate) fn new(inner: Arc<Inner>, lock_key: String) -> Self {
        Self::with_token(inner, lock_key, new_token())
    }

    /// A guard for the lock on `lock_key` owned by `token` (a hold's, claimed by a put).
    pub(crate) fn with_token(inner: Arc<Inner>, lock_key: String, token: [u8; 16]) -> Self {
        Self {
            inner,
            lock_key,
            owner: hex(&token),
            token,
            done: false,
        }
    }

    /// The owner token.
    pub(crate) fn token(&self) -> [u8; 16] {
        self.token
    }

    /// Takes the lock, waiting up to the configured lock wait: writers released through
    /// this service wake at once, other servers' releases are seen at the next poll.
    pub(crate) async fn acquire(&self, key: &str) -> Result<(), Failure> {
        let config = &self.inner.config;
        let start = Instant::now();
        let deadline = start + config.lock_wait;
        let waiting = self.inner.waiters.join(&self.lock_key);
        loop {
            // Registered before looking, so a release in between is not missed.
            let notified = waiting.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.renew().await.map_err(Failure::from_store)? {
                debug!(key, waited = ?start.elapsed(), "lock taken");
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let waited = now.duration_since(start);
                debug!(key, ?waited, "lock wait over");
                return Err(Failure::Locked {
                    key: key.to_owned(),
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                });
            }
            let wake_at = deadline.min(now + config.poll_interval);
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// Takes or renews the lock for another lease: `true` if this owner holds it now.
    pub(crate) async fn renew(&self) -> Result<bool, ResumeError> {
        self.inner
            .store
            .try_lock(&self.lock_key, &self.owner, self.inner.config.lease)
            .await
    }

    /// Releases the lock (if this owner still holds it) and wakes the first writer waiting
    /// for it here.
    pub(crate) async fn release(mut self) {
        self.done = true;
        unlock(&self.inner, &self.lock_key, &self.owner).await;
    }

    /// Drops the guard without touching the lock (it was never taken).
    pub(crate) fn forget(mut self) {
        self.done = true;
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left to release it: the lease expires it.
            return;
        };
        let inner = Arc::clone(&self.inner);
        let lock_key = std::mem::take(&mut self.lock_key);
        let owner = std::mem::take(&mut self.owner);
        runtime.spawn(async move { unlock(&inner, &lock_key, &owner).await });
    }
}

/// Releases `lock_key` if `owner` holds it and wakes the first writer waiting for it.
pub(crate) async fn unlock(inner: &Inner, lock_key: &str, owner: &str) {
    match inner.store.unlock(lock_key, owner).await {
        Ok(released) => debug!(lock_key, released, "lock released"),
        Err(error) => warn!(lock_key, %error, "releasing a lock failed; its lease will expire"),
    }
    inner.waiters.wake(lock_key);
}

/// The renewal period of a lease: a third of it.
pub(crate) fn renew_period(lease: Duration) -> Duration {
    lease / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh() {
        assert_ne!(new_token(), new_token());
    }

    #[tokio::test]
    async fn a_release_wakes_the_first_waiter_and_entries_go_with_the_last() {
        let waiters = Waiters::default();
        let first = waiters.join("k");
        let second = waiters.join("k");
        {
            let one = first.notify.notified();
            let two = second.notify.notified();
            tokio::pin!(one, two);
            one.as_mut().enable();
            two.as_mut().enable();
            waiters.wake("k");
            waiters.wake("other");
            assert!(ready_now(one.as_mut()));
            assert!(!ready_now(two.as_mut()));
        }
        assert_eq!(waiters.len(), 1);
        drop(first);
        assert_eq!(waiters.len(), 1);
        drop(second);
        assert_eq!(waiters.len(), 0);
    }

    /// Whether `future` is ready when polled once.
    fn ready_now<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        future.poll(&mut cx).is_ready()
    }
}
