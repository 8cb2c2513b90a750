//! How a state service runs: [`StateConfig`] (limits, lock wait, lease, store key prefix).

use std::time::Duration;

use crate::StateError;

/// Settings of a [`StateService`](crate::StateService). Start from [`Default`] and change
/// what you need with the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use liaison_state::StateConfig;
///
/// let config = StateConfig::default()
///     .with_lock_wait(Duration::from_secs(2))
///     .with_max_state_size(64 << 10);
/// assert_eq!(config.lease, Duration::from_secs(30));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct StateConfig {
    /// Longest key accepted, in bytes.
    pub max_key_len: usize,
    /// Largest state accepted, in bytes. A state also travels in one message, so the
    /// session's `max_frame_payload` (less a few bytes of encoding) bounds it as well.
    pub max_state_size: usize,
    /// How long a writer waits for a key another holder locked before it gets
    /// [`Locked`](crate::StateError::Locked). Readers never wait.
    pub lock_wait: Duration,
    /// The lease of a lock in the store. The server renews it every third of the lease
    /// while the holder's exchange is alive; when the holding server dies, the lock
    /// expires after at most this long.
    pub lease: Duration,
    /// How often a waiting writer, and the holder of a two-exchange lock, look at the
    /// store for changes made by other servers sharing it (changes made through this
    /// service are seen at once).
    pub poll_interval: Duration,
    /// Time to live of a written state (`None`: kept until overwritten).
    pub state_ttl: Option<Duration>,
    /// Prefix of every store key the service uses, so that it can share a store with
    /// other users (session resume, another service).
    pub prefix: String,
}

impl Default for StateConfig {
    /// Keys up to 256 bytes, states up to 512 KiB, a 5 s lock wait, a 30 s lease, a 50 ms
    /// poll interval, no time to live, prefix `liaison-state/`.
    fn default() -> Self {
        Self {
            max_key_len: 256,
            max_state_size: 512 << 10,
            lock_wait: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(50),
            state_ttl: None,
            prefix: "liaison-state/".to_owned(),
        }
    }
}

impl StateConfig {
    /// Sets [`max_key_len`](Self::max_key_len).
    #[must_use]
    pub fn with_max_key_len(mut self, max: usize) -> Self {
        self.max_key_len = max;
        self
    }

    /// Sets [`max_state_size`](Self::max_state_size).
    #[must_use]
    pub fn with_max_state_size(mut self, max: usize) -> Self {
        self.max_state_size = max;
        self
    }

    /// Sets [`lock_wait`](Self::lock_wait).
    #[must_use]
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Sets [`lease`](Self::lease).
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`poll_interval`](Self::poll_interval).
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets [`state_ttl`](Self::state_ttl).
    #[must_use]
    pub fn with_state_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.state_ttl = ttl;
        self
    }

    /// Sets [`prefix`](Self::prefix).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Checks the settings: non-zero limits, a lease of at least 3 ms (it is renewed every
    /// third), a non-zero poll interval and time to live.
    pub fn validate(&self) -> Result<(), StateError> {
        let problem = if self.max_key_len == 0 {
            "max_key_len is zero"
        } else if self.max_state_size == 0 {
            "max_state_size is zero"
        } else if self.lease < Duration::from_millis(3) {
            "the lease is shorter than 3 ms"
        } else if self.poll_interval.is_zero() {
            "poll_interval is zero"
        } else if self.state_ttl.is_some_and(|ttl| ttl.is_zero()) {
            "state_ttl is zero"
        } else {
            return Ok(());
        };
        Err(StateError::InvalidConfig(problem.to_owned()))
    }
}
