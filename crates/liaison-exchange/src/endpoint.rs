//! [`Endpoint`]: the exchange layer on one session (its capabilities, remotes and
//! counters), and [`EndpointBuilder`], which starts it.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use liaison_session::{FrameSink, SequencingMode, Session, TerminationReason};
use liaison_wire::DefaultCodec;

use crate::driver::{dispatch, transmit, Dispatcher};
use crate::shared::{Parts, Services, Shared};
use crate::table::{ExchangeTable, TableLimits};
use crate::{CapabilityRef, Exchange, ExchangeConfig, ExchangeError, Remote, Service};

/// Counters of an [`Endpoint`], for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ExchangeStats {
    /// Exchanges this side opened that are not closed yet.
    pub outgoing: u32,
    /// Exchanges the peer opened that are not closed yet.
    pub incoming: u32,
    /// Exchanges tracked: open ones and closed ones that still have handles.
    pub tracked: usize,
    /// Messages received and not yet read, over every exchange. At most
    /// `window` per exchange.
    pub buffered_messages: usize,
    /// Bytes of those messages.
    pub buffered_bytes: usize,
    /// Handlers of incoming exchanges still running.
    pub running_handlers: usize,
    /// The limit on open exchanges in force (each way).
    pub limit: u32,
    /// The flow-control window in force, in messages.
    pub window: u32,
}

/// The exchange layer on one session: opens exchanges towards the peer's capabilities
/// ([`root`](Self::root), [`remote`](Self::remote)), serves this side's
/// ([`EndpointBuilder::root`], [`export`](Self::export)), and hands over the peer's
/// exchanges that no service takes ([`accept`](Self::accept)).
///
/// Cheap to clone. It runs two tasks on the session: one routes every incoming frame to its
/// exchange, one sends the frames the exchange layer sends itself (credit, cancels). When
/// the session ends, for any reason, every pending eventual value resolves
/// [`Aborted`](ExchangeError::Aborted), every [`Remote`] is revoked, and every running
/// handler's [`Context::cancelled`](crate::Context::cancelled) resolves.
#[derive(Clone)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

impl Endpoint {
    /// Starts the exchange layer on `session` with `config`, serving no capability (the
    /// peer's exchanges are refused until [`export`](Self::export)ed capabilities exist).
    /// Must be called within a tokio runtime.
    pub fn new(session: Session, config: ExchangeConfig) -> Result<Self, ExchangeError> {
        Self::builder(session).config(config).start()
    }

    /// A builder, to serve a root capability or accept unrouted exchanges.
    pub fn builder(session: Session) -> EndpointBuilder {
        EndpointBuilder {
            session,
            config: ExchangeConfig::default(),
            root: None,
            accept: false,
        }
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.shared.session
    }

    /// The codec typed calls use: the default codec, bounded by the session's
    /// `max_frame_payload`.
    pub fn codec(&self) -> &DefaultCodec {
        &self.shared.codec
    }

    /// The peer's root capability: the id the session's configuration names (PROTOCOL.md
    /// §7.3), served by the peer's [`EndpointBuilder::root`].
    pub fn root(&self) -> Result<Remote, ExchangeError> {
        self.shared
            .root
            .map(|id| Remote::new(Arc::clone(&self.shared), id))
            .ok_or(ExchangeError::NoRootCapability)
    }

    /// The peer's capability `capability` (for example one a reply carried).
    pub fn remote(&self, capability: CapabilityRef) -> Remote {
        Remote::new(Arc::clone(&self.shared), capability.0)
    }

    /// Serves `service` as a new capability of this session and returns its fresh id, to
    /// send to the peer. Ids are never reused within the session.
    pub fn export(&self, service: impl Service) -> CapabilityRef {
        let id = self.shared.next_capability();
        self.shared
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::new(service));
        CapabilityRef(id)
    }

    /// Stops serving `capability`: later exchanges towards it are refused
    /// (`UnknownCapability`); running ones go on. Returns whether it was served.
    pub fn unexport(&self, capability: CapabilityRef) -> bool {
        self.shared
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&capability.0)
            .is_some()
    }

    /// The next exchange the peer opened towards a capability no service serves, when the
    /// endpoint was built with [`EndpointBuilder::accept_unrouted`]; `None` once the session
    /// ended (or without `accept_unrouted`).
    pub async fn accept(&self) -> Option<Exchange> {
        let mut rx = self.shared.accept_rx.lock().await;
        rx.as_mut()?.recv().await
    }

    /// The counters.
    pub fn stats(&self) -> ExchangeStats {
        let table = self.shared.with_core(|core| core.stats());
        ExchangeStats {
            outgoing: table.outgoing,
            incoming: table.incoming,
            tracked: table.tracked,
            buffered_messages: table.buffered_messages,
            buffered_bytes: table.buffered_bytes,
            running_handlers: self.shared.running.load(Ordering::Relaxed),
            limit: self.shared.limit,
            window: self.shared.window,
        }
    }

    /// Closes the session gracefully (see [`Session::close`]).
    pub async fn close(&self, reason: impl Into<String>) -> TerminationReason {
        self.shared.session.close(reason).await
    }

    /// Aborts the session (see [`Session::abort`]).
    pub fn abort(&self) {
        self.shared.session.abort();
    }

    /// Waits until the session has ended and returns why.
    pub async fn closed(&self) -> TerminationReason {
        self.shared.session.closed().await
    }

    /// Whether the session has ended.
    pub fn is_terminated(&self) -> bool {
        self.shared.guard.is_revoked()
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("session", &self.shared.session)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Builds an [`Endpoint`]; see [`Endpoint::builder`].
pub struct EndpointBuilder {
    session: Session,
    config: ExchangeConfig,
    root: Option<Arc<dyn Service>>,
    accept: bool,
}

impl EndpointBuilder {
    /// Replaces the configuration.
    #[must_use]
    pub fn config(mut self, config: ExchangeConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves `service` as this side's root capability, at the id of the session's
    /// [`RootCapability`](liaison_session::RootCapability). Usually the server's; a client
    /// may serve one too, for the server to call back through its own
    /// [`Endpoint::root`].
    #[must_use]
    pub fn root(mut self, service: impl Service) -> Self {
        self.root = Some(Arc::new(service));
        self
    }

    /// Keeps exchanges towards capabilities no service serves for [`Endpoint::accept`]
    /// instead of refusing them (`UnknownCapability`).
    #[must_use]
    pub fn accept_unrouted(mut self) -> Self {
        self.accept = true;
        self
    }

    /// Starts the endpoint. Must be called within a tokio runtime.
    ///
    /// Fails with [`ExchangeError::NoRootCapability`] if a root service was given but the
    /// session has no root capability, and [`ExchangeError::IncomingTaken`] if the session's
    /// incoming frames were already taken (one endpoint per session).
    pub fn start(self) -> Result<Endpoint, ExchangeError> {
        let root = self.session.root().map(|root| root.id);
        let mut services = Services::default();
        if let Some(service) = self.root {
            let id = root.ok_or(ExchangeError::NoRootCapability)?;
            services.insert(id, service);
        }
        if self.session.config().sequencing == SequencingMode::Unordered {
            // PROTOCOL.md §9: the exchange rules assume in-order delivery.
            tracing::warn!(
                "exchanges over an unordered session: a reordered exchange frame ends the \
                 session as a protocol violation"
            );
        }
        let negotiated = self.session.config().limits.max_exchanges;
        let limits = TableLimits::new(self.config.window, self.config.max_exchanges, negotiated);
        let core = ExchangeTable::new(self.session.role(), limits);
        let guard = self.session.revocation_guard();
        let shared = Arc::new(Shared::new(Parts {
            session: self.session,
            core,
            policy: self.config.on_limit,
            services,
            root,
            accept: self.accept,
        }));
        let dispatcher = Arc::new(Dispatcher::new(Arc::downgrade(&shared)));
        if !shared
            .session
            .deliver_to(Arc::clone(&dispatcher) as Arc<dyn FrameSink>)
        {
            return Err(ExchangeError::IncomingTaken);
        }
        tokio::spawn(dispatch(dispatcher, guard.clone()));
        tokio::spawn(transmit(
            Arc::downgrade(&shared),
            Arc::clone(&shared.outbox),
            guard,
        ));
        Ok(Endpoint { shared })
    }
}

impl fmt::Debug for EndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointBuilder")
            .field("config", &self.config)
            .field("root", &self.root.is_some())
            .field("accept", &self.accept)
            .finish()
    }
}
