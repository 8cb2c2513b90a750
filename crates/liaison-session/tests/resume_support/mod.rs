//! What the resume suites share: a bound on every awaited outcome and the session timers.

use std::time::Duration;

use bytes::Bytes;
use liaison_session::proto::{Connection, Event, ResumeTicket};
use liaison_session::{ClientConfig, SessionConfig, TerminationReason};
use liaison_transport::Transport;
use liaison_wire::FrameKind;

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

/// Drives a resume attempt by hand over `transport`; a `Resume` frame it sends is replaced
/// by `replay` if given. `Ok` with whether the server rebuilt the session (its record only
/// in the store), or why the attempt was refused.
pub(crate) async fn attempt(
    config: &ClientConfig,
    ticket: ResumeTicket,
    transport: Box<dyn Transport>,
    replay: Option<Bytes>,
) -> Result<bool, TerminationReason> {
    let now = || tokio::time::Instant::now().into_std();
    let mut conn = Connection::client_resume(
        config,
        ticket,
        None,
        Box::new(<rand::rngs::StdRng as rand::SeedableRng>::from_entropy()),
        now(),
    )
    .expect("attempt");
    let (mut tx, mut rx) = transport.split();
    loop {
        while let Some(mut frame) = conn.poll_transmit(now()) {
            if frame.kind == FrameKind::Resume {
                if let Some(payload) = &replay {
                    frame.payload = payload.clone();
                }
            }
            let _ = tx.send(frame.to_bytes()).await;
        }
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Resumed { restarted, .. } => return Ok(restarted),
                Event::Terminated(reason) => return Err(reason),
                _ => {}
            }
        }
        match bounded("attempt", rx.recv()).await {
            Ok(Some(bytes)) => conn.handle_bytes(now(), bytes),
            _ => conn.handle_transport_closed(),
        }
    }
}
