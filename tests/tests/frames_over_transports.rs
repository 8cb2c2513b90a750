//! `liaison-wire` frames over every `liaison-transport` transport: every kind crosses intact,
//! and a link that corrupts bytes yields typed decode errors, never a panic or a bad frame.

use liaison_tests::{connected_pair, one_frame_of_each_kind};
use liaison_transport::fault::{FaultConfig, FaultyTransport};
use liaison_transport::{memory, LoopbackKind, Transport};
use liaison_wire::{Frame, Limits};

async fn every_kind_crosses(kind: LoopbackKind) {
    let (client, server) = connected_pair(kind).await;
    let (mut tx, _) = client.split();
    let (_, mut rx) = server.split();
    let frames = one_frame_of_each_kind();
    for frame in &frames {
        tx.feed(frame.to_bytes()).await.expect("feed");
    }
    tx.close().await.expect("close");
    let limits = Limits::default();
    for sent in &frames {
        let bytes = rx
            .recv()
            .await
            .expect("recv")
            .expect("a frame, not the end");
        assert_eq!(
            &Frame::decode(bytes, &limits).expect("decodes"),
            sent,
            "over {kind}"
        );
    }
    assert!(rx.recv().await.expect("clean end").is_none(), "over {kind}");
}

#[tokio::test]
async fn every_kind_crosses_memory() {
    every_kind_crosses(LoopbackKind::Memory).await;
}

#[tokio::test]
async fn every_kind_crosses_tcp() {
    every_kind_crosses(LoopbackKind::Tcp).await;
}

#[tokio::test]
async fn every_kind_crosses_unix() {
    every_kind_crosses(LoopbackKind::Unix).await;
}

#[tokio::test]
async fn every_kind_crosses_quic() {
    every_kind_crosses(LoopbackKind::Quic).await;
}

#[tokio::test]
async fn corrupted_frames_are_typed_errors_or_the_original() {
    let (a, b) = memory::pair(4096, 1 << 20);
    let faulty = FaultyTransport::new(
        Box::new(a),
        FaultConfig::default().with_seed(3).with_corrupt(0.5),
    );
    let handle = faulty.handle();
    let (mut tx, _) = Box::new(faulty).split();
    let (_, mut rx) = Box::new(b).split();
    let frames: Vec<Frame> = one_frame_of_each_kind()
        .into_iter()
        .cycle()
        .take(2000)
        .collect();
    let sender = {
        let frames = frames.clone();
        tokio::spawn(async move {
            for frame in &frames {
                tx.send(frame.to_bytes()).await.expect("send");
            }
            tx.close().await.expect("close");
        })
    };
    let limits = Limits::default();
    let (mut intact, mut refused, mut altered) = (0u64, 0u64, 0u64);
    for sent in &frames {
        let bytes = rx.recv().await.expect("recv").expect("a frame");
        match Frame::decode(bytes, &limits) {
            Ok(frame) if &frame == sent => intact += 1,
            // A flipped payload byte leaves a valid frame with a different payload: only the
            // layers above (sequencing checks, codecs) can tell. It must still be well-formed.
            Ok(frame) => {
                frame.validate(&limits).expect("a decoded frame is valid");
                altered += 1;
            }
            Err(_typed) => refused += 1,
        }
    }
    sender.await.expect("sender");
    let stats = handle.stats();
    assert_eq!(intact + refused + altered, 2000);
    assert_eq!(
        refused + altered,
        stats.corrupted,
        "every corrupted frame is noticed or altered"
    );
    assert!(
        refused > 0 && intact > 0,
        "seeded run exercises both paths: {stats:?}"
    );
}
