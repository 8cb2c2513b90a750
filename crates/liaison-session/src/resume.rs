//! Session resume configuration and bookkeeping (docs/PROTOCOL.md §10, docs/SESSION.md §8):
//! the client's [`ResumeConfig`] and its [`Reconnect`] source, the server's
//! [`ServerResume`] and its registry of live resumable sessions, and the [`LinkState`] a
//! session reports.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use liaison_resume::{BackoffConfig, ResumeSecret, Store};
use liaison_transport::{Address, Transport, TransportConfig, TransportError};
use tokio::sync::mpsc;

use crate::driver::Attach;
use crate::{PeerIdentity, SessionId};

/// Where a detached client gets its next connection from.
///
/// Implemented by [`AddressReconnect`] (an address and a transport configuration) and by
/// [`ReconnectFn`] (any async closure, see [`reconnect_fn`]), so a test can hand out
/// wrapped connections.
#[async_trait]
pub trait Reconnect: Send + Sync + 'static {
    /// A new connection to the server (or to another server sharing its store).
    async fn connect(&self) -> Result<Box<dyn Transport>, TransportError>;
}

/// Reconnects to an address.
#[derive(Debug, Clone)]
pub struct AddressReconnect {
    /// Where to connect.
    pub address: Address,
    /// How.
    pub config: TransportConfig,
}

#[async_trait]
impl Reconnect for AddressReconnect {
    async fn connect(&self) -> Result<Box<dyn Transport>, TransportError> {
        liaison_transport::connect(&self.address, &self.config).await
    }
}

type ConnectFuture =
    Pin<Box<dyn Future<Output = Result<Box<dyn Transport>, TransportError>> + Send>>;

/// Reconnects by calling a closure; see [`reconnect_fn`].
pub struct ReconnectFn(Box<dyn Fn() -> ConnectFuture + Send + Sync>);

impl fmt::Debug for ReconnectFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReconnectFn(..)")
    }
}

#[async_trait]
impl Reconnect for ReconnectFn {
    async fn connect(&self) -> Result<Box<dyn Transport>, TransportError> {
        (self.0)().await
    }
}

/// A [`Reconnect`] source from an async closure.
pub fn reconnect_fn<F, Fut>(f: F) -> ReconnectFn
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Box<dyn Transport>, TransportError>> + Send + 'static,
{
    ReconnectFn(Box::new(move || Box::pin(f())))
}

/// The application state a client sends when the server restarted and rebuilds the
/// session (`ResumeState`, docs/PROTOCOL.md §10.2).
pub type StateProvider = Arc<dyn Fn() -> Bytes + Send + Sync>;

/// How a client keeps its session across lost connections.
///
/// ```
/// use std::time::Duration;
/// use liaison_session::{ClientConfig, NoAuth, ResumeConfig, SequencingMode};
///
/// let config = ClientConfig::new(NoAuth)
///     .with_resume(ResumeConfig::default().with_max_detached(Duration::from_secs(30)));
/// // A resumable session is sequenced: its retransmit buffer spans the reconnection.
/// assert_eq!(config.sequencing, SequencingMode::Ordered);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ResumeConfig {
    /// When to try again after a failed reconnection, and when to give up.
    pub backoff: BackoffConfig,
    /// Longest time the session stays detached: then it ends
    /// ([`ReconnectFailed`](crate::TerminationReason::ReconnectFailed)) and everything
    /// pending resolves aborted.
    pub max_detached: Duration,
    pub(crate) state: Option<StateProvider>,
    pub(crate) reconnect: Option<Arc<dyn Reconnect>>,
}

impl Default for ResumeConfig {
    /// The default backoff, 60 s detached at most, no state, no reconnect source (
    /// [`Session::connect_to`](crate::Session::connect_to) reconnects to its address).
    fn default() -> Self {
        Self {
            backoff: BackoffConfig::default(),
            max_detached: Duration::from_secs(60),
            state: None,
            reconnect: None,
        }
    }
}

impl ResumeConfig {
    /// Sets the backoff.
    #[must_use]
    pub fn with_backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the longest time detached.
    #[must_use]
    pub fn with_max_detached(mut self, max: Duration) -> Self {
        self.max_detached = max;
        self
    }

    /// Sets where new connections come from.
    #[must_use]
    pub fn with_reconnect(mut self, reconnect: impl Reconnect) -> Self {
        self.reconnect = Some(Arc::new(reconnect));
        self
    }

    /// Sets the state sent to a restarted server.
    #[must_use]
    pub fn with_state(mut self, state: impl Fn() -> Bytes + Send + Sync + 'static) -> Self {
        self.state = Some(Arc::new(state));
        self
    }
}

impl fmt::Debug for ResumeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeConfig")
            .field("backoff", &self.backoff)
            .field("max_detached", &self.max_detached)
            .field("state", &self.state.is_some())
            .field("reconnect", &self.reconnect.is_some())
            .finish()
    }
}

/// What rebuilds a session from the state a client sends after a server restart
/// (docs/PROTOCOL.md §10.2): called with the session's id, the client's identity and the
/// state; an `Err` refuses the resume with its message.
pub type StateHandler =
    Arc<dyn Fn(SessionId, &PeerIdentity, &Bytes) -> Result<(), String> + Send + Sync>;

/// How a server keeps sessions resumable: the store that outlives it (shared by a fleet),
/// how long a detached session is kept, and the handler of a client's state.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerResume {
    /// Where resume records live (docs/PROTOCOL.md §10.3).
    pub store: Arc<dyn Store>,
    /// How long a session without a connection is kept: then it ends with
    /// [`IdleTimeout`](crate::TerminationReason::IdleTimeout), its pending values are
    /// aborted, and its record deleted.
    pub idle_timeout: Duration,
    pub(crate) on_state: Option<StateHandler>,
    pub(crate) registry: Arc<Registry>,
}

impl ServerResume {
    /// Resumable sessions recorded in `store`, kept `idle_timeout` once detached.
    pub fn new(store: Arc<dyn Store>, idle_timeout: Duration) -> Self {
        Self {
            store,
            idle_timeout,
            on_state: None,
            registry: Arc::default(),
        }
    }

    /// Sets the handler that rebuilds a session from a client's state. Without one, any
    /// state is accepted as it is ([`Session::resumed_state`](crate::Session::resumed_state)
    /// has it).
    #[must_use]
    pub fn with_state_handler(
        mut self,
        handler: impl Fn(SessionId, &PeerIdentity, &Bytes) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.on_state = Some(Arc::new(handler));
        self
    }

    /// How many resumable sessions this server holds live (attached or detached).
    pub fn live_sessions(&self) -> usize {
        self.registry.len()
    }
}

impl fmt::Debug for ServerResume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerResume")
            .field("store", &self.store)
            .field("idle_timeout", &self.idle_timeout)
            .field("on_state", &self.on_state.is_some())
            .field("live", &self.registry.len())
            .finish()
    }
}

/// A live resumable session, as the registry knows it.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) attach: mpsc::Sender<Attach>,
    pub(crate) secret: ResumeSecret,
    pub(crate) identity: String,
    /// The record this session wrote in the store: while the store holds it, this copy
    /// owns the session (docs/SESSION.md §8.3).
    pub(crate) record: Option<Bytes>,
}

/// The server's live resumable sessions, by id.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Mutex<HashMap<SessionId, Entry>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Entry>> {
        // Inserts and removals only: consistent even after a panic elsewhere.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: SessionId) -> Option<Entry> {
        self.lock().get(&id).cloned()
    }

    pub(crate) fn insert(&self, id: SessionId, entry: Entry) {
        self.lock().insert(id, entry);
    }

    /// Removes `id` if it is still the entry whose attach channel is `attach`.
    pub(crate) fn remove(&self, id: SessionId, attach: &mpsc::Sender<Attach>) {
        let mut entries = self.lock();
        if entries
            .get(&id)
            .is_some_and(|e| e.attach.same_channel(attach))
        {
            entries.remove(&id);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The identity as records keep it: unambiguous (every field quoted).
pub(crate) fn identity_key(identity: &PeerIdentity) -> String {
    format!("{identity:?}")
}

/// Whether a session has a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkState {
    /// Connected.
    Attached,
    /// The connection was lost; a resumable session waits for a new one (the client
    /// reconnects, the server waits for it).
    Detached,
    /// The session has ended.
    Ended,
}

/// A session's link and how often it was resumed; see
/// [`Session::link_changes`](crate::Session::link_changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LinkStatus {
    /// Whether the session has a connection.
    pub state: LinkState,
    /// Resumes so far.
    pub resumes: u32,
    /// Resumes so far in which the peer had restarted and rebuilt the session from this
    /// side's state (docs/PROTOCOL.md §10.3): what was pending before was aborted.
    pub restarts: u32,
    /// Frames this side sent (or buffered while detached) that a peer which then restarted
    /// never acknowledged, and that were therefore given up (docs/SESSION.md §8.2),
    /// counted over every restart: [`Session::send`](crate::Session::send) had returned
    /// `Ok` for them, but they reached no peer that still knows them. Also counts frames
    /// written for the peer before a restart that the session took only after it.
    pub abandoned: u64,
}
