//! Example: an echo server over TCP, authenticated with a pre-shared key.
//!
//! ```sh
//! cargo run -p liaison --example echo_server -- tcp://127.0.0.1:4433
//! cargo run -p liaison --example echo_client -- tcp://127.0.0.1:4433 hello world
//! ```
//!
//! Both take the key from `LIAISON_KEY` (at least 16 bytes); without it they share a
//! fixed example key, which is fine on one machine and nowhere else. Ctrl-C closes every
//! session with a `Bye` and exits.

use liaison::prelude::*;

/// The key both examples use when `LIAISON_KEY` is unset.
const EXAMPLE_KEY: &[u8] = b"liaison example key: not a secret";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address: Address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:4433".into())
        .parse()?;
    let key =
        std::env::var("LIAISON_KEY").map_or_else(|_| EXAMPLE_KEY.to_vec(), String::into_bytes);

    let config = ServerConfig::new(PskAuth::new("example", &key)?.with_name("echo-server"))
        .with_root(RootCapability::new(1, &b"echo/1"[..]));
    let mut server = Server::bind(&address, &TransportConfig::default(), config).await?;
    println!("echo server listening on {}", server.local_addr());

    let mut sessions = Vec::new();
    loop {
        tokio::select! {
            accepted = server.accept() => {
                let session = accepted?;
                println!("session {} from {}", session.id(), session.peer_identity());
                // The root capability answers every call with its request.
                let echo = raw_service_fn(|request: Bytes, _ctx: Context| async move {
                    Ok::<_, String>(request)
                });
                sessions.push(Endpoint::builder(session).root(echo).start()?);
            }
            _ = tokio::signal::ctrl_c() => break,
        }
        sessions.retain(|endpoint| !endpoint.is_terminated());
    }
    server.stop();
    for endpoint in &sessions {
        endpoint.close("server shutting down").await;
    }
    println!("closed {} session(s)", sessions.len());
    Ok(())
}
