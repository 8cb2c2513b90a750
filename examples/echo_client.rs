//! Example: an echo client over TCP; see `echo_server.rs` for how to run the pair.
//!
//! It calls the server's root capability once per word of its command line, then makes
//! 100 calls at once over the same session to show that concurrent exchanges never mix.

use liaison::prelude::*;

/// The key both examples use when `LIAISON_KEY` is unset.
const EXAMPLE_KEY: &[u8] = b"liaison example key: not a secret";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address: Address = args
        .next()
        .unwrap_or_else(|| "tcp://127.0.0.1:4433".into())
        .parse()?;
    let words: Vec<String> = args.collect();
    let key =
        std::env::var("LIAISON_KEY").map_or_else(|_| EXAMPLE_KEY.to_vec(), String::into_bytes);

    let config = ClientConfig::new(PskAuth::new("example", &key)?.with_name("echo-client"));
    let session = Session::connect_to(&address, &TransportConfig::default(), config).await?;
    println!(
        "session {} with {} (protocol version {})",
        session.id(),
        session.peer_identity(),
        session.version()
    );
    let client = Endpoint::new(session, ExchangeConfig::default())?;
    let echo = client.root()?;

    for word in &words {
        let reply = echo.call(Bytes::from(word.clone())).await?;
        println!("{word} -> {}", String::from_utf8_lossy(&reply));
    }

    // 100 calls in flight at once, each on its own exchange.
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..100u32 {
        let call = echo.call(Bytes::from(n.to_string()));
        calls.spawn(async move { (n, call.await) });
    }
    let mut matched = 0;
    while let Some(joined) = calls.join_next().await {
        let (n, reply) = joined?;
        if reply? == n.to_string().as_bytes() {
            matched += 1;
        }
    }
    println!("{matched} of 100 concurrent calls came back on their own exchange");

    let reason = client.close("client done").await;
    println!("{reason}");
    Ok(())
}
