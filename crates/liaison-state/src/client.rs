//! The client side: [`StateClient`] and the guards of its writable modes, [`StateGuard`]
//! (one exchange) and [`SplitGuard`] (two exchanges).

use std::fmt;

use bytes::Bytes;
use liaison_exchange::{Endpoint, Exchange, Remote};

use crate::protocol::{LockTicket, Reply, Request, State, Update};
use crate::StateError;

/// A handle on a remote [`StateService`](crate::StateService): reads states, and locks,
/// changes and writes them back. Cheap to clone.
///
/// Every operation is one exchange (the put of [`lock_split`](Self::lock_split) a second
/// one); operations run concurrently over one session. When the session ends, pending
/// operations fail with [`StateError::Exchange`] (`Aborted`), and the server releases every
/// lock they held.
#[derive(Clone)]
pub struct StateClient {
    remote: Remote,
}

impl StateClient {
    /// A client of the state service `remote` (the peer's root capability, or a
    /// capability a reply carried).
    pub fn new(remote: Remote) -> Self {
        Self { remote }
    }

    /// A client of the state service the peer of `endpoint` serves as its root capability.
    pub fn root(endpoint: &Endpoint) -> Result<Self, StateError> {
        Ok(Self::new(endpoint.root()?))
    }

    /// The capability.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Read-only: the state of `key`, without any lock (a writer holding the key does not
    /// delay it). [`StateError::NotFound`] if the key has no state.
    pub async fn get(&self, key: &str) -> Result<State, StateError> {
        let reply: Reply = self
            .remote
            .call_typed(&Request::Get { key: key.into() })
            .await?;
        match reply {
            Reply::State(Some(state)) => Ok(state),
            Reply::Failed(failure) => Err(failure.into()),
            other => Err(unexpected("a state", &other)),
        }
    }

    /// Writable over one exchange: locks `key` (waiting as long as the server's
    /// configured lock wait, then [`StateError::Locked`]) and returns its state in a guard
    /// to [`commit`](StateGuard::commit) a new one with. Dropping the guard releases the
    /// lock without writing.
    pub async fn lock(&self, key: &str) -> Result<StateGuard, StateError> {
        let mut exchange = self.open(&Request::Lock { key: key.into() }).await?;
        match next_reply(&mut exchange).await? {
            Reply::State(state) => Ok(StateGuard {
                key: key.into(),
                state,
                exchange,
            }),
            Reply::Failed(failure) => Err(failure.into()),
            other => Err(unexpected("a state", &other)),
        }
    }

    /// Locks `key`, runs `change` on its state (`None`: no state yet) and commits what it
    /// returns: the new state and its version.
    pub async fn update<F>(&self, key: &str, change: F) -> Result<State, StateError>
    where
        F: FnOnce(Option<&State>) -> Bytes,
    {
        let guard = self.lock(key).await?;
        let value = change(guard.current());
        let version = guard.commit(value.clone()).await?;
        Ok(State { value, version })
    }

    /// Writable over two exchanges: locks `key` and returns its state with a
    /// [`LockTicket`], holding the lock while the returned guard (its first exchange) is
    /// alive. Commit with [`SplitGuard::commit`], or with [`put`](Self::put) from any
    /// client of a server sharing the store, then [`SplitGuard::completed`].
    pub async fn lock_split(&self, key: &str) -> Result<SplitGuard, StateError> {
        let mut exchange = self.open(&Request::LockSplit { key: key.into() }).await?;
        match next_reply(&mut exchange).await? {
            Reply::Held { state, ticket } => Ok(SplitGuard {
                key: key.into(),
                state,
                ticket,
                exchange,
                client: self.clone(),
            }),
            Reply::Failed(failure) => Err(failure.into()),
            other => Err(unexpected("a hold", &other)),
        }
    }

    /// The second exchange of the two-exchange mode: commits `state` under the hold
    /// `ticket` names and returns the new version. [`StateError::LockLost`] if the hold
    /// ended first (its exchange or session ended, or the ticket was used).
    pub async fn put(&self, ticket: &LockTicket, state: Bytes) -> Result<u64, StateError> {
        let reply: Reply = self
            .remote
            .call_typed(&Request::Put {
                ticket: ticket.clone(),
                state,
            })
            .await?;
        match reply {
            Reply::Committed { version } => Ok(version),
            Reply::Failed(failure) => Err(failure.into()),
            other => Err(unexpected("a commit", &other)),
        }
    }

    /// Opens an exchange with `request` as its first message, keeping this side open.
    async fn open(&self, request: &Request) -> Result<Exchange, StateError> {
        let mut exchange = self.remote.begin().await?;
        exchange.send_typed(request).await?;
        Ok(exchange)
    }
}

impl fmt::Debug for StateClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateClient")
            .field("remote", &self.remote)
            .finish()
    }
}

/// The next reply on `exchange`.
async fn next_reply(exchange: &mut Exchange) -> Result<Reply, StateError> {
    match exchange.recv_typed::<Reply>().await? {
        Some(reply) => Ok(reply),
        None => Err(StateError::Protocol(
            "the service ended the exchange without an answer".into(),
        )),
    }
}

/// Asks the server to release the lock held by `exchange` without writing, and waits for
/// its confirmation.
async fn release(exchange: &mut Exchange) -> Result<(), StateError> {
    exchange.send_typed(&Update::Release).await?;
    exchange.end().await?;
    match next_reply(exchange).await? {
        Reply::Released => Ok(()),
        Reply::Failed(failure) => Err(failure.into()),
        other => Err(unexpected("a release", &other)),
    }
}

fn unexpected(wanted: &str, got: &Reply) -> StateError {
    StateError::Protocol(format!("expected {wanted}, got {got:?}"))
}

/// A key locked over one exchange ([`StateClient::lock`]): its state, and the way to write
/// a new one. Dropping the guard cancels the exchange: the server releases the lock and
/// writes nothing.
pub struct StateGuard {
    key: String,
    state: Option<State>,
    exchange: Exchange,
}

impl StateGuard {
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The state's bytes (`None`: the key has no state yet).
    pub fn state(&self) -> Option<&Bytes> {
        self.state.as_ref().map(|state| &state.value)
    }

    /// The state and its version.
    pub fn current(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// The version read (`None`: the key has no state yet).
    pub fn version(&self) -> Option<u64> {
        self.state.as_ref().map(|state| state.version)
    }

    /// Writes `state` and releases the lock: the new version, or why nothing was written.
    pub async fn commit(mut self, state: impl Into<Bytes>) -> Result<u64, StateError> {
        let update = Update::Commit {
            state: state.into(),
        };
        self.exchange.send_typed(&update).await?;
        self.exchange.end().await?;
        match next_reply(&mut self.exchange).await? {
            Reply::Committed { version } => Ok(version),
            Reply::Failed(failure) => Err(failure.into()),
            other => Err(unexpected("a commit", &other)),
        }
    }

    /// Releases the lock without writing, and waits for the server to confirm.
    pub async fn release(mut self) -> Result<(), StateError> {
        release(&mut self.exchange).await
    }
}

impl fmt::Debug for StateGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateGuard")
            .field("key", &self.key)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// A key locked over two exchanges ([`StateClient::lock_split`]): the first exchange, held
/// open, keeps the lock; a put on a second exchange commits. Dropping the guard ends the
/// first exchange: the server releases the lock, and a later put with the ticket fails
/// with [`StateError::LockLost`].
pub struct SplitGuard {
    key: String,
    state: Option<State>,
    ticket: LockTicket,
    exchange: Exchange,
    client: StateClient,
}

impl SplitGuard {
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The state's bytes (`None`: the key has no state yet).
    pub fn state(&self) -> Option<&Bytes> {
        self.state.as_ref().map(|state| &state.value)
    }

    /// The state and its version.
    pub fn current(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// The version read (`None`: the key has no state yet).
    pub fn version(&self) -> Option<u64> {
        self.state.as_ref().map(|state| state.version)
    }

    /// The ticket a put commits with ([`StateClient::put`]), possibly over another
    /// session.
    pub fn ticket(&self) -> &LockTicket {
        &self.ticket
    }

    /// Commits `state` with a put over a second exchange of the same client, then waits
    /// for the first exchange to complete: the new version.
    pub async fn commit(self, state: impl Into<Bytes>) -> Result<u64, StateError> {
        let client = self.client.clone();
        self.commit_via(&client, state).await
    }

    /// Commits `state` with a put through `client` (another session, possibly to another
    /// server sharing the store), then waits for the first exchange to complete.
    pub async fn commit_via(
        self,
        client: &StateClient,
        state: impl Into<Bytes>,
    ) -> Result<u64, StateError> {
        // On failure the guard drops, which ends the hold if the put did not claim it.
        let version = client.put(&self.ticket, state.into()).await?;
        let completed = self.completed().await?;
        if completed != version {
            return Err(StateError::Protocol(format!(
                "the put committed version {version}, the hold completed with {completed}"
            )));
        }
        Ok(version)
    }

    /// Waits until a put (made elsewhere with the [`ticket`](Self::ticket)) completes the
    /// hold: the version it committed, or why it failed.
    pub async fn completed(mut self) -> Result<u64, StateError> {
        let reply = next_reply(&mut self.exchange).await?;
        // The server ended its side with the answer: close the exchange gracefully.
        let _ = self.exchange.end().await;
        match reply {
            Reply::Completed { version } => Ok(version),
            Reply::Failed(failure) => Err(failure.into()),
            other => Err(unexpected("a completion", &other)),
        }
    }

    /// Releases the lock without writing, and waits for the server to confirm.
    pub async fn release(mut self) -> Result<(), StateError> {
        release(&mut self.exchange).await
    }
}

impl fmt::Debug for SplitGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitGuard")
            .field("key", &self.key)
            .field("version", &self.version())
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}
