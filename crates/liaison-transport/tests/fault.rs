//! The fault-injection wrapper: seeded replay, fault rates, reorder/duplicate/corrupt shapes, cut, delay on paused time.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{pair, pattern};
use liaison_transport::fault::{FaultConfig, FaultHandle, FaultStats, FaultyTransport};
use liaison_transport::{
    memory, Address, FrameReceiver, FrameSender, Transport, TransportConfig, TransportError,
};

type Halves = (Box<dyn FrameSender>, Box<dyn FrameReceiver>);

/// Wraps the sending end `a` of a memory pair with `config`, returning its halves, the peer's
/// halves and the handle.
fn faulty_pair(config: FaultConfig) -> (Halves, Halves, FaultHandle) {
    let (a, b) = memory::pair(64, 1 << 20);
    let a = FaultyTransport::new(Box::new(a), config);
    let handle = a.handle();
    (Box::new(a).split(), Box::new(b).split(), handle)
}

/// Sends `count` frames of `len` bytes through a faulty end, closes, and returns everything the
/// peer received before the end of stream, with the stats.
async fn run(config: FaultConfig, count: u32, len: usize) -> (Vec<Bytes>, FaultStats) {
    let ((mut tx, _rx), (_peer_tx, mut peer_rx), handle) = faulty_pair(config);
    let send = async {
        for i in 0..count {
            tx.send(pattern(i, len)).await.unwrap();
        }
        tx.close().await.unwrap();
    };
    let receive = async {
        let mut got = Vec::new();
        while let Some(frame) = peer_rx.recv().await.unwrap() {
            got.push(frame);
        }
        got
    };
    let ((), got) = tokio::join!(send, receive);
    (got, handle.stats())
}

fn everything(seed: u64) -> FaultConfig {
    FaultConfig::default()
        .with_seed(seed)
        .with_drop(0.1)
        .with_duplicate(0.1)
        .with_reorder(0.1)
        .with_corrupt(0.1)
}

#[tokio::test]
async fn same_seed_replays_the_same_faults() {
    let (first, first_stats) = run(everything(42), 500, 16).await;
    let (second, second_stats) = run(everything(42), 500, 16).await;
    assert_eq!(first, second);
    assert_eq!(first_stats, second_stats);
    assert!(first_stats.dropped > 0 && first_stats.duplicated > 0);
    assert!(first_stats.reordered > 0 && first_stats.corrupted > 0);

    let (other, other_stats) = run(everything(43), 500, 16).await;
    assert_ne!(first, other);
    assert_ne!(first_stats, other_stats);
}

#[tokio::test]
async fn drop_rate_is_honoured() {
    const COUNT: u32 = 10_000;
    let (got, stats) = run(FaultConfig::default().with_seed(7).with_drop(0.2), COUNT, 8).await;
    assert_eq!(stats.frames, u64::from(COUNT));
    assert!(
        (1_700..=2_300).contains(&stats.dropped),
        "dropped {} of {COUNT}",
        stats.dropped
    );
    assert_eq!(
        u64::try_from(got.len()).unwrap(),
        u64::from(COUNT) - stats.dropped
    );
    // What survives arrives in order and intact.
    let mut next = 0;
    for frame in &got {
        while pattern(next, 8) != *frame {
            next += 1;
            assert!(next < COUNT, "a frame arrived out of order or altered");
        }
        next += 1;
    }
}

#[tokio::test]
async fn duplicate_sends_twice() {
    let (got, stats) = run(FaultConfig::default().with_duplicate(1.0), 10, 4).await;
    let expected: Vec<Bytes> = (0..10)
        .flat_map(|i| [pattern(i, 4), pattern(i, 4)])
        .collect();
    assert_eq!(got, expected);
    assert_eq!(stats.duplicated, 10);
}

#[tokio::test]
async fn reorder_releases_a_held_frame_after_the_next() {
    // Nine frames: pairs swap, and the last held frame comes out on close.
    let (got, stats) = run(FaultConfig::default().with_reorder(1.0), 9, 4).await;
    let order: Vec<u32> = vec![1, 0, 3, 2, 5, 4, 7, 6, 8];
    let expected: Vec<Bytes> = order.iter().map(|&i| pattern(i, 4)).collect();
    assert_eq!(got, expected);
    assert_eq!(stats.reordered, 5);
}

#[tokio::test]
async fn corrupt_flips_exactly_one_byte() {
    let (got, stats) = run(
        FaultConfig::default().with_seed(3).with_corrupt(1.0),
        50,
        32,
    )
    .await;
    assert_eq!(got.len(), 50);
    for (i, frame) in (0..).zip(&got) {
        let original = pattern(i, 32);
        let differing = original
            .iter()
            .zip(frame.iter())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 1, "frame {i}");
    }
    assert_eq!(stats.corrupted, 50);
    // An empty frame has nothing to flip.
    let (got, stats) = run(FaultConfig::default().with_corrupt(1.0), 3, 0).await;
    assert_eq!(got, vec![Bytes::new(); 3]);
    assert_eq!(stats.corrupted, 0);
}

#[tokio::test]
async fn properties_reflect_the_faults() {
    let info = |config: FaultConfig| {
        let (a, _b) = memory::pair(1, 10);
        FaultyTransport::new(Box::new(a), config).info().properties
    };
    let clean = info(FaultConfig::default());
    assert!(clean.reliable && clean.ordered);
    assert_eq!(clean.max_frame, 10);
    assert!(!info(FaultConfig::default().with_drop(0.5)).reliable);
    assert!(!info(FaultConfig::default().with_corrupt(0.5)).reliable);
    assert!(!info(FaultConfig::default().with_duplicate(0.5)).reliable);
    let reordering = info(FaultConfig::default().with_reorder(0.5));
    assert!(reordering.reliable && !reordering.ordered);
    // Out-of-range probabilities are clamped, not a panic.
    let clamped = info(FaultConfig::default().with_drop(7.0).with_reorder(f64::NAN));
    assert!(!clamped.reliable && clamped.ordered);
}

/// Sends through a wrapped end with `cut_after(5)` and checks the cut as both ends see it.
async fn cut_after_five(
    mut tx: Box<dyn FrameSender>,
    mut rx: Box<dyn FrameReceiver>,
    mut peer_tx: Box<dyn FrameSender>,
    mut peer_rx: Box<dyn FrameReceiver>,
    handle: &FaultHandle,
    check_peer_send: bool,
) {
    for i in 0..5 {
        tx.send(pattern(i, 100)).await.unwrap();
    }
    assert!(handle.stats().cut);
    let err = tx.send(pattern(5, 100)).await.unwrap_err();
    assert!(
        matches!(err, TransportError::ConnectionLost { .. }),
        "{err:?}"
    );
    for i in 0..5 {
        assert_eq!(peer_rx.recv().await.unwrap(), Some(pattern(i, 100)));
    }
    assert!(peer_rx.recv().await.unwrap_err().is_abrupt());
    assert!(rx.recv().await.unwrap_err().is_abrupt());
    if check_peer_send {
        assert!(peer_tx.send(pattern(0, 1)).await.unwrap_err().is_abrupt());
    }
    assert_eq!(handle.stats().frames, 5);
}

#[tokio::test]
async fn cut_after_n_cuts_exactly_after_n_on_memory() {
    let ((tx, rx), (peer_tx, peer_rx), handle) =
        faulty_pair(FaultConfig::default().with_cut_after(5));
    cut_after_five(tx, rx, peer_tx, peer_rx, &handle, true).await;
}

#[tokio::test]
async fn cut_after_n_cuts_exactly_after_n_on_tcp() {
    let config = TransportConfig::default();
    let addr: Address = "tcp://127.0.0.1:0".parse().unwrap();
    let (client, server) = pair(&addr, &config, &config).await;
    let client = FaultyTransport::new(client, FaultConfig::default().with_cut_after(5));
    let handle = client.handle();
    let (tx, rx) = Box::new(client).split();
    let (peer_tx, peer_rx) = server.split();
    cut_after_five(tx, rx, peer_tx, peer_rx, &handle, false).await;
}

#[tokio::test]
async fn cut_after_zero_cuts_at_once() {
    let ((mut tx, _rx), (_peer_tx, mut peer_rx), handle) =
        faulty_pair(FaultConfig::default().with_cut_after(0));
    assert!(handle.stats().cut);
    assert!(tx.send(pattern(0, 1)).await.unwrap_err().is_abrupt());
    assert!(peer_rx.recv().await.unwrap_err().is_abrupt());
}

#[tokio::test]
async fn handle_cut_reaches_an_idle_peer() {
    let ((mut tx, mut rx), (_peer_tx, mut peer_rx), handle) = faulty_pair(FaultConfig::default());
    tx.send(pattern(1, 1)).await.unwrap();
    // The local receiver is waiting when the cut happens.
    let (local, ()) = tokio::join!(rx.recv(), async { handle.cut() });
    assert!(local.unwrap_err().is_abrupt());
    assert_eq!(peer_rx.recv().await.unwrap(), Some(pattern(1, 1)));
    assert!(peer_rx.recv().await.unwrap_err().is_abrupt());
    assert!(tx.send(pattern(2, 1)).await.unwrap_err().is_abrupt());
}

#[tokio::test]
async fn receiving_side_is_untouched() {
    // Faults apply to what the wrapped end sends, not to what it receives.
    let (a, b) = memory::pair(64, 1024);
    let b = FaultyTransport::wrap(Box::new(b), FaultConfig::default().with_drop(1.0));
    let (mut a_tx, _a_rx) = Box::new(a).split();
    let (_b_tx, mut b_rx) = b.split();
    for i in 0..20 {
        a_tx.send(pattern(i, 8)).await.unwrap();
    }
    for i in 0..20 {
        assert_eq!(b_rx.recv().await.unwrap(), Some(pattern(i, 8)));
    }
}

#[tokio::test(start_paused = true)]
async fn delay_runs_on_tokio_time() {
    let delay = Duration::from_millis(100);
    let start = tokio::time::Instant::now();
    let (got, stats) = run(FaultConfig::default().with_delay(delay), 10, 4).await;
    let elapsed = start.elapsed();
    assert_eq!(got.len(), 10);
    assert_eq!(stats.delayed, 10);
    assert!(
        elapsed >= delay * 10 && elapsed < delay * 11,
        "elapsed {elapsed:?}"
    );
}
