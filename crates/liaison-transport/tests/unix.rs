//! Unix socket files: stale files replaced on bind, live listeners and foreign files left alone, files removed on drop.
#![cfg(unix)]

mod common;

use common::{pattern, unix_path};
use liaison_transport::{bind, connect, Address, TransportConfig, TransportError};

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let path = unix_path();
    // A listener that died without removing its file.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let addr = Address::Unix(path.clone());
    let config = TransportConfig::default();
    assert!(matches!(
        connect(&addr, &config).await,
        Err(TransportError::ConnectionRefused { .. })
    ));
    let mut listener = bind(&addr, &config).await.unwrap();
    let (client, server) = tokio::join!(connect(&addr, &config), listener.accept());
    let (mut c_tx, _c_rx) = client.unwrap().split();
    let (_s_tx, mut s_rx) = server.unwrap().split();
    c_tx.send(pattern(1, 5)).await.unwrap();
    assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(1, 5)));
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let path = unix_path();
    std::fs::write(&path, b"precious").unwrap();
    let result = bind(&Address::Unix(path.clone()), &TransportConfig::default()).await;
    assert!(matches!(result, Err(TransportError::AddressInUse { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn the_socket_file_goes_with_the_listener() {
    let path = unix_path();
    let listener = bind(&Address::Unix(path.clone()), &TransportConfig::default())
        .await
        .unwrap();
    assert_eq!(listener.local_addr(), Address::Unix(path.clone()));
    assert!(path.exists());
    drop(listener);
    assert!(!path.exists());
}
