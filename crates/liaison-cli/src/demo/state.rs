//! The session-state part of the demo: writers on several sessions update one key at the
//! same time, each under the key's lock, and no update is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_exchange::Endpoint;
use liaison_resume::MemoryStore;
use liaison_session::{ClientConfig, PskAuth, RootCapability, ServerConfig, Session};
use liaison_state::{StateClient, StateConfig, StateService};
use liaison_transport::memory;

use crate::error::CliError;

/// What the concurrent writers left behind.
#[derive(Debug)]
pub(crate) struct StateReport {
    pub(crate) writers: u64,
    pub(crate) handshake: Duration,
    /// The key's version at the end: one per write.
    pub(crate) version: u64,
    /// Writers whose entry is in the final state.
    pub(crate) present: u64,
    /// Entries found more than once.
    pub(crate) duplicated: u64,
    pub(crate) elapsed: Duration,
}

/// `writers` clients, each on its own session with one shared state service, append their
/// name to the same key at once through locked updates.
pub(crate) async fn concurrent_updates(
    key: &[u8; 32],
    writers: u64,
) -> Result<StateReport, CliError> {
    let service = StateService::new(Arc::new(MemoryStore::new()), StateConfig::default())?;
    let start = Instant::now();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for n in 0..writers {
        let (a, b) = memory::pair(64, 1 << 20);
        let (client, server) = tokio::try_join!(
            Session::connect(
                Box::new(a),
                ClientConfig::new(PskAuth::new("demo", key)?.with_name(format!("writer-{n}")))
            ),
            Session::accept(
                Box::new(b),
                ServerConfig::new(PskAuth::new("demo", key)?.with_name("state-server"))
                    .with_root(RootCapability::new(1, &b"liaison-state/1"[..]))
            ),
        )?;
        servers.push(service.serve(server)?);
        clients.push(Endpoint::new(client, Default::default())?);
    }
    let handshake = start.elapsed() / u32::try_from(writers.max(1)).unwrap_or(u32::MAX);
    let mut updates = tokio::task::JoinSet::new();
    for (n, endpoint) in clients.iter().enumerate() {
        let states = StateClient::root(endpoint)?;
        updates.spawn(async move {
            states
                .update("basket", move |old| {
                    let mut value = old.map(|s| s.value.to_vec()).unwrap_or_default();
                    value.extend_from_slice(format!("writer-{n};").as_bytes());
                    Bytes::from(value)
                })
                .await
        });
    }
    while let Some(done) = updates.join_next().await {
        done.map_err(|e| CliError::Check(format!("update task: {e}")))??;
    }
    let last = StateClient::root(&clients[0])?.get("basket").await?;
    let text = String::from_utf8_lossy(&last.value).into_owned();
    let entries: Vec<&str> = text.split(';').filter(|e| !e.is_empty()).collect();
    let mut present = 0;
    for n in 0..writers {
        present += u64::from(entries.contains(&format!("writer-{n}").as_str()));
    }
    let duplicated = entries.len() as u64 - present.min(entries.len() as u64);
    for client in &clients {
        client.close("demo done").await;
    }
    drop(servers);
    Ok(StateReport {
        writers,
        handshake,
        version: last.version,
        present,
        duplicated,
        elapsed: start.elapsed(),
    })
}
