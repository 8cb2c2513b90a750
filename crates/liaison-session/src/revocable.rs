//! Capabilities that span a session: [`Revocable`] values and their [`RevocationGuard`],
//! which fail fast with [`Revoked`] once the session has terminated.

use std::fmt;
use std::sync::Arc;

use crate::lifecycle::Lifecycle;
use crate::TerminationReason;

/// A capability was used after its session terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    reason: TerminationReason,
}

impl Revoked {
    /// Why the session ended.
    pub fn reason(&self) -> &TerminationReason {
        &self.reason
    }

    /// The reason, by value.
    pub fn into_reason(self) -> TerminationReason {
        self.reason
    }
}

impl fmt::Display for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revoked: {}", self.reason)
    }
}

impl std::error::Error for Revoked {}

/// Checks whether a session is still alive, for a capability of that session.
///
/// Cheap to clone; does not keep the session open.
#[derive(Clone)]
pub struct RevocationGuard {
    lifecycle: Arc<Lifecycle>,
}

impl RevocationGuard {
    pub(crate) fn new(lifecycle: Arc<Lifecycle>) -> Self {
        Self { lifecycle }
    }

    /// `Ok` while the session lives; [`Revoked`] with the termination reason after.
    pub fn check(&self) -> Result<(), Revoked> {
        match self.lifecycle.reason() {
            None => Ok(()),
            Some(reason) => Err(Revoked {
                reason: reason.clone(),
            }),
        }
    }

    /// Whether the session has terminated.
    pub fn is_revoked(&self) -> bool {
        self.lifecycle.reason().is_some()
    }

    /// Waits until the session terminates.
    pub async fn revoked(&self) -> Revoked {
        Revoked {
            reason: self.lifecycle.terminated().await,
        }
    }
}

impl fmt::Debug for RevocationGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationGuard")
            .field("revoked", &self.lifecycle.reason())
            .finish()
    }
}

/// A value usable only while its session lives: a remote capability, a proxy, a handle
/// on the peer's objects. After termination every access fails fast with [`Revoked`].
#[derive(Clone)]
pub struct Revocable<T> {
    value: T,
    guard: RevocationGuard,
}

impl<T> Revocable<T> {
    /// `value`, revoked with the session of `guard`.
    pub fn new(value: T, guard: RevocationGuard) -> Self {
        Self { value, guard }
    }

    /// The value, while the session lives.
    pub fn get(&self) -> Result<&T, Revoked> {
        self.guard.check().map(|()| &self.value)
    }

    /// The value, mutably, while the session lives.
    pub fn get_mut(&mut self) -> Result<&mut T, Revoked> {
        self.guard.check().map(|()| &mut self.value)
    }

    /// `Ok` while the session lives.
    pub fn check(&self) -> Result<(), Revoked> {
        self.guard.check()
    }

    /// Whether the session has terminated.
    pub fn is_revoked(&self) -> bool {
        self.guard.is_revoked()
    }

    /// Waits until the session terminates.
    pub async fn revoked(&self) -> Revoked {
        self.guard.revoked().await
    }

    /// The guard this value checks.
    pub fn guard(&self) -> &RevocationGuard {
        &self.guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Revocable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocable")
            .field("value", &self.value)
            .field("revoked", &self.guard.is_revoked())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn access_fails_fast_after_termination() {
        let lifecycle = Arc::new(Lifecycle::default());
        let mut cap = Revocable::new(5u32, RevocationGuard::new(Arc::clone(&lifecycle)));
        assert_eq!(cap.get(), Ok(&5));
        *cap.get_mut().expect("alive") += 1;
        let waiter = {
            let cap = cap.clone();
            tokio::spawn(async move { cap.revoked().await })
        };
        assert!(lifecycle.terminate(TerminationReason::IdleTimeout));
        let revoked = cap.get().expect_err("revoked");
        assert_eq!(revoked.reason(), &TerminationReason::IdleTimeout);
        assert!(cap.is_revoked());
        assert_eq!(waiter.await.expect("join"), revoked);
    }
}
