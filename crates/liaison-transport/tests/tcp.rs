//! TCP specifics: ephemeral ports resolved by the listener, host names resolved on connect, addresses in the connection info.

mod common;

use common::{pair, pattern};
use liaison_transport::{Address, HostPort, TransportConfig};

#[tokio::test]
async fn a_host_name_resolves_and_port_zero_is_resolved() {
    let config = TransportConfig::default();
    let mut listener = liaison_transport::bind(&"tcp://127.0.0.1:0".parse().unwrap(), &config)
        .await
        .unwrap();
    let Address::Tcp(bound) = listener.local_addr() else {
        panic!("a tcp listener reports a tcp address");
    };
    assert_ne!(bound.port(), 0);
    let by_name = Address::Tcp(HostPort::new("localhost", bound.port()));
    let (client, server) = tokio::join!(
        liaison_transport::connect(&by_name, &config),
        listener.accept()
    );
    let (client, server) = (client.unwrap(), server.unwrap());
    assert_eq!(
        client.info().peer,
        format!("tcp://127.0.0.1:{}", bound.port())
    );
    assert_eq!(server.info().peer, client.info().local);
    assert_eq!(server.info().tls_peer_certificates, None);
}

#[tokio::test]
async fn batches_of_fed_frames_arrive_after_one_flush() {
    let config = TransportConfig::default();
    let (client, server) = pair(&"tcp://127.0.0.1:0".parse().unwrap(), &config, &config).await;
    let (mut tx, _rx) = client.split();
    let (_s_tx, mut s_rx) = server.split();
    for i in 0..100 {
        tx.feed(pattern(i, 64)).await.unwrap();
    }
    tx.flush().await.unwrap();
    for i in 0..100 {
        assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(i, 64)));
    }
}
