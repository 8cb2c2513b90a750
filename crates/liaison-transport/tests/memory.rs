//! The memory transport's own rules: the `mem://` registry, backpressure, and reconnecting through a connector.

mod common;

use bytes::Bytes;
use common::{pattern, unique};
use futures_util::FutureExt;
use liaison_transport::{
    bind, connect, memory, Address, AddressConnector, Connector, FrameReceiver, FrameSender,
    TransportConfig, TransportError,
};

#[tokio::test]
async fn a_name_is_taken_until_its_listener_drops() {
    let addr = Address::Memory(unique("taken"));
    let config = TransportConfig::default();
    let listener = bind(&addr, &config).await.unwrap();
    assert_eq!(listener.local_addr(), addr);
    assert!(matches!(
        bind(&addr, &config).await,
        Err(TransportError::AddressInUse { .. })
    ));
    drop(listener);
    assert!(matches!(
        connect(&addr, &config).await,
        Err(TransportError::ConnectionRefused { .. })
    ));
    let again = bind(&addr, &config).await.unwrap();
    assert_eq!(again.local_addr(), addr);
}

#[tokio::test]
async fn accepted_connections_outlive_the_listener() {
    let addr = Address::Memory(unique("outlive"));
    let config = TransportConfig::default();
    let mut listener = bind(&addr, &config).await.unwrap();
    let client = connect(&addr, &config).await.unwrap();
    let server = listener.accept().await.unwrap();
    drop(listener);
    let (mut c_tx, _c_rx) = client.split();
    let (_s_tx, mut s_rx) = server.split();
    c_tx.send(pattern(1, 3)).await.unwrap();
    assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(1, 3)));
}

#[tokio::test]
async fn a_connection_never_accepted_is_lost() {
    let addr = Address::Memory(unique("never-accepted"));
    let config = TransportConfig::default();
    let listener = bind(&addr, &config).await.unwrap();
    let client = connect(&addr, &config).await.unwrap();
    drop(listener);
    let (_c_tx, mut c_rx) = client.split();
    assert!(c_rx.recv().await.unwrap_err().is_abrupt());
}

#[tokio::test]
async fn a_full_channel_makes_the_sender_wait() {
    let (a, b) = memory::pair(2, 64);
    let (mut tx, _a_rx) = a.into_split();
    let (_b_tx, mut rx) = b.into_split();
    tx.send(pattern(0, 1)).await.unwrap();
    tx.send(pattern(1, 1)).await.unwrap();
    // The third frame does not fit: its future stays pending; dropped, it leaves the frame
    // queued, and the next flush hands it over once there is room.
    assert!(tx.send(pattern(2, 1)).now_or_never().is_none());
    assert_eq!(rx.recv().await.unwrap(), Some(pattern(0, 1)));
    assert!(tx.flush().now_or_never().is_some());
    assert_eq!(rx.recv().await.unwrap(), Some(pattern(1, 1)));
    assert_eq!(rx.recv().await.unwrap(), Some(pattern(2, 1)));
}

#[tokio::test]
async fn frames_fed_together_arrive_in_order_within_the_capacity() {
    let (a, b) = memory::pair(3, 64);
    let (mut tx, _a_rx) = a.into_split();
    let (_b_tx, mut rx) = b.into_split();
    // Fed frames wait for the flush; a queue as large as the capacity is handed over at once.
    tx.feed(pattern(0, 1)).await.unwrap();
    tx.feed(pattern(1, 1)).await.unwrap();
    assert!(rx.recv().now_or_never().is_none());
    tx.flush().await.unwrap();
    // One frame of room is left: a batch of two waits until the receiver takes one.
    tx.feed(pattern(2, 1)).await.unwrap();
    tx.feed(pattern(3, 1)).await.unwrap();
    assert!(tx.flush().now_or_never().is_none());
    assert_eq!(rx.recv().await.unwrap(), Some(pattern(0, 1)));
    assert_eq!(rx.recv().await.unwrap(), Some(pattern(1, 1)));
    tx.flush().await.unwrap();
    for i in 2..4 {
        assert_eq!(rx.recv().await.unwrap(), Some(pattern(i, 1)));
    }
    tx.close().await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), None);
}

#[tokio::test]
async fn a_sender_waiting_for_room_learns_the_receiver_is_gone() {
    let (a, b) = memory::pair(1, 64);
    let (mut tx, _a_rx) = a.into_split();
    let (_b_tx, rx) = b.into_split();
    tx.send(pattern(0, 1)).await.unwrap();
    let waiting = tokio::spawn(async move { tx.send(pattern(1, 1)).await });
    tokio::task::yield_now().await;
    drop(rx);
    let result = waiting.await.unwrap();
    assert!(result.unwrap_err().is_abrupt());
}

#[tokio::test]
async fn each_end_enforces_its_own_limit() {
    let addr = Address::Memory(unique("limits"));
    let mut listener = bind(&addr, &TransportConfig::default().with_max_frame(8))
        .await
        .unwrap();
    let client = connect(&addr, &TransportConfig::default().with_max_frame(16))
        .await
        .unwrap();
    let server = listener.accept().await.unwrap();
    assert_eq!(client.info().properties.max_frame, 16);
    assert_eq!(server.info().properties.max_frame, 8);
    assert_eq!(server.info().local, addr.to_string());
    assert_eq!(client.info().peer, addr.to_string());
}

#[tokio::test]
async fn a_connector_reconnects() {
    let addr = Address::Memory(unique("reconnect"));
    let config = TransportConfig::default();
    let mut listener = bind(&addr, &config).await.unwrap();
    let connector: Box<dyn Connector> = Box::new(AddressConnector::new(addr, config));
    for round in 0..3u32 {
        let client = connector.connect().await.unwrap();
        let server = listener.accept().await.unwrap();
        let (mut c_tx, _c_rx) = client.split();
        let (_s_tx, mut s_rx) = server.split();
        c_tx.send(pattern(round, 4)).await.unwrap();
        assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(round, 4)));
        // Dropping the connection is abrupt for the server; the next round connects afresh.
        drop(c_tx);
        assert!(s_rx.recv().await.unwrap_err().is_abrupt());
    }
}

#[tokio::test]
async fn unclean_end_is_not_end_of_stream() {
    let (a, b) = memory::pair(4, 64);
    let (mut tx, rx) = a.into_split();
    let (_b_tx, mut b_rx) = b.into_split();
    tx.send(Bytes::from_static(b"last")).await.unwrap();
    drop((tx, rx));
    assert_eq!(
        b_rx.recv().await.unwrap(),
        Some(Bytes::from_static(b"last"))
    );
    assert!(matches!(
        b_rx.recv().await,
        Err(TransportError::ConnectionLost { .. })
    ));
}
