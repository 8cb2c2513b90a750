//! Eventual values that span a session: [`PendingTable`], [`Resolver`], [`Eventual`], and
//! [`Aborted`], what every one of them resolves to when the session ends first.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::{Origin, TerminationReason};

/// An eventual value could not resolve because its session ended: the outcome every
/// pending value gets at termination (and every registration after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aborted {
    reason: TerminationReason,
}

impl Aborted {
    /// An abort caused by `reason`.
    pub fn new(reason: TerminationReason) -> Self {
        Self { reason }
    }

    /// Why the session ended.
    pub fn reason(&self) -> &TerminationReason {
        &self.reason
    }

    /// The reason, by value.
    pub fn into_reason(self) -> TerminationReason {
        self.reason
    }
}

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "aborted: {}", self.reason)
    }
}

impl std::error::Error for Aborted {}

/// What the table keeps of each registration: a way to abort it.
trait Abort: Send {
    fn abort(&self, reason: &TerminationReason);
}

/// The sending end of one eventual value, shared by its [`Resolver`] and the table.
struct Slot<T> {
    tx: Mutex<Option<oneshot::Sender<Result<T, Aborted>>>>,
}

impl<T> Slot<T> {
    fn take(&self) -> Option<oneshot::Sender<Result<T, Aborted>>> {
        lock(&self.tx).take()
    }
}

impl<T: Send> Abort for Arc<Slot<T>> {
    fn abort(&self, reason: &TerminationReason) {
        if let Some(tx) = self.take() {
            // The eventual may be gone already; then nobody waits for the abort.
            let _ = tx.send(Err(Aborted::new(reason.clone())));
        }
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section here leaves the data
/// consistent (inserts, removals and flag sets that cannot panic halfway).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
struct TableState {
    next_id: u64,
    entries: HashMap<u64, Box<dyn Abort>>,
    terminated: Option<TerminationReason>,
}

/// The session's table of pending eventual values.
///
/// Upper layers [`register`](Self::register) one entry per value the peer will produce (a
/// call's reply, an exchange's end, a promise) and keep its [`Resolver`]; the consumer
/// awaits the [`Eventual`]. When the session terminates, for any reason, every entry still
/// pending resolves `Err(`[`Aborted`]`)` with that reason at once, and every later
/// registration fails with it. Guarantee: every eventual value resolves.
#[derive(Default)]
pub struct PendingTable {
    state: Arc<Mutex<TableState>>,
}

impl PendingTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a new pending value. Fails with [`Aborted`] if the session has already
    /// terminated.
    pub fn register<T: Send + 'static>(&self) -> Result<(Resolver<T>, Eventual<T>), Aborted> {
        let (tx, rx) = oneshot::channel();
        let slot = Arc::new(Slot {
            tx: Mutex::new(Some(tx)),
        });
        let mut state = lock(&self.state);
        if let Some(reason) = &state.terminated {
            return Err(Aborted::new(reason.clone()));
        }
        let id = state.next_id;
        state.next_id += 1;
        state.entries.insert(id, Box::new(Arc::clone(&slot)));
        drop(state);
        let table = Arc::downgrade(&self.state);
        Ok((
            Resolver {
                slot,
                id,
                table: table.clone(),
            },
            Eventual { rx, id, table },
        ))
    }

    /// How many values are pending.
    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    /// Whether no value is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the table was aborted (its session terminated).
    pub fn is_aborted(&self) -> bool {
        lock(&self.state).terminated.is_some()
    }

    /// Aborts every value pending now with `reason`, and goes on taking registrations
    /// (after a peer restart, docs/PROTOCOL.md §10.2). Does nothing once the table was
    /// aborted.
    pub fn abort_pending(&self, reason: &TerminationReason) {
        let entries = {
            let mut state = lock(&self.state);
            if state.terminated.is_some() {
                return;
            }
            std::mem::take(&mut state.entries)
        };
        if !entries.is_empty() {
            tracing::debug!(count = entries.len(), %reason, "aborting values pending before");
        }
        for entry in entries.into_values() {
            entry.abort(reason);
        }
    }

    /// Aborts every pending value with `reason` and refuses later registrations. Only the
    /// first call has an effect.
    pub fn abort_all(&self, reason: &TerminationReason) {
        let entries = {
            let mut state = lock(&self.state);
            if state.terminated.is_some() {
                return;
            }
            state.terminated = Some(reason.clone());
            std::mem::take(&mut state.entries)
        };
        if !entries.is_empty() {
            tracing::debug!(count = entries.len(), %reason, "aborting pending values");
        }
        for entry in entries.into_values() {
            entry.abort(reason);
        }
    }
}

impl fmt::Debug for PendingTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("PendingTable")
            .field("pending", &state.entries.len())
            .field("terminated", &state.terminated)
            .finish()
    }
}

fn deregister(table: &Weak<Mutex<TableState>>, id: u64) {
    if let Some(table) = table.upgrade() {
        lock(&table).entries.remove(&id);
    }
}

/// The producing end of a pending value: resolves its [`Eventual`].
///
/// Dropping a resolver without resolving leaves the value pending until the session
/// terminates (then it is [`Aborted`]); a producer that gives up should resolve with an
/// error of its own inside `T`.
pub struct Resolver<T> {
    slot: Arc<Slot<T>>,
    id: u64,
    table: Weak<Mutex<TableState>>,
}

impl<T> Resolver<T> {
    /// The entry's id in its table (unique per table).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Resolves the value. Returns `false` if it could no longer be delivered: the session
    /// terminated first (the eventual got [`Aborted`]) or the eventual was dropped.
    pub fn resolve(self, value: T) -> bool {
        deregister(&self.table, self.id);
        self.slot
            .take()
            .is_some_and(|tx| tx.send(Ok(value)).is_ok())
    }

    /// Whether the value can no longer be delivered.
    pub fn is_closed(&self) -> bool {
        lock(&self.slot.tx)
            .as_ref()
            .is_none_or(oneshot::Sender::is_closed)
    }
}

impl<T> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").field("id", &self.id).finish()
    }
}

/// The consuming end of a pending value: a future of `Result<T, Aborted>`.
///
/// Dropping it deregisters the value from its table.
pub struct Eventual<T> {
    rx: oneshot::Receiver<Result<T, Aborted>>,
    id: u64,
    table: Weak<Mutex<TableState>>,
}

impl<T> Eventual<T> {
    /// The entry's id in its table (the same as its [`Resolver`]'s).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> Future for Eventual<T> {
    type Output = Result<T, Aborted>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|result| {
            result.unwrap_or_else(|_| {
                // The table itself is gone (its session's state was dropped without a
                // termination, as at runtime shutdown): nothing can resolve the value.
                Err(Aborted::new(TerminationReason::Aborted {
                    origin: Origin::Local,
                }))
            })
        })
    }
}

impl<T> Drop for Eventual<T> {
    fn drop(&mut self) {
        deregister(&self.table, self.id);
    }
}

impl<T> fmt::Debug for Eventual<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Eventual").field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed() -> TerminationReason {
        TerminationReason::Closed {
            origin: Origin::Remote,
            reason: "bye".into(),
        }
    }

    #[tokio::test]
    async fn resolved_values_arrive_and_leave_the_table() {
        let table = PendingTable::new();
        let (resolver, eventual) = table.register::<u32>().expect("register");
        assert_eq!(table.len(), 1);
        assert_eq!(resolver.id(), eventual.id());
        assert!(resolver.resolve(7));
        assert_eq!(table.len(), 0);
        assert_eq!(eventual.await, Ok(7));
    }

    #[tokio::test]
    async fn termination_aborts_every_pending_value_and_later_registrations() {
        let table = PendingTable::new();
        let pairs: Vec<_> = (0..10)
            .map(|_| table.register::<String>().expect("register"))
            .collect();
        table.abort_all(&closed());
        assert!(table.is_empty());
        assert!(table.is_aborted());
        for (resolver, eventual) in pairs {
            assert!(resolver.is_closed());
            assert_eq!(eventual.await, Err(Aborted::new(closed())));
            assert!(!resolver.resolve("late".into()));
        }
        assert_eq!(
            table.register::<()>().map(|_| ()),
            Err(Aborted::new(closed()))
        );
        // Only the first reason counts.
        table.abort_all(&TerminationReason::IdleTimeout);
        assert_eq!(
            table.register::<()>().map(|_| ()),
            Err(Aborted::new(closed()))
        );
    }

    #[test]
    fn dropping_an_eventual_deregisters_it() {
        let table = PendingTable::new();
        let (resolver, eventual) = table.register::<u8>().expect("register");
        drop(eventual);
        assert!(table.is_empty());
        assert!(resolver.is_closed());
        assert!(!resolver.resolve(1));
    }

    #[tokio::test]
    async fn a_dropped_resolver_leaves_the_value_pending_until_termination() {
        let table = PendingTable::new();
        let (resolver, eventual) = table.register::<u8>().expect("register");
        drop(resolver);
        assert_eq!(table.len(), 1);
        table.abort_all(&TerminationReason::ScopeCancelled);
        assert_eq!(
            eventual.await,
            Err(Aborted::new(TerminationReason::ScopeCancelled))
        );
    }
}
