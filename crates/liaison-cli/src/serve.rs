//! `liaison serve`: listens on one or more addresses and serves the echo, stream and
//! session-state services on every authenticated session (resumable when the client asks,
//! with records in the store), until Ctrl-C (or SIGTERM) closes them all with
//! a `Bye`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Args;
use liaison_exchange::{Endpoint, ExchangeConfig};
use liaison_session::{
    RootCapability, SequencingMode, Server, ServerConfig, ServerResume, Session,
};
use liaison_state::{StateConfig, StateService};
use liaison_transport::{Address, QuicConfig, TransportConfig};
use serde_json::json;

use crate::certs::ServerCert;
use crate::error::CliError;
use crate::options::{AuthArgs, ModeArg, SessionArgs};
use crate::output::Output;
use crate::services::{directory, ROOT_DESCRIPTOR};
use crate::store::StoreSpec;

/// Options of `liaison serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen: tcp://HOST:PORT, unix://PATH, quic://HOST:PORT or
    /// quic+dgram://HOST:PORT, one or more. Port 0 picks a free port; the first line
    /// printed names every bound address. mem:// is refused here: in-memory addresses live
    /// inside one process (`liaison demo` and the tests use them).
    #[arg(long = "listen", value_name = "URL", required = true, num_args = 1..)]
    listen: Vec<Address>,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    session: SessionArgs,
    /// Sequencing modes clients may ask for, comma-separated. quic+dgram listeners accept
    /// only the sequenced ones (datagrams get lost).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "none,ordered,unordered"
    )]
    mode: Vec<ModeArg>,
    /// PEM certificate chain presented on QUIC listeners (with --key). Without it, a
    /// self-signed certificate is generated at start and its fingerprint printed.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// Where session states live: mem (this process), redb:PATH (a file, kept across
    /// restarts) or a redis:// URL such as redis://127.0.0.1:6379/0 (shared by several servers).
    #[arg(long, value_name = "STORE", default_value = "mem", value_parser = StoreSpec::parse)]
    store: StoreSpec,
    /// Seconds a resumable session whose connection dropped is kept for its client to
    /// resume (its record lives in --store).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = crate::options::parse_secs)]
    keep_detached: std::time::Duration,
    /// Write the QUIC certificate as PEM to this file, for clients' `--ca`.
    #[arg(long, value_name = "FILE")]
    cert_out: Option<PathBuf>,
}

/// The live sessions of the server, closed together at shutdown.
#[derive(Clone, Default)]
struct Sessions {
    inner: Arc<Mutex<SessionsInner>>,
}

#[derive(Default)]
struct SessionsInner {
    next: u64,
    live: HashMap<u64, Endpoint>,
    shutting_down: bool,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionsInner> {
        // Nothing panics while holding the lock, so a poisoned one still holds valid data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves the directory on `session` until it ends.
    fn start(&self, session: Session, config: ExchangeConfig, state: StateService) {
        let (id, peer, identity, mode, rebuilt) = (
            session.id(),
            session.transport_info().peer.clone(),
            session.peer_identity().to_string(),
            session.config().sequencing,
            session.resumed_state().is_some(),
        );
        let endpoint = match Endpoint::builder(session)
            .config(config)
            .root(directory(state))
            .start()
        {
            Ok(endpoint) => endpoint,
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "cannot serve the session");
                return;
            }
        };
        let key = {
            let mut inner = self.lock();
            if inner.shutting_down {
                drop(inner);
                tokio::spawn(async move { endpoint.close("server shutting down").await });
                return;
            }
            inner.next += 1;
            let key = inner.next;
            inner.live.insert(key, endpoint.clone());
            key
        };
        if rebuilt {
            tracing::info!(session = %id, %peer, %identity, %mode, "session rebuilt from the client's state");
        } else {
            tracing::info!(session = %id, %peer, %identity, %mode, "session established");
        }
        let sessions = self.clone();
        tokio::spawn(async move {
            let reason = endpoint.closed().await;
            sessions.lock().live.remove(&key);
            tracing::info!(session = %id, %reason, "session ended");
        });
    }

    /// Closes every live session with a `Bye` and waits for each to end; returns how many.
    async fn close_all(&self, reason: &str) -> usize {
        let endpoints: Vec<Endpoint> = {
            let mut inner = self.lock();
            inner.shutting_down = true;
            inner.live.drain().map(|(_, endpoint)| endpoint).collect()
        };
        let mut closing = tokio::task::JoinSet::new();
        for endpoint in endpoints {
            let reason = reason.to_string();
            closing.spawn(async move { endpoint.close(reason).await });
        }
        let mut closed = 0;
        while let Some(outcome) = closing.join_next().await {
            closed += usize::from(outcome.is_ok());
        }
        closed
    }
}

/// The names a generated certificate covers: localhost, the loopback addresses, and every
/// QUIC listener's host that is not a wildcard.
fn certificate_names(listen: &[Address]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for address in listen {
        if let Address::Quic(hp) | Address::QuicDatagram(hp) = address {
            let host = hp.host().to_string();
            let wildcard = hp.ip().is_some_and(|ip| ip.is_unspecified());
            if !wildcard && !names.contains(&host) {
                names.push(host);
            }
        }
    }
    names
}

/// Runs the server until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: ServeArgs, out: Output) -> Result<(), CliError> {
    if let Some(mem) = args.listen.iter().find(|a| matches!(a, Address::Memory(_))) {
        return Err(CliError::Usage(format!(
            "cannot serve {mem}: in-memory addresses live inside one process; use tcp://, unix:// or quic://"
        )));
    }
    let authenticator = args.auth.authenticator("liaison-server")?;
    let session_config = args.session.session_config()?;
    let exchange_config = args.session.exchange_config()?;
    let modes: Vec<SequencingMode> = args.mode.iter().copied().map(Into::into).collect();
    let store = args.store.open().await?;
    let state = StateService::new(Arc::clone(&store), StateConfig::default())?;
    let resume = ServerResume::new(store, args.keep_detached);

    let quic = args
        .listen
        .iter()
        .any(|a| matches!(a, Address::Quic(_) | Address::QuicDatagram(_)));
    let cert = match (&args.cert, &args.key, quic) {
        (Some(cert), Some(key), _) => Some(ServerCert::load(cert, key)?),
        (_, _, true) => Some(ServerCert::self_signed(certificate_names(&args.listen))?),
        _ => None,
    };
    if let (Some(cert), Some(path)) = (&cert, &args.cert_out) {
        cert.write_pem(path)?;
    }
    let mut transport = TransportConfig::default();
    transport.max_frame = (args.session.max_payload as usize)
        .saturating_add(liaison_wire::HEADER_LEN)
        .max(transport.max_frame);
    if let Some(cert) = &cert {
        transport = transport.with_quic(QuicConfig::default().with_server_tls(cert.tls.clone()));
    }

    let sessions = Sessions::default();
    let mut servers = Vec::new();
    for address in &args.listen {
        let modes = if matches!(address, Address::QuicDatagram(_)) {
            let sequenced: Vec<_> = modes.iter().copied().filter(|m| m.is_sequenced()).collect();
            if sequenced.is_empty() {
                return Err(CliError::Usage(format!(
                    "{address} loses datagrams: allow --mode ordered or unordered on it"
                )));
            }
            sequenced
        } else {
            modes.clone()
        };
        let config = ServerConfig::with_authenticator(Arc::clone(&authenticator))
            .with_session(session_config.clone())
            .with_root(RootCapability::new(1, ROOT_DESCRIPTOR))
            .with_resume(resume.clone())
            .with_sequencing_modes(modes);
        servers.push(Server::bind(address, &transport, config).await?);
    }
    let bound: Vec<String> = servers.iter().map(|s| s.local_addr().to_string()).collect();

    let fingerprint = cert.as_ref().map(|c| c.fingerprint.to_string());
    out.emit(
        &format!("listening on {} (store {})", bound.join(" "), args.store),
        &json!({
            "event": "listening",
            "addresses": bound,
            "cert_sha256": fingerprint,
            "cert_pem": args.cert_out.as_ref().map(|p| p.display().to_string()),
            "store": args.store.to_string(),
        }),
    );
    if let Some(cert) = &cert {
        let origin = if cert.generated {
            "self-signed, generated now"
        } else {
            "loaded"
        };
        let written = args
            .cert_out
            .as_ref()
            .map(|p| format!("; PEM written to {}", p.display()))
            .unwrap_or_default();
        out.text(&out.dim(&format!(
            "quic certificate sha256 {} ({origin}{written})",
            cert.fingerprint
        )));
    }

    let mut accepting = tokio::task::JoinSet::new();
    for mut server in servers {
        let sessions = sessions.clone();
        let state = state.clone();
        accepting.spawn(async move {
            while let Some(outcome) = server.next_handshake().await {
                match outcome {
                    Ok(session) => sessions.start(session, exchange_config, state.clone()),
                    Err(e) => tracing::warn!(listener = %server.local_addr(), error = %e, "handshake failed"),
                }
            }
        });
    }

    shutdown_signal().await?;
    accepting.abort_all();
    while accepting.join_next().await.is_some() {}
    let closed = sessions.close_all("server shutting down").await;
    out.emit(
        &format!("shut down: {closed} session(s) closed"),
        &json!({ "event": "shutdown", "sessions_closed": closed }),
    );
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix.
async fn shutdown_signal() -> Result<(), CliError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate =
            signal(SignalKind::terminate()).map_err(|e| CliError::io("cannot watch SIGTERM", e))?;
        tokio::select! {
            outcome = tokio::signal::ctrl_c() => outcome.map_err(|e| CliError::io("cannot watch Ctrl-C", e)),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| CliError::io("cannot watch Ctrl-C", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_cover_the_quic_hosts() {
        let listen: Vec<Address> = [
            "quic://0.0.0.0:0",
            "quic://[::2]:9",
            "quic://node.example:1",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let names = certificate_names(&listen);
        assert!(names.contains(&"::2".to_string()), "{names:?}");
        assert!(names.contains(&"node.example".to_string()), "{names:?}");
        assert!(!names.contains(&"0.0.0.0".to_string()), "{names:?}");
        assert!(names.contains(&"localhost".to_string()));
    }
}
