//! [`Server`]: accepts connections and establishes sessions on them, many handshakes at a
//! time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use liaison_transport::{Address, Listener, TransportConfig};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{Scope, ServerConfig, Session, SessionError, TerminationReason};

/// Pause after a failed `accept`, so a persistent listener error does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Accepts connections on a listener and runs each handshake in its own task, so a failed
/// or silent handshake never blocks the others (each is bounded by the handshake deadline,
/// at most [`ServerConfig::max_pending_handshakes`] run at once).
///
/// The accept loop stops when the `Server` is dropped or [`stop`](Self::stop)ped, or when
/// the configuration's scope is cancelled. Established sessions belong to the
/// configuration's scope, not to the `Server`: they outlive it unless that scope ends.
pub struct Server {
    local_addr: Address,
    outcomes: mpsc::Receiver<Result<Session, SessionError>>,
    stop: CancellationToken,
    _guard: DropGuard,
}

impl Server {
    /// Listens at `address` and serves sessions on it.
    pub async fn bind(
        address: &Address,
        transport_config: &TransportConfig,
        config: ServerConfig,
    ) -> Result<Self, SessionError> {
        config.session.validate()?;
        let listener = liaison_transport::bind(address, transport_config).await?;
        Ok(Self::serve(listener, config))
    }

    /// Serves sessions on `listener`. Must be called within a tokio runtime.
    pub fn serve(listener: Box<dyn Listener>, config: ServerConfig) -> Self {
        let stop = match &config.scope {
            Some(scope) => scope.child_token(),
            None => CancellationToken::new(),
        };
        let (tx, outcomes) = mpsc::channel(config.accept_queue.max(1));
        let local_addr = listener.local_addr();
        tokio::spawn(accept_loop(listener, config, stop.clone(), tx));
        Self {
            local_addr,
            outcomes,
            _guard: stop.clone().drop_guard(),
            stop,
        }
    }

    /// As [`serve`](Self::serve), with the accept loop and every session members of
    /// `scope`.
    pub fn serve_in(scope: &Scope, listener: Box<dyn Listener>, config: ServerConfig) -> Self {
        Self::serve(listener, config.in_scope(scope))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> &Address {
        &self.local_addr
    }

    /// The next established session. Failed handshakes are skipped (see
    /// [`next_handshake`](Self::next_handshake)). Fails with
    /// [`SessionError::Terminated`]`(`[`ScopeCancelled`](TerminationReason::ScopeCancelled)`)`
    /// once the server has stopped.
    pub async fn accept(&mut self) -> Result<Session, SessionError> {
        loop {
            match self.next_handshake().await {
                Some(Ok(session)) => return Ok(session),
                Some(Err(e)) => tracing::debug!(error = %e, "handshake failed"),
                None => return Err(SessionError::Terminated(TerminationReason::ScopeCancelled)),
            }
        }
    }

    /// The outcome of the next handshake to finish: an established session or the typed
    /// error it failed with. `None` once the server has stopped and every outcome was
    /// taken. Failures are reported only while there is room in the accept queue.
    pub async fn next_handshake(&mut self) -> Option<Result<Session, SessionError>> {
        self.outcomes.recv().await
    }

    /// Stops accepting connections. Established sessions are not affected.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("stopped", &self.stop.is_cancelled())
            .finish()
    }
}

async fn accept_loop(
    mut listener: Box<dyn Listener>,
    config: ServerConfig,
    stop: CancellationToken,
    tx: mpsc::Sender<Result<Session, SessionError>>,
) {
    let slots = Arc::new(Semaphore::new(config.max_pending_handshakes.max(1)));
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            () = tx.closed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(transport) => {
                let config = config.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let peer = transport.info().peer.clone();
                    match Session::accept(transport, config).await {
                        // Waits for room in the accept queue, holding the handshake slot:
                        // a server whose application does not accept stops accepting.
                        Ok(session) => {
                            let _ = tx.send(Ok(session)).await;
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "handshake failed");
                            let _ = tx.try_send(Err(e));
                        }
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                let _ = tx.try_send(Err(e.into()));
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
    tracing::debug!("accept loop stopped");
}
