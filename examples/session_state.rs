//! Example: the session-state service, in its three access modes.
//!
//! ```sh
//! cargo run -p liaison --example session_state
//! ```
//!
//! One server keeps users' session states in a store (memory here; `RedbStore` or
//! `RedisStore` to keep them across restarts or share them between servers) and serves the
//! state service on every session. Two clients, on their own sessions over TCP:
//!
//! - read-only: `get`, one exchange, no lock;
//! - writable over one exchange: `update` locks the key, reads, writes, commits;
//! - writable over two exchanges: `lock_split` holds the lock on a first exchange and hands
//!   out a ticket; a put on a second exchange (here from the other client) commits it,
//!   while the first client's own writes wait for the lock.

use std::sync::Arc;

use liaison::prelude::*;

const KEY: &[u8] = b"liaison state example key, not a secret";

async fn client(address: &Address, name: &str) -> Result<StateClient, Box<dyn std::error::Error>> {
    let config = ClientConfig::new(PskAuth::new("example", KEY)?.with_name(name));
    let session = Session::connect_to(address, &TransportConfig::default(), config).await?;
    Ok(StateClient::root(&Endpoint::new(
        session,
        ExchangeConfig::default(),
    )?)?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = StateService::new(Arc::new(MemoryStore::new()), StateConfig::default())?;
    let config = ServerConfig::new(PskAuth::new("example", KEY)?.with_name("state-server"))
        .with_root(RootCapability::new(1, &b"liaison-state/1"[..]));
    let mut server = Server::bind(
        &"tcp://127.0.0.1:0".parse()?,
        &TransportConfig::default(),
        config,
    )
    .await?;
    let address = server.local_addr().clone();
    let serving = service.clone();
    tokio::spawn(async move {
        let mut served = Vec::new();
        while let Ok(session) = server.accept().await {
            if let Ok(endpoint) = serving.serve(session) {
                served.push(endpoint);
            }
        }
    });

    let alice = client(&address, "alice").await?;
    let bob = client(&address, "bob").await?;

    // Writable over one exchange.
    let state = alice
        .update("cart/42", |old| {
            assert!(old.is_none(), "a fresh store");
            Bytes::from_static(b"apples")
        })
        .await?;
    println!("alice wrote {:?} (version {})", state.value, state.version);

    // Read-only.
    let state = bob.get("cart/42").await?;
    println!("bob reads {:?} (version {})", state.value, state.version);

    // Writable over two exchanges: alice holds the lock, bob commits with her ticket.
    let hold = alice.lock_split("cart/42").await?;
    println!(
        "alice holds the lock on {} (ticket {})",
        hold.key(),
        hold.ticket().token_hex()
    );
    let ticket = hold.ticket().clone();
    let version = bob
        .put(&ticket, Bytes::from_static(b"apples, pears"))
        .await?;
    println!("bob committed version {version} under alice's lock");
    println!(
        "alice's hold completed with version {}",
        hold.completed().await?
    );

    // The ticket is spent: a second put with it is refused.
    let error = bob
        .put(&ticket, Bytes::from_static(b"figs"))
        .await
        .unwrap_err();
    println!("a second put with the same ticket: {error}");

    let state = alice.get("cart/42").await?;
    println!("final: {:?} (version {})", state.value, state.version);
    Ok(())
}
