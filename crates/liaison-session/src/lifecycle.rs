//! The shared end of a session: its [`TerminationReason`] once known, the signal that it is
//! known, and the table of pending values that termination aborts.

use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

use crate::{PendingTable, TerminationReason};

/// Shared by a session's handles, its driver, its pending values and its revocable
/// capabilities.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    reason: OnceLock<TerminationReason>,
    /// Cancelled once `reason` is set and every pending value is aborted.
    terminated: CancellationToken,
    /// Cancelled when the driver has finished: last frames flushed, transport closed.
    finished: CancellationToken,
    pub(crate) pending: PendingTable,
}

impl Lifecycle {
    /// Records `reason` if none was recorded yet, aborts every pending value with it and
    /// wakes every waiter. Returns whether this call decided the reason.
    pub(crate) fn terminate(&self, reason: TerminationReason) -> bool {
        if self.reason.set(reason.clone()).is_err() {
            return false;
        }
        self.pending.abort_all(&reason);
        self.terminated.cancel();
        true
    }

    pub(crate) fn reason(&self) -> Option<&TerminationReason> {
        self.reason.get()
    }

    /// Waits until the reason is known.
    pub(crate) async fn terminated(&self) -> TerminationReason {
        self.terminated.cancelled().await;
        // `terminate` sets the reason before cancelling the token.
        self.reason
            .get()
            .cloned()
            .unwrap_or(TerminationReason::TransportClosed)
    }

    pub(crate) fn finish(&self) {
        self.finished.cancel();
    }

    pub(crate) async fn finished(&self) {
        self.finished.cancelled().await;
    }
}
