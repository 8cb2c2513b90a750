//! Goodput of an ordered liaison session over a lossy link: MiB/s of application payload
//! delivered exactly once and in order, through the sequencer's acks, `Need-Seq` and
//! retransmissions, while the fault injector drops frames in both directions.

use bytes::Bytes;
use liaison_session::{ClientConfig, NoAuth, SequencingMode, ServerConfig, Session};
use liaison_transport::fault::{FaultConfig, FaultyTransport};
use liaison_transport::{memory, Transport};
use liaison_wire::Frame;

use crate::measure::{rate_one, Budget};

/// Payload of one application frame.
const CHUNK: usize = 16 * 1024;

const MIB: f64 = 1024.0 * 1024.0;

/// One end of an in-memory connection losing `loss` of the frames it sends (seeded, so a
/// run replays).
fn lossy(end: memory::MemoryTransport, loss: f64, seed: u64) -> Box<dyn Transport> {
    FaultyTransport::wrap(
        Box::new(end),
        FaultConfig::default().with_seed(seed).with_drop(loss),
    )
}

/// MiB/s of payload the server's application takes from an ordered session whose client
/// sends 16 KiB `Data` frames as fast as the session accepts them, over a memory transport
/// that drops `loss` (0.0 to 1.0) of the frames each way.
pub(crate) async fn goodput(budget: Budget, loss: f64) -> f64 {
    let (a, b) = memory::pair(256, 1 << 20);
    let client_config = ClientConfig::new(NoAuth).with_sequencing(SequencingMode::Ordered);
    let server_config = ServerConfig::new(NoAuth);
    let (client, server) = tokio::try_join!(
        Session::connect(lossy(a, loss, 1), client_config),
        Session::accept(lossy(b, loss, 2), server_config),
    )
    .expect("an ordered session over the lossy memory link");
    let mut incoming = server.take_incoming().expect("the first take");
    let bytes = rate_one(budget, move |counter| async move {
        let receiver = counter.clone();
        tokio::spawn(async move {
            let mut expected = 1u64;
            while let Some(frame) = incoming.recv().await {
                // Ordered mode: the exchange ids come back exactly in sending order.
                debug_assert_eq!(frame.exchange, expected);
                expected += 1;
                receiver.add(u64::try_from(frame.payload.len()).unwrap_or(u64::MAX));
            }
            drop(server);
        });
        let chunk = Bytes::from(vec![7u8; CHUNK]);
        let mut next = 1u64;
        while counter.running() {
            if client.send(Frame::data(next, chunk.clone())).await.is_err() {
                break;
            }
            next += 1;
        }
    })
    .await;
    bytes / MIB
}
