//! A client session with a `liaison serve` server: connects, finds services through the
//! root directory, and runs calls, echo messages, streams and state reads and writes,
//! checking what comes back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes};
use liaison_exchange::{CapabilityRef, Endpoint, Exchange, Remote, TypedRemote};
use liaison_session::{ClientConfig, ResumeConfig, SequencingMode, Session, TerminationReason};
use liaison_state::{State, StateClient};
use liaison_transport::{Address, QuicConfig, TransportConfig};
use liaison_wire::Codec as _;
use serde_json::json;

use crate::error::CliError;
use crate::options::{AuthArgs, ClientTlsArgs, SessionArgs};
use crate::output::Progress;
use crate::services::{StreamRequest, ECHO, ROOT_DESCRIPTOR, STATE, STREAM};

/// Runs `$op` (an expression using `$client`) and, if a server restart aborted it while the
/// session went on, runs it once more on the rebuilt session. Every command of the client
/// may run twice this way: a call echoes again, a read reads again, and a put writes the
/// same value again.
macro_rules! once_more_after_restart {
    ($client:ident, $op:expr) => {{
        let first = $op;
        match first {
            Err(e) if e.is_peer_restart() && !$client.endpoint.is_terminated() => {
                tracing::info!(error = %e, "the server restarted: running the command again");
                $op
            }
            other => other,
        }
    }};
}

/// An established session with a `liaison serve` server.
pub(crate) struct Client {
    url: Address,
    endpoint: Endpoint,
    directory: TypedRemote<String, CapabilityRef>,
    services: HashMap<String, Remote>,
    echo: Option<Exchange>,
    handshake: Duration,
    /// Server restarts seen: capabilities the old server exported are gone after one.
    restarts: u32,
}

/// What a stream brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamReport {
    /// Messages asked for.
    pub(crate) requested: u64,
    /// Messages received.
    pub(crate) received: u64,
    /// Payload bytes received.
    pub(crate) bytes: u64,
    /// Whether every message carried the next index and the filler asked for.
    pub(crate) intact: bool,
    /// From the request to the end of the stream.
    pub(crate) elapsed: Duration,
}

impl StreamReport {
    /// The report as JSON.
    pub(crate) fn to_json(self) -> serde_json::Value {
        json!({
            "command": "stream",
            "requested": self.requested,
            "received": self.received,
            "bytes": self.bytes,
            "intact": self.intact,
            "millis": self.elapsed.as_secs_f64() * 1e3,
        })
    }

    /// The report as one line of text.
    pub(crate) fn describe(self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "stream: {} of {} messages, {} bytes, {} in {:.1} ms ({:.0} msg/s)",
            self.received,
            self.requested,
            self.bytes,
            if self.intact {
                "all intact and in order"
            } else {
                "NOT intact"
            },
            secs * 1e3,
            self.received as f64 / secs,
        )
    }
}

impl Client {
    /// Connects to `url` and establishes a session asking for `mode`.
    pub(crate) async fn connect(
        url: &Address,
        auth: &AuthArgs,
        session: &SessionArgs,
        tls: &ClientTlsArgs,
        mode: SequencingMode,
        resume: bool,
    ) -> Result<Self, CliError> {
        if matches!(url, Address::Memory(_)) {
            return Err(CliError::Usage(format!(
                "cannot connect to {url}: in-memory addresses live inside one process"
            )));
        }
        let mut transport = TransportConfig::default();
        transport.max_frame = (session.max_payload as usize)
            .saturating_add(liaison_wire::HEADER_LEN)
            .max(transport.max_frame);
        if matches!(url, Address::Quic(_) | Address::QuicDatagram(_)) {
            transport =
                transport.with_quic(QuicConfig::default().with_client_tls(tls.quic_client()?));
        }
        let mut config = ClientConfig::with_authenticator(auth.authenticator("liaison-client")?)
            .with_session(session.session_config()?)
            .with_sequencing(mode);
        config.session.handshake_timeout = session.handshake_timeout;
        if resume {
            config = config.with_resume(ResumeConfig::default());
        }
        let start = Instant::now();
        let established = Session::connect_to(url, &transport, config).await?;
        let handshake = start.elapsed();
        match established.root() {
            Some(root) if root.descriptor.as_ref() == ROOT_DESCRIPTOR => {}
            other => {
                established.close("not a liaison serve directory").await;
                return Err(CliError::Protocol(format!(
                    "{url} is not a `liaison serve` server (root capability {other:?})"
                )));
            }
        }
        let endpoint = Endpoint::new(established, session.exchange_config()?)?;
        let directory = endpoint.root()?.typed::<String, CapabilityRef>();
        Ok(Self {
            url: url.clone(),
            endpoint,
            directory,
            services: HashMap::new(),
            echo: None,
            handshake,
            restarts: 0,
        })
    }

    /// The exchange endpoint.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The capability serving `name`, asked of the directory once.
    pub(crate) async fn service(&mut self, name: &str) -> Result<Remote, CliError> {
        self.forget_after_restart();
        if let Some(remote) = self.services.get(name) {
            return Ok(remote.clone());
        }
        let capability = self.directory.call(&name.to_string()).await?;
        let remote = self.endpoint.remote(capability);
        self.services.insert(name.to_string(), remote.clone());
        Ok(remote)
    }

    /// Drops the capabilities and the echo exchange of a server that has since restarted
    /// (the rebuilt session starts with the root capability only).
    fn forget_after_restart(&mut self) {
        let restarts = self.endpoint.session().link_changes().borrow().restarts;
        if restarts != self.restarts {
            self.restarts = restarts;
            self.services.clear();
            self.echo = None;
        }
    }

    /// A unary call of `service` with `message`.
    pub(crate) async fn call(&mut self, service: &str, message: Bytes) -> Result<Bytes, CliError> {
        once_more_after_restart!(self, self.call_once(service, message.clone()).await)
    }

    async fn call_once(&mut self, service: &str, message: Bytes) -> Result<Bytes, CliError> {
        let remote = self.service(service).await?;
        Ok(remote.call(message).await?)
    }

    /// Sends `message` on the session's long-lived echo exchange and waits for its echo.
    pub(crate) async fn send(&mut self, message: Bytes) -> Result<Bytes, CliError> {
        once_more_after_restart!(self, self.send_once(message.clone()).await)
    }

    async fn send_once(&mut self, message: Bytes) -> Result<Bytes, CliError> {
        self.forget_after_restart();
        if self.echo.is_none() {
            let echo = self.service(ECHO).await?;
            self.echo = Some(echo.begin().await?);
        }
        let Some(exchange) = self.echo.as_mut() else {
            return Err(CliError::Protocol("the echo exchange is not open".into()));
        };
        let outcome = async {
            exchange.send(message).await?;
            exchange
                .recv()
                .await?
                .ok_or_else(|| CliError::Protocol("the echo exchange ended".into()))
        }
        .await;
        if outcome.is_err() {
            // The next `send` opens a fresh exchange.
            self.echo = None;
        }
        outcome
    }

    /// The session-state service of the server.
    pub(crate) async fn states(&mut self) -> Result<StateClient, CliError> {
        Ok(StateClient::new(self.service(STATE).await?))
    }

    /// Reads the state of `key` (no lock).
    pub(crate) async fn state_get(&mut self, key: &str) -> Result<State, CliError> {
        once_more_after_restart!(
            self,
            async { Ok::<_, CliError>(self.states().await?.get(key).await?) }.await
        )
    }

    /// Writes `value` as the state of `key` under the key's lock; returns it with its new
    /// version.
    pub(crate) async fn state_put(&mut self, key: &str, value: Bytes) -> Result<State, CliError> {
        once_more_after_restart!(
            self,
            async {
                let value = value.clone();
                Ok::<_, CliError>(self.states().await?.update(key, |_| value).await?)
            }
            .await
        )
    }

    /// Asks the stream service for `count` messages of `size` filler bytes and checks them.
    pub(crate) async fn stream(
        &mut self,
        count: u64,
        size: u32,
        progress: &mut Progress,
    ) -> Result<StreamReport, CliError> {
        let report = once_more_after_restart!(self, self.stream_once(count, size, progress).await);
        progress.finish();
        report
    }

    async fn stream_once(
        &mut self,
        count: u64,
        size: u32,
        progress: &mut Progress,
    ) -> Result<StreamReport, CliError> {
        let remote = self.service(STREAM).await?;
        let start = Instant::now();
        let request = self
            .endpoint
            .codec()
            .encode(&StreamRequest { count, size })?;
        let mut exchange = remote.begin_with(request).await?;
        exchange.end().await?;
        let (mut received, mut bytes, mut intact) = (0u64, 0u64, true);
        while let Some(mut message) = exchange.recv().await? {
            bytes += message.len() as u64;
            let ok = message.len() == 8 + size as usize && message.get_u64_le() == received;
            intact &= ok;
            received += 1;
            progress.update(received);
        }
        Ok(StreamReport {
            requested: count,
            received,
            bytes,
            intact: intact && received == count,
            elapsed: start.elapsed(),
        })
    }

    /// The session's facts and counters, as text and JSON.
    pub(crate) fn stats(&self) -> (String, serde_json::Value) {
        let session = self.endpoint.session();
        let config = session.config();
        let stats = self.endpoint.stats();
        let peer = &session.transport_info().peer;
        let via = if *peer == self.url.to_string() {
            String::new()
        } else {
            format!(" ({peer})")
        };
        let text = format!(
            "session {} with {}{via}\n  version {}, mode {}, peer {}, handshake {:.1} ms, {}\n  \
             exchanges open: {} outgoing, {} incoming (limit {}, window {}); {} messages buffered",
            session.id(),
            self.url,
            session.version(),
            config.sequencing,
            session.peer_identity(),
            self.handshake.as_secs_f64() * 1e3,
            if session.is_resumable() {
                format!("resumable, resumed {} time(s)", session.resumes())
            } else {
                "not resumable".to_string()
            },
            stats.outgoing,
            stats.incoming,
            stats.limit,
            stats.window,
            stats.buffered_messages,
        );
        let value = json!({
            "command": "stats",
            "session": session.id().to_string(),
            "url": self.url.to_string(),
            "peer_address": session.transport_info().peer,
            "version": session.version(),
            "mode": config.sequencing.to_string(),
            "peer": session.peer_identity().to_string(),
            "handshake_ms": self.handshake.as_secs_f64() * 1e3,
            "outgoing": stats.outgoing,
            "incoming": stats.incoming,
            "limit": stats.limit,
            "window": stats.window,
            "buffered_messages": stats.buffered_messages,
            "resumable": session.is_resumable(),
            "resumes": session.resumes(),
        });
        (text, value)
    }

    /// Closes the session with a `Bye` and returns how it ended.
    pub(crate) async fn close(mut self) -> TerminationReason {
        if let Some(mut echo) = self.echo.take() {
            let _ = echo.end().await;
        }
        self.endpoint.close("client done").await
    }
}
