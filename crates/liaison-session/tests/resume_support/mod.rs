//! What the resume suites share: a bound on every awaited outcome and the session timers.

use std::time::Duration;

use liaison_session::SessionConfig;

/// Generous bound on each awaited outcome: reaching it is a failure, not a wait.
pub(crate) const BOUND: Duration = Duration::from_secs(60);

/// Awaits `future`, failing the test with `what` if it takes longer than [`BOUND`].
pub(crate) async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: not done within {BOUND:?}"),
    }
}

/// Timers for resume tests: keepalive 5 s, idle timeout 30 s, handshake deadline 10 s.
pub(crate) fn session_config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.keepalive_interval = Duration::from_secs(5);
    config.idle_timeout = Duration::from_secs(30);
    config.handshake_timeout = Duration::from_secs(10);
    config
}
