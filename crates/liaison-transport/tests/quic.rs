//! QUIC TLS: verified peer chains, mutual TLS, wrong or unnamed certificates, the dangerous option, PEM files, configuration errors.

mod common;

use common::{pair, pattern, quic_config, server_tls, unique};
use liaison_transport::{
    bind, connect, Address, AddressConnector, Connector, QuicClientTls, QuicConfig, QuicServerTls,
    TlsIdentity, TransportConfig, TransportError,
};

fn any_port() -> Address {
    "quic://127.0.0.1:0".parse().unwrap()
}

fn with_tls(server: Option<QuicServerTls>, client: QuicClientTls) -> TransportConfig {
    let mut quic = QuicConfig::default().with_client_tls(client);
    quic.server_tls = server;
    TransportConfig::default().with_quic(quic)
}

#[tokio::test]
async fn the_client_sees_the_verified_server_chain() {
    let config = quic_config(1024);
    let (client, server) = pair(&any_port(), &config, &config).await;
    assert_eq!(
        client.info().tls_peer_certificates,
        Some(vec![server_tls().cert_der().clone()])
    );
    // The server did not ask for a client certificate.
    assert_eq!(server.info().tls_peer_certificates, None);
    assert!(client.info().peer.starts_with("quic://127.0.0.1:"));
}

#[tokio::test]
async fn mutual_tls_exposes_the_client_chain() {
    let client_identity = TlsIdentity::self_signed(&["client.example"]).unwrap();
    let server = server_tls()
        .clone()
        .require_client_certificates(vec![client_identity.cert_der().clone()]);
    let trust_server = QuicClientTls::trust_certificates(vec![server.cert_der().clone()]);
    let server_config = with_tls(Some(server), trust_server.clone());
    let client_config = with_tls(None, trust_server.with_identity(client_identity.clone()));
    let (client, server) = pair(&any_port(), &server_config, &client_config).await;
    assert_eq!(
        server.info().tls_peer_certificates,
        Some(vec![client_identity.cert_der().clone()])
    );
    let (mut c_tx, _c_rx) = client.split();
    let (_s_tx, mut s_rx) = server.split();
    c_tx.send(pattern(1, 10)).await.unwrap();
    assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(1, 10)));
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_certificate() {
    let client_identity = TlsIdentity::self_signed(&["client.example"]).unwrap();
    let server = server_tls()
        .clone()
        .require_client_certificates(vec![client_identity.cert_der().clone()]);
    let trust_server = QuicClientTls::trust_certificates(vec![server.cert_der().clone()]);
    let listener = bind(&any_port(), &with_tls(Some(server), trust_server.clone()))
        .await
        .unwrap();
    // TLS 1.3 clients finish their side of the handshake before the server checks them, so the
    // refusal shows either in `connect` or on the first receive; never as a clean stream.
    match connect(&listener.local_addr(), &with_tls(None, trust_server)).await {
        Err(err) => assert!(!matches!(err, TransportError::Closed), "{err:?}"),
        Ok(client) => {
            let (_tx, mut rx) = client.split();
            assert!(rx.recv().await.is_err());
        }
    }
}

#[tokio::test]
async fn an_untrusted_server_certificate_fails_the_handshake() {
    let listener = bind(&any_port(), &quic_config(1024)).await.unwrap();
    let stranger = TlsIdentity::self_signed(&["localhost"]).unwrap();
    let config = with_tls(
        None,
        QuicClientTls::trust_certificates(vec![stranger.cert_der().clone()]),
    );
    let err = connect(&listener.local_addr(), &config)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TransportError::Quic(_)), "{err:?}");
}

#[tokio::test]
async fn the_server_name_is_verified() {
    let only_localhost = QuicServerTls::self_signed(&["localhost"]).unwrap();
    let trust = QuicClientTls::trust_certificates(vec![only_localhost.cert_der().clone()]);
    let listener = bind(&any_port(), &with_tls(Some(only_localhost), trust.clone()))
        .await
        .unwrap();
    let addr = listener.local_addr();
    // 127.0.0.1 is not a name in the certificate.
    let err = connect(&addr, &with_tls(None, trust.clone()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TransportError::Quic(_)), "{err:?}");
    // With the name given explicitly, the same certificate verifies.
    let named = with_tls(None, trust.with_server_name("localhost"));
    connect(&addr, &named).await.unwrap();
}

#[tokio::test]
async fn skipping_verification_connects_but_vouches_for_nothing() {
    let listener = bind(&any_port(), &quic_config(1024)).await.unwrap();
    let config = with_tls(None, QuicClientTls::dangerous_skip_verification());
    let client = connect(&listener.local_addr(), &config).await.unwrap();
    assert_eq!(client.info().tls_peer_certificates, None);
}

#[tokio::test]
async fn certificates_load_from_pem_files() {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir();
    let cert_path = dir.join(format!("{}-cert.pem", unique("liaison-quic")));
    let key_path = dir.join(format!("{}-key.pem", unique("liaison-quic")));
    std::fs::write(&cert_path, generated.cert.pem()).unwrap();
    std::fs::write(&key_path, generated.key_pair.serialize_pem()).unwrap();

    let server = QuicServerTls::from_pem_files(&cert_path, &key_path).unwrap();
    assert_eq!(server.cert_der(), generated.cert.der());
    let client = QuicClientTls::trust_pem_file(&cert_path)
        .unwrap()
        .with_server_name("localhost");
    let config = with_tls(Some(server), client);
    let (client, _server) = pair(&any_port(), &config, &config).await;
    assert_eq!(
        client.info().tls_peer_certificates,
        Some(vec![generated.cert.der().clone()])
    );

    // A key file given as the certificate file holds no certificate.
    assert!(matches!(
        QuicClientTls::trust_pem_file(&key_path),
        Err(TransportError::Certificate { .. })
    ));
    std::fs::remove_file(cert_path).unwrap();
    std::fs::remove_file(key_path).unwrap();
}

#[tokio::test]
async fn binding_without_a_certificate_is_a_config_error() {
    let result = bind(&any_port(), &TransportConfig::default()).await;
    assert!(matches!(result, Err(TransportError::InvalidConfig { .. })));
}

#[tokio::test]
async fn connections_outlive_the_listener_and_a_connector_reconnects() {
    let config = quic_config(1024);
    let mut listener = bind(&any_port(), &config).await.unwrap();
    let connector = AddressConnector::new(listener.local_addr(), config);
    let first = connector.connect().await.unwrap();
    let first_server = listener.accept().await.unwrap();
    let second = connector.connect().await.unwrap();
    let second_server = listener.accept().await.unwrap();
    drop(listener);
    for (client, server) in [(first, first_server), (second, second_server)] {
        let (mut c_tx, _c_rx) = client.split();
        let (_s_tx, mut s_rx) = server.split();
        c_tx.send(pattern(5, 50)).await.unwrap();
        assert_eq!(s_rx.recv().await.unwrap(), Some(pattern(5, 50)));
    }
}
