//! Example: a chat room over exchanges.
//!
//! ```sh
//! cargo run -p liaison --example chat
//! ```
//!
//! A server offers a chat room as its root capability. Three clients (alice, bob, carol)
//! connect over TCP, each with its own pre-shared-key identity, and each joins the room
//! with one long-lived exchange: what a member sends on it goes to every other member, on
//! theirs, tagged with the sender's authenticated name. Every member says two lines; the
//! example ends when each has heard the other members' four.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use liaison::prelude::*;
use tokio::sync::mpsc;

const KEY: &[u8] = b"liaison chat example key, not a secret";
const MEMBERS: [&str; 3] = ["alice", "bob", "carol"];
const LINES: usize = 2;

/// The room: every member's outbound queue, by exchange id.
#[derive(Default)]
struct Room {
    members: Mutex<HashMap<(String, u64), mpsc::Sender<Bytes>>>,
}

impl Room {
    fn broadcast(&self, from: &(String, u64), line: &Bytes) {
        let text = format!("{}: {}", from.0, String::from_utf8_lossy(line));
        let members = self
            .members
            .lock()
            .expect("no panic while holding the lock");
        for (member, queue) in members.iter() {
            if member != from {
                // A member whose queue is full misses the line rather than stalling the room.
                let _ = queue.try_send(Bytes::from(text.clone()));
            }
        }
    }
}

/// Each exchange is one member: lines in are broadcast, the others' lines go out.
struct ChatRoom(Arc<Room>);

#[async_trait]
impl Service for ChatRoom {
    async fn handle(&self, exchange: Exchange, ctx: &Context) {
        let name = match ctx.session().peer_identity() {
            PeerIdentity::PreSharedKey { name, .. } => name.clone(),
            other => other.to_string(),
        };
        let me = (name, ctx.exchange_id());
        let (tx, mut outbound) = mpsc::channel::<Bytes>(64);
        let _ = tx.try_send(Bytes::from(format!("welcome, {}", me.0)));
        self.0
            .members
            .lock()
            .expect("no panic while holding the lock")
            .insert(me.clone(), tx);
        let (mut sender, mut receiver) = exchange.split();
        let forward = tokio::spawn(async move {
            while let Some(line) = outbound.recv().await {
                if sender.send(line).await.is_err() {
                    return;
                }
            }
            let _ = sender.end().await;
        });
        while let Ok(Some(line)) = receiver.recv().await {
            self.0.broadcast(&me, &line);
        }
        // The member left: drop its queue, which ends its outbound direction.
        self.0
            .members
            .lock()
            .expect("no panic while holding the lock")
            .remove(&me);
        let _ = forward.await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let transport = TransportConfig::default();
    let config = ServerConfig::new(PskAuth::new("chat", KEY)?.with_name("room"))
        .with_root(RootCapability::new(1, &b"chat/1"[..]));
    let mut server = Server::bind(&"tcp://127.0.0.1:0".parse()?, &transport, config).await?;
    let address = server.local_addr().clone();
    println!("chat room on {address}");

    let room = Arc::new(Room::default());
    let accepting = tokio::spawn(async move {
        let mut served = Vec::new();
        while let Ok(session) = server.accept().await {
            if let Ok(endpoint) = Endpoint::builder(session)
                .root(ChatRoom(room.clone()))
                .start()
            {
                served.push(endpoint);
            }
        }
    });

    // Everyone joins before anyone speaks, so nobody misses a line.
    let mut joined = Vec::new();
    for name in MEMBERS {
        let config = ClientConfig::new(PskAuth::new("chat", KEY)?.with_name(name));
        let client = Endpoint::new(
            Session::connect_to(&address, &transport, config).await?,
            ExchangeConfig::default(),
        )?;
        let mut exchange = client.root()?.begin().await?;
        // The room welcomes a member once it is registered.
        let welcome = exchange.recv().await?.unwrap_or_default();
        println!("{name} joined: {}", String::from_utf8_lossy(&welcome));
        joined.push((name, client, exchange));
    }

    let expected = (MEMBERS.len() - 1) * LINES;
    let mut talking = tokio::task::JoinSet::new();
    for (name, client, exchange) in joined {
        talking.spawn(async move {
            let (mut sender, mut receiver) = exchange.split();
            for n in 1..=LINES {
                sender
                    .send(Bytes::from(format!("line {n} from {name}")))
                    .await?;
            }
            let mut heard = Vec::new();
            while heard.len() < expected {
                match receiver.recv().await? {
                    Some(line) => heard.push(String::from_utf8_lossy(&line).into_owned()),
                    None => break,
                }
            }
            // Leave: end our direction, and wait for the room to end its own, which it does
            // after it has taken everything we sent.
            sender.end().await?;
            while receiver.recv().await?.is_some() {}
            client.close("bye").await;
            Ok::<_, ExchangeError>((name, heard))
        });
    }
    while let Some(done) = talking.join_next().await {
        let (name, heard) = done??;
        println!("{name} heard {} lines:", heard.len());
        for line in heard {
            println!("    {line}");
        }
    }
    accepting.abort();
    Ok(())
}
