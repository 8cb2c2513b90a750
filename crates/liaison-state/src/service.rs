//! The server side: [`StateService`], the capability that serves the three access modes of
//! the [`protocol`](crate::protocol) over a [`Store`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use liaison_exchange::{Context, Endpoint, Exchange, ExchangeError, Service};
use liaison_resume::{ResumeError, Store};
use liaison_session::Session;
use liaison_wire::{BincodeCodec, Codec, WireError};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tracing::{debug, warn};

use crate::lock::{renew_period, LockGuard, Waiters};
use crate::protocol::{hex, Failure, LockTicket, Reply, Request, State, Update};
use crate::{StateConfig, StateError};

/// What a put reports to the holder of the first exchange of the two-exchange mode.
type PutOutcome = Result<u64, Failure>;

/// A hold of the two-exchange mode as the store keeps it (under `{prefix}h/{token}`), for
/// the put, which may run on another server.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HoldRecord {
    /// The locked key.
    key: String,
    /// The version the holder read (`None`: absent).
    expected: Option<u64>,
}

/// The session-state service: a [`Service`] that keeps keyed states in a [`Store`] and
/// serves them read-only, writable over one exchange, and writable over two exchanges
/// (see [`protocol`](crate::protocol)).
///
/// Cheap to clone; clones share everything. Serve one instance on every session — as the
/// root capability ([`serve`](Self::serve), [`EndpointBuilder::root`]) or
/// [`export`](Endpoint::export)ed next to other services — so that a writer waiting for a
/// lock wakes as soon as a holder on any session releases it. Several servers (processes)
/// may share one store (Redis): locks, holds and versions live in it.
///
/// [`EndpointBuilder::root`]: liaison_exchange::EndpointBuilder::root
#[derive(Clone)]
pub struct StateService {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: StateConfig,
    pub(crate) waiters: Waiters,
    /// Holds of the two-exchange mode whose first exchange runs here: a put on this server
    /// hands its outcome over directly.
    holds: Mutex<HashMap<[u8; 16], oneshot::Sender<PutOutcome>>>,
    /// Encodes the store's bookkeeping records.
    records: BincodeCodec,
}

impl StateService {
    /// A service over `store` with `config` (checked with [`StateConfig::validate`]).
    pub fn new(store: Arc<dyn Store>, config: StateConfig) -> Result<Self, StateError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                waiters: Waiters::default(),
                holds: Mutex::new(HashMap::new()),
                records: BincodeCodec::new(1 << 20),
            }),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &StateConfig {
        &self.inner.config
    }

    /// Starts the exchange layer on `session` with this service as its root capability.
    /// Must be called within a tokio runtime.
    pub fn serve(&self, session: Session) -> Result<Endpoint, ExchangeError> {
        Endpoint::builder(session).root(self.clone()).start()
    }
}

impl fmt::Debug for StateService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateService")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Failure {
    /// A store error as the wire reports it.
    pub(crate) fn from_store(error: ResumeError) -> Self {
        Self::Store {
            message: error.to_string(),
        }
    }
}

impl Inner {
    fn value_key(&self, key: &str) -> String {
        format!("{}v/{key}", self.config.prefix)
    }

    fn hold_key(&self, token: &[u8; 16]) -> String {
        format!("{}h/{}", self.config.prefix, hex(token))
    }

    fn done_key(&self, token: &[u8; 16]) -> String {
        format!("{}d/{}", self.config.prefix, hex(token))
    }

    /// Checks a key against the limits.
    fn check_key(&self, key: &str) -> Result<(), Failure> {
        if key.is_empty() {
            return Err(Failure::InvalidKey {
                reason: "the key is empty".into(),
            });
        }
        if key.len() > self.config.max_key_len {
            return Err(Failure::KeyTooLong {
                len: to_u64(key.len()),
                max: to_u64(self.config.max_key_len),
            });
        }
        if key.chars().any(char::is_control) {
            return Err(Failure::InvalidKey {
                reason: "the key holds a control character".into(),
            });
        }
        Ok(())
    }

    /// Checks a state's size against the limit.
    fn check_state(&self, state: &Bytes) -> Result<(), Failure> {
        if state.len() > self.config.max_state_size {
            return Err(Failure::StateTooLarge {
                size: to_u64(state.len()),
                max: to_u64(self.config.max_state_size),
            });
        }
        Ok(())
    }

    /// The state of `key`, if any.
    async fn load(&self, key: &str) -> Result<Option<State>, Failure> {
        let stored = self
            .store
            .get(&self.value_key(key))
            .await
            .map_err(Failure::from_store)?;
        Ok(stored.map(|stored| State {
            value: stored.value,
            version: stored.version,
        }))
    }

    /// Writes `state` under `key` if its version is still `expected`, after checking that
    /// `lock` is still held (renewing it).
    async fn persist(
        &self,
        lock: &LockGuard,
        key: &str,
        state: Bytes,
        expected: Option<u64>,
    ) -> PutOutcome {
        self.check_state(&state)?;
        if !lock.renew().await.map_err(Failure::from_store)? {
            return Err(Failure::LockLost { key: key.into() });
        }
        let version = self
            .store
            .put(&self.value_key(key), state, expected, self.config.state_ttl)
            .await
            .map_err(|error| match error {
                // Reported under the application's key, not the store's.
                ResumeError::Conflict {
                    expected, current, ..
                } => Failure::Conflict {
                    key: key.into(),
                    expected,
                    current,
                },
                other => Failure::from_store(other),
            })?;
        debug!(key, version, "state committed");
        Ok(version)
    }

    fn holds(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], oneshot::Sender<PutOutcome>>> {
        // Every use is one map call: a panic elsewhere cannot leave it half-changed.
        self.holds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `n` as a u64 (lengths always fit).
fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Encodes `reply`; a reply too large for one message becomes `StateTooLarge`.
fn encode_reply(codec: &impl Codec, reply: &Reply) -> Result<Bytes, WireError> {
    match codec.encode(reply) {
        Err(WireError::TooLarge { size, max, .. }) => {
            codec.encode(&Reply::Failed(Failure::StateTooLarge { size, max }))
        }
        other => other,
    }
}

/// How long a finished exchange waits for the client to end its side.
const LINGER: Duration = Duration::from_secs(10);

/// Sends `reply` and ends this side's direction, then waits (up to [`LINGER`]) for the client
/// to end its own or drop the exchange: ending the handler first would cancel the exchange,
/// and a cancel discards the reply if the client has not read it yet (PROTOCOL.md §9.4).
async fn finish(exchange: &mut Exchange, ctx: &Context, reply: Reply) {
    let sent = match encode_reply(ctx.codec(), &reply) {
        Ok(bytes) => exchange.send_last(bytes).await,
        Err(error) => {
            warn!(%error, "a reply could not be encoded");
            exchange.fail(error.to_string()).await
        }
    };
    if let Err(error) = sent {
        debug!(%error, "the reply could not be sent");
        return;
    }
    let drain = async {
        while exchange.state().peer_can_send() {
            if !matches!(exchange.recv().await, Ok(Some(_))) {
                break;
            }
        }
    };
    if tokio::time::timeout(LINGER, drain).await.is_err() {
        debug!("the client kept its side of a finished exchange open");
    }
}

/// Sends `reply` and keeps the direction open; `false` if it could not be sent (the
/// exchange or the session ended), or was too large and a failure was sent instead.
async fn send(exchange: &mut Exchange, ctx: &Context, reply: &Reply) -> bool {
    match ctx.codec().encode(reply) {
        Ok(bytes) => exchange.send(bytes).await.is_ok(),
        Err(WireError::TooLarge { size, max, .. }) => {
            finish(
                exchange,
                ctx,
                Reply::Failed(Failure::StateTooLarge { size, max }),
            )
            .await;
            false
        }
        Err(error) => {
            warn!(%error, "a reply could not be encoded");
            let _ = exchange.fail(error.to_string()).await;
            false
        }
    }
}

fn malformed(detail: impl Into<String>) -> Reply {
    Reply::Failed(Failure::Malformed {
        detail: detail.into(),
    })
}

#[async_trait]
impl Service for StateService {
    async fn handle(&self, mut exchange: Exchange, ctx: &Context) {
        let first = tokio::select! {
            biased;
            first = exchange.recv() => first,
            () = ctx.cancelled() => return,
        };
        let request = match first {
            Ok(Some(request)) => request,
            Ok(None) => {
                finish(
                    &mut exchange,
                    ctx,
                    malformed("the exchange ended before its request"),
                )
                .await;
                return;
            }
            Err(_) => return,
        };
        let request = match ctx.codec().decode::<Request>(&request) {
            Ok(request) => request,
            Err(error) => {
                debug!(%error, "undecodable request");
                finish(
                    &mut exchange,
                    ctx,
                    malformed(format!("undecodable request: {error}")),
                )
                .await;
                return;
            }
        };
        let inner = &self.inner;
        match request {
            Request::Get { key } => {
                let reply = match inner.check_key(&key) {
                    Err(failure) => Reply::Failed(failure),
                    Ok(()) => match inner.load(&key).await {
                        Ok(Some(state)) => Reply::State(Some(state)),
                        Ok(None) => Reply::Failed(Failure::NotFound { key }),
                        Err(failure) => Reply::Failed(failure),
                    },
                };
                finish(&mut exchange, ctx, reply).await;
            }
            Request::Lock { key } => self.lock(exchange, ctx, key).await,
            Request::LockSplit { key } => self.lock_split(exchange, ctx, key).await,
            Request::Put { ticket, state } => {
                let reply = match self.put(ticket, state).await {
                    Ok(version) => Reply::Committed { version },
                    Err(failure) => Reply::Failed(failure),
                };
                finish(&mut exchange, ctx, reply).await;
            }
        }
    }
}

impl StateService {
    /// Takes the lock of `key` for a writer and loads its state. `None` when the exchange
    /// ended first (the guard's drop releases a lock taken meanwhile); a failure was
    /// already sent.
    async fn take(
        &self,
        exchange: &mut Exchange,
        ctx: &Context,
        key: &str,
    ) -> Option<(LockGuard, Option<State>)> {
        let inner = &self.inner;
        if let Err(failure) = inner.check_key(key) {
            finish(exchange, ctx, Reply::Failed(failure)).await;
            return None;
        }
        let lock = LockGuard::new(Arc::clone(inner), inner.value_key(key));
        let acquired = tokio::select! {
            acquired = lock.acquire(key) => acquired,
            () = ctx.cancelled() => return None,
        };
        if let Err(failure) = acquired {
            lock.forget();
            finish(exchange, ctx, Reply::Failed(failure)).await;
            return None;
        }
        match inner.load(key).await {
            Ok(state) => Some((lock, state)),
            Err(failure) => {
                lock.release().await;
                finish(exchange, ctx, Reply::Failed(failure)).await;
                None
            }
        }
    }

    /// Writable over one exchange (protocol, "Writable over one full-duplex exchange").
    async fn lock(&self, mut exchange: Exchange, ctx: &Context, key: String) {
        let Some((lock, state)) = self.take(&mut exchange, ctx, &key).await else {
            return;
        };
        let expected = state.as_ref().map(|state| state.version);
        if !send(&mut exchange, ctx, &Reply::State(state)).await {
            lock.release().await;
            return;
        }
        let period = renew_period(self.inner.config.lease);
        let mut renew = interval_at(Instant::now() + period, period);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = exchange.recv() => {
                    let reply = match message {
                        Ok(Some(message)) => match ctx.codec().decode::<Update>(&message) {
                            Ok(Update::Commit { state }) => {
                                match self.inner.persist(&lock, &key, state, expected).await {
                                    Ok(version) => Reply::Committed { version },
                                    Err(failure) => Reply::Failed(failure),
                                }
                            }
                            Ok(Update::Release) => Reply::Released,
                            Err(error) => malformed(format!("undecodable update: {error}")),
                        },
                        Ok(None) => {
                            debug!(key, "the writer ended without a commit");
                            lock.release().await;
                            let _ = exchange.end().await;
                            return;
                        }
                        Err(error) => {
                            debug!(key, %error, "the writer's exchange ended");
                            lock.release().await;
                            return;
                        }
                    };
                    lock.release().await;
                    finish(&mut exchange, ctx, reply).await;
                    return;
                }
                _ = renew.tick() => match lock.renew().await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!(key, "the lease lapsed and another holder took the lock");
                        lock.forget();
                        finish(&mut exchange, ctx, Reply::Failed(Failure::LockLost { key })).await;
                        return;
                    }
                    Err(error) => warn!(key, %error, "renewing a lease failed"),
                },
                () = ctx.cancelled() => {
                    debug!(key, "the writer's exchange was cancelled");
                    lock.release().await;
                    return;
                }
            }
        }
    }

    /// The first exchange of the two-exchange mode (protocol, "Writable over two
    /// exchanges").
    async fn lock_split(&self, mut exchange: Exchange, ctx: &Context, key: String) {
        let inner = &self.inner;
        let Some((lock, state)) = self.take(&mut exchange, ctx, &key).await else {
            return;
        };
        let token = lock.token();
        let hold_key = inner.hold_key(&token);
        let record = HoldRecord {
            key: key.clone(),
            expected: state.as_ref().map(|state| state.version),
        };
        let record = match inner.records.encode(&record) {
            Ok(record) => record,
            Err(error) => {
                lock.release().await;
                finish(&mut exchange, ctx, malformed(error.to_string())).await;
                return;
            }
        };
        let (tx, mut outcome) = oneshot::channel();
        inner.holds().insert(token, tx);
        let lease = inner.config.lease;
        let mut hold_version = match inner
            .store
            .put(&hold_key, record.clone(), None, Some(lease))
            .await
        {
            Ok(version) => version,
            Err(error) => {
                inner.holds().remove(&token);
                lock.release().await;
                finish(
                    &mut exchange,
                    ctx,
                    Reply::Failed(Failure::from_store(error)),
                )
                .await;
                return;
            }
        };
        let ticket = LockTicket {
            key: key.clone(),
            token,
        };
        if !send(&mut exchange, ctx, &Reply::Held { state, ticket }).await {
            self.abandon(lock, &token).await;
            return;
        }
        debug!(key, "hold registered");
        let period = renew_period(lease);
        let mut renew = interval_at(Instant::now() + period, period);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let poll_every = inner.config.poll_interval;
        let mut poll = interval_at(Instant::now() + poll_every, poll_every);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                biased;
                result = &mut outcome => break match result {
                    Ok(result) => result,
                    Err(_) => self.await_done(&key, &token, None).await,
                },
                () = ctx.cancelled() => {
                    debug!(key, "the holder's exchange was cancelled");
                    self.abandon(lock, &token).await;
                    return;
                }
                message = exchange.recv() => {
                    let reply = match message {
                        Ok(Some(message)) => match ctx.codec().decode::<Update>(&message) {
                            Ok(Update::Release) => Some(Reply::Released),
                            Ok(_) => Some(malformed("a commit travels in a put exchange")),
                            Err(error) => Some(malformed(format!("undecodable update: {error}"))),
                        },
                        Ok(None) | Err(_) => None,
                    };
                    debug!(key, "the holder's exchange ended before the put");
                    if self.abandon(lock, &token).await {
                        match reply {
                            Some(reply) => finish(&mut exchange, ctx, reply).await,
                            None => { let _ = exchange.end().await; }
                        }
                        return;
                    }
                    // A put claimed the hold first: report its outcome.
                    let result = self.await_done(&key, &token, Some(outcome)).await;
                    finish(&mut exchange, ctx, completion(result)).await;
                    return;
                }
                _ = renew.tick() => {
                    // The hold first: once a put claimed it, the lock is the put's.
                    match inner.store.put(&hold_key, record.clone(), Some(hold_version), Some(lease)).await {
                        Ok(version) => hold_version = version,
                        Err(ResumeError::Conflict { .. }) => {
                            break self.await_done(&key, &token, Some(outcome)).await;
                        }
                        Err(error) => warn!(key, %error, "renewing a hold failed"),
                    }
                    match lock.renew().await {
                        Ok(true) => {}
                        Ok(false) => {
                            warn!(key, "the lease lapsed and another holder took the lock");
                            if self.abandon_hold(&token).await {
                                lock.forget();
                                finish(&mut exchange, ctx, Reply::Failed(Failure::LockLost { key })).await;
                                return;
                            }
                            break self.await_done(&key, &token, Some(outcome)).await;
                        }
                        Err(error) => warn!(key, %error, "renewing a lease failed"),
                    }
                }
                _ = poll.tick() => match inner.store.get(&hold_key).await {
                    Ok(Some(_)) => {}
                    Ok(None) => break self.await_done(&key, &token, Some(outcome)).await,
                    Err(error) => warn!(key, %error, "looking at a hold failed"),
                },
            }
        };
        // The put released the lock; releasing by this owner again changes nothing unless
        // the renewal above took it back in between.
        inner.holds().remove(&token);
        lock.release().await;
        finish(&mut exchange, ctx, completion(result)).await;
    }

    /// Ends a hold whose first exchange ended: `true` if it was still unclaimed (it is
    /// deleted, the lock released); `false` if a put claimed it first (the put releases).
    async fn abandon(&self, lock: LockGuard, token: &[u8; 16]) -> bool {
        if self.abandon_hold(token).await {
            lock.release().await;
            true
        } else {
            // Owned by the put now, which unlocks by the same owner.
            lock.forget();
            false
        }
    }

    /// Deletes the hold unless a put claimed it: `true` if it was deleted here.
    async fn abandon_hold(&self, token: &[u8; 16]) -> bool {
        let inner = &self.inner;
        let claimed_here = match inner.store.delete(&inner.hold_key(token)).await {
            Ok(deleted) => deleted,
            Err(error) => {
                // The hold expires with its lease; until then a put may still use it.
                warn!(%error, "deleting a hold failed");
                true
            }
        };
        if claimed_here {
            inner.holds().remove(token);
        }
        claimed_here
    }

    /// Waits for the outcome of the put that claimed the hold: handed over directly by a
    /// put on this server, or read from the store when it ran on another. A put that never
    /// reports within a lease (its server died mid-commit) counts as a lost lock.
    async fn await_done(
        &self,
        key: &str,
        token: &[u8; 16],
        mut local: Option<oneshot::Receiver<PutOutcome>>,
    ) -> PutOutcome {
        let inner = &self.inner;
        let done_key = inner.done_key(token);
        let deadline = Instant::now() + inner.config.lease;
        let lost = || Failure::LockLost { key: key.into() };
        loop {
            match inner.store.get(&done_key).await {
                Ok(Some(record)) => {
                    let _ = inner.store.delete(&done_key).await;
                    return inner
                        .records
                        .decode::<PutOutcome>(&record.value)
                        .unwrap_or_else(|_| Err(lost()));
                }
                Ok(None) => {}
                Err(error) => warn!(key, %error, "reading a put's outcome failed"),
            }
            if Instant::now() >= deadline {
                return Err(lost());
            }
            let wait = tokio::time::sleep(inner.config.poll_interval);
            match local.as_mut() {
                Some(receiver) => tokio::select! {
                    result = receiver => match result {
                        Ok(result) => return result,
                        Err(_) => local = None,
                    },
                    () = wait => {}
                },
                None => wait.await,
            }
        }
    }

    /// The second exchange of the two-exchange mode: claims the hold `ticket` names,
    /// persists `state` under the holder's lock, releases it, and reports to the holder.
    async fn put(&self, ticket: LockTicket, state: Bytes) -> PutOutcome {
        let inner = &self.inner;
        let key = ticket.key;
        let lost = || Failure::LockLost { key: key.clone() };
        inner.check_key(&key)?;
        inner.check_state(&state)?;
        let hold_key = inner.hold_key(&ticket.token);
        let stored = inner
            .store
            .get(&hold_key)
            .await
            .map_err(Failure::from_store)?
            .ok_or_else(lost)?;
        let record: HoldRecord = inner.records.decode(&stored.value).map_err(|_| lost())?;
        if record.key != key {
            return Err(lost());
        }
        // The claim: of a put and the holder's end, whoever deletes the hold wins.
        if !inner
            .store
            .delete(&hold_key)
            .await
            .map_err(Failure::from_store)?
        {
            return Err(lost());
        }
        // The claimed hold's lock, under the holder's owner token; released on every path.
        let lock = LockGuard::with_token(Arc::clone(inner), inner.value_key(&key), ticket.token);
        let result = inner.persist(&lock, &key, state, record.expected).await;
        lock.release().await;
        let local = inner.holds().remove(&ticket.token);
        match local {
            Some(holder) => {
                let _ = holder.send(result.clone());
            }
            None => match inner.records.encode(&result) {
                Ok(outcome) => {
                    let done_key = inner.done_key(&ticket.token);
                    if let Err(error) = inner
                        .store
                        .set(&done_key, outcome, Some(inner.config.lease))
                        .await
                    {
                        warn!(key, %error, "recording a put's outcome for its holder failed");
                    }
                }
                Err(error) => warn!(key, %error, "encoding a put's outcome failed"),
            },
        }
        result
    }
}

/// What the first exchange of the two-exchange mode reports once a put claimed its hold.
fn completion(result: PutOutcome) -> Reply {
    match result {
        Ok(version) => Reply::Completed { version },
        Err(failure) => Reply::Failed(failure),
    }
}
