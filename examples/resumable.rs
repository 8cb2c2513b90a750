//! Example: a resumable client that survives its server restarting.
//!
//! ```sh
//! cargo run -p liaison --example resumable
//! ```
//!
//! A server keeps its resume records in a redb file. A client opens a resumable session
//! (it reconnects by itself, with backoff) and makes calls. The server instance goes away
//! without a word; a new one opens the same file on the same address; the client's next
//! connection resumes the same session, the new server rebuilds it from the state the
//! client sends, and the calls go on. A call waiting across the restart resolves
//! `Aborted` (peer restarted) instead of hanging.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use liaison::prelude::*;
use liaison::resume::BackoffConfig;
use tokio::task::JoinHandle;

const KEY: &[u8] = b"liaison resume example key, not a secret";

/// One server instance on `address`, with its resume records in `store`: its root
/// capability doubles numbers. Runs until `scope` is cancelled.
async fn server_instance(
    address: &Address,
    store: Arc<dyn Store>,
    scope: &Scope,
) -> Result<(Address, JoinHandle<()>), Box<dyn std::error::Error>> {
    let config = ServerConfig::new(PskAuth::new("example", KEY)?.with_name("server"))
        .with_root(RootCapability::new(1, &b"double/1"[..]))
        .with_resume(ServerResume::new(store, Duration::from_secs(30)))
        .in_scope(scope);
    let mut server = Server::bind(address, &TransportConfig::default(), config).await?;
    let local = server.local_addr().clone();
    let serving = tokio::spawn(async move {
        let mut endpoints = Vec::new();
        while let Ok(session) = server.accept().await {
            match session.resumed_state() {
                Some(state) => println!(
                    "server: rebuilt session {} from the client's state {:?}",
                    session.id(),
                    String::from_utf8_lossy(state)
                ),
                None => println!("server: new session {}", session.id()),
            }
            let double = service_fn(|n: u64, _ctx: Context| async move {
                n.checked_mul(2).ok_or_else(|| "overflow".to_string())
            });
            if let Ok(endpoint) = Endpoint::builder(session).root(double).start() {
                endpoints.push(endpoint);
            }
        }
    });
    Ok((local, serving))
}

/// Removes the example's redb file on the way out.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits until nothing but `store` itself refers to the store (the old instance's sessions
/// have let go of it), so that the file can be opened again.
async fn release(store: Arc<dyn Store>) {
    while Arc::strong_count(&store) > 1 {
        tokio::task::yield_now().await;
    }
}

fn open(path: &Path) -> Result<Arc<dyn Store>, Box<dyn std::error::Error>> {
    Ok(Arc::new(RedbStore::create(path)?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = TempFile(std::env::temp_dir().join(format!(
        "liaison-resumable-example-{}.redb",
        std::process::id()
    )));
    let store = open(&file.0)?;
    let first = Scope::new();
    let (address, serving) =
        server_instance(&"tcp://127.0.0.1:0".parse()?, Arc::clone(&store), &first).await?;

    let resume = ResumeConfig::default()
        .with_backoff(
            BackoffConfig::default()
                .with_delays(Duration::from_millis(5), Duration::from_millis(200)),
        )
        .with_state(|| Bytes::from_static(b"cart: apples, pears"));
    let config =
        ClientConfig::new(PskAuth::new("example", KEY)?.with_name("client")).with_resume(resume);
    let session = Session::connect_to(&address, &TransportConfig::default(), config).await?;
    println!("client: session {} with {address}", session.id());
    let client = Endpoint::new(session, ExchangeConfig::default())?;
    let double = client.root()?.typed::<u64, u64>();
    println!("client: double(21) = {}", double.call(&21).await?);

    // A call the server will never answer: it waits across the restart.
    let (_resolver, waiting) = client.session().register::<()>()?;

    println!("server: going away without a word");
    first.cancel();
    serving.await?;
    release(store).await;
    let second = Scope::new();
    let (_, serving) = server_instance(&address, open(&file.0)?, &second).await?;

    match waiting.await {
        Err(aborted) => println!("client: the waiting call resolved: {}", aborted.reason()),
        Ok(()) => println!("client: the waiting call resolved"),
    }
    println!("client: double(50) = {}", double.call(&50).await?);
    println!(
        "client: same session {}, resumed {} time(s)",
        client.session().id(),
        client.session().resumes()
    );
    client.close("done").await;
    second.cancel();
    serving.await?;
    Ok(())
}
