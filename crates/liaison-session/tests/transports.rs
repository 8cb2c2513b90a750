//! The session layer's must-show behaviours, one suite instantiated per transport
//! (`memory`, `tcp`, `unix`, `quic`): establishment and its failures, the handshake
//! deadline, keepalive and idle timeout, and termination with every pending request
//! resolving `Aborted` with the right reason.

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{
    client_config, handshake_then_play_dead, listen, raw_frame, serve_requests, server_config,
    Kind, Requester, Tamper,
};
use liaison_session::messages::Reject;
use liaison_session::{
    Aborted, Origin, PeerIdentity, PskAuth, ReasonCode, Role, RootCapability, Scope, Server,
    Session, SessionError, TerminationReason,
};
use liaison_transport::fault::{FaultConfig, FaultyTransport};
use liaison_wire::{Codec, DefaultCodec, Frame, FrameKind, PROTOCOL_VERSION};
use tokio::time::Instant;

/// Bounds a test on real time: nothing may hang.
async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test hung")
}

fn reject_code(frame: &Frame) -> ReasonCode {
    assert_eq!(frame.kind, FrameKind::Reject, "{frame:?}");
    let reject: Reject = DefaultCodec::default()
        .decode(&frame.payload)
        .expect("reject payload");
    ReasonCode::from(reject.code)
}

/// A good client still gets a session: failed handshakes never stop a server.
async fn assert_still_serving(
    server: &mut Server,
    net_client: &liaison_transport::TransportConfig,
) {
    let client = Session::connect_to(server.local_addr(), net_client, client_config())
        .await
        .expect("a good client still connects");
    let accepted = server.accept().await.expect("and is accepted");
    assert_eq!(client.id(), accepted.id());
}

async fn psk_handshake_shows_identities_on_both_sides(kind: Kind) {
    let net = listen(kind).await;
    let mut server_config = server_config().with_root(RootCapability::new(1, &b"root"[..]));
    server_config.session.app_params = Bytes::from_static(b"server params");
    let mut server = Server::serve(net.listener, server_config);
    let client = Session::connect_to(&net.addr, &net.client, client_config())
        .await
        .expect("client session");
    let accepted = server.accept().await.expect("server session");

    assert_eq!(
        client.peer_identity(),
        &PeerIdentity::PreSharedKey {
            key_id: "tenant".into(),
            name: "hub".into()
        }
    );
    assert_eq!(
        accepted.peer_identity(),
        &PeerIdentity::PreSharedKey {
            key_id: "tenant".into(),
            name: "worker".into()
        }
    );
    assert_eq!(client.id(), accepted.id());
    assert_eq!(client.version(), PROTOCOL_VERSION);
    assert_eq!(
        (client.role(), accepted.role()),
        (Role::Client, Role::Server)
    );
    assert_eq!(client.root(), Some(&RootCapability::new(1, &b"root"[..])));
    assert_eq!(
        client.config().peer_params,
        Bytes::from_static(b"server params")
    );
    assert_eq!(client.config().limits, accepted.config().limits);

    serve_requests(&accepted);
    let requester = Requester::new(client.clone());
    let reply = requester.request(b"ping").await.expect("registered").await;
    assert_eq!(reply, Ok(Bytes::from_static(b"reply:ping")));
    assert_eq!(client.pending_count(), 0);

    let closed = client.close("done").await;
    assert_eq!(
        closed,
        TerminationReason::Closed {
            origin: Origin::Local,
            reason: "done".into()
        }
    );
    assert_eq!(
        accepted.closed().await,
        TerminationReason::Closed {
            origin: Origin::Remote,
            reason: "done".into()
        }
    );
}

async fn version_mismatch_is_typed_on_both_sides(kind: Kind) {
    let net = listen(kind).await;
    let mut config = server_config();
    config.session.versions = vec![PROTOCOL_VERSION];
    let mut server = Server::serve(net.listener, config);
    let mut client = client_config();
    client.session.versions = vec![7, 9];
    match Session::connect_to(&net.addr, &net.client, client).await {
        Err(SessionError::VersionMismatch { offered, supported }) => {
            assert_eq!(offered, [7, 9]);
            assert_eq!(supported, [PROTOCOL_VERSION]);
        }
        other => panic!("client: {other:?}"),
    }
    match server.next_handshake().await {
        Some(Err(SessionError::VersionMismatch { offered, supported })) => {
            assert_eq!(offered, [7, 9]);
            assert_eq!(supported, [PROTOCOL_VERSION]);
        }
        other => panic!("server: {other:?}"),
    }
    assert_still_serving(&mut server, &net.client).await;
}

/// `client_key` / `server_key` differ: the client, which verifies the server's proof
/// first, finds it; the server is told "authentication failed" and nothing more.
async fn wrong_key_fails_on_both_sides(kind: Kind, client_key: [u8; 32], server_key: [u8; 32]) {
    let net = listen(kind).await;
    let server_auth = PskAuth::new("tenant", server_key).expect("key");
    let mut server = Server::serve(
        net.listener,
        liaison_session::ServerConfig::new(server_auth).with_session(common::session_config()),
    );
    let client_auth = PskAuth::new("tenant", client_key).expect("key");
    let client =
        liaison_session::ClientConfig::new(client_auth).with_session(common::session_config());
    match Session::connect_to(&net.addr, &net.client, client).await {
        Err(SessionError::AuthenticationFailed {
            origin: Origin::Local,
            detail,
        }) => assert!(detail.contains("proof"), "{detail}"),
        other => panic!("client: {other:?}"),
    }
    match server.next_handshake().await {
        Some(Err(SessionError::AuthenticationFailed {
            origin: Origin::Remote,
            detail,
        })) => assert_eq!(detail, "authentication failed"),
        other => panic!("server: {other:?}"),
    }
}

async fn replayed_proof_fails_at_the_server(kind: Kind) {
    let net = listen(kind).await;
    let mut server = Server::serve(net.listener, server_config());

    // A legitimate session, its client frames recorded by an eavesdropper.
    let recorded: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let tap = Arc::clone(&recorded);
    let transport = Tamper::wrap(
        liaison_transport::connect(&net.addr, &net.client)
            .await
            .expect("connect"),
        move |_, frame| {
            tap.lock().expect("lock").push(frame.clone());
            Some(frame)
        },
    );
    let _client = Session::connect(transport, client_config())
        .await
        .expect("client");
    let _accepted = server.accept().await.expect("server");
    let frames = recorded.lock().expect("lock").clone();

    // The attacker replays Hello and both authentication messages on a new connection.
    let (mut tx, mut rx) = liaison_transport::connect(&net.addr, &net.client)
        .await
        .expect("connect")
        .split();
    tx.send(frames[0].clone()).await.expect("hello");
    assert_eq!(raw_frame(&mut rx).await.kind, FrameKind::Welcome);
    tx.send(frames[1].clone()).await.expect("first message");
    assert_eq!(raw_frame(&mut rx).await.kind, FrameKind::AuthChallenge);
    tx.send(frames[2].clone()).await.expect("recorded proof");
    assert_eq!(
        reject_code(&raw_frame(&mut rx).await),
        ReasonCode::AuthenticationFailed
    );
    match server.next_handshake().await {
        Some(Err(SessionError::AuthenticationFailed {
            origin: Origin::Local,
            detail,
        })) => assert!(detail.contains("proof"), "{detail}"),
        other => panic!("server: {other:?}"),
    }
    assert_still_serving(&mut server, &net.client).await;
}

async fn garbage_mid_handshake_is_a_violation_on_both_sides(kind: Kind) {
    let net = listen(kind).await;
    let mut server = Server::serve(net.listener, server_config());
    // The client's second frame (its first authentication message) becomes garbage.
    let transport = Tamper::wrap(
        liaison_transport::connect(&net.addr, &net.client)
            .await
            .expect("connect"),
        |index, frame| {
            Some(if index == 1 {
                Bytes::from_static(b"\x05 not a frame")
            } else {
                frame
            })
        },
    );
    match Session::connect(transport, client_config()).await {
        Err(SessionError::Protocol {
            origin: Origin::Remote,
            detail,
        }) => assert!(detail.contains("malformed"), "{detail}"),
        other => panic!("client: {other:?}"),
    }
    match server.next_handshake().await {
        Some(Err(SessionError::Protocol {
            origin: Origin::Local,
            ..
        })) => {}
        other => panic!("server: {other:?}"),
    }
    assert_still_serving(&mut server, &net.client).await;
}

/// Paused time: the silent client is dropped exactly at the deadline, without sleeping.
async fn silent_client_is_dropped_at_the_handshake_deadline(kind: Kind) {
    let net = listen(kind).await;
    let mut server = Server::serve(net.listener, server_config());
    let silent = liaison_transport::connect(&net.addr, &net.client)
        .await
        .expect("connect");
    let start = Instant::now();
    match server.next_handshake().await {
        Some(Err(SessionError::HandshakeTimeout)) => {}
        other => panic!("server: {other:?}"),
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );
    // The silent client is told why.
    let (_tx, mut rx) = silent.split();
    assert_eq!(
        reject_code(&raw_frame(&mut rx).await),
        ReasonCode::HandshakeTimeout
    );
}

async fn silent_server_fails_the_client_at_the_handshake_deadline(kind: Kind) {
    let net = listen(kind).await;
    let mut listener = net.listener;
    let holder = tokio::spawn(async move {
        let transport = listener.accept().await.expect("accept");
        (listener, transport)
    });
    let start = Instant::now();
    match Session::connect_to(&net.addr, &net.client, client_config()).await {
        Err(SessionError::HandshakeTimeout) => {}
        other => panic!("client: {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_secs(5));
    drop(holder.await.expect("holder"));
}

/// Paused time: 120 s of silence at the application level, 30 s idle timeout; the
/// keepalive pings hold the session.
async fn keepalive_holds_an_idle_session_open(kind: Kind) {
    let net = listen(kind).await;
    let mut server = Server::serve(net.listener, server_config());
    let client = Session::connect_to(&net.addr, &net.client, client_config())
        .await
        .expect("client");
    let accepted = server.accept().await.expect("server");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(client.termination_reason(), None);
    assert_eq!(accepted.termination_reason(), None);
    client.close("enough").await;
    assert!(accepted.closed().await.is_graceful());
}

/// Paused time: a peer that stops reading and writing (without closing) is detected by
/// the idle timeout, 30 s after the last frame it sent.
async fn dead_peer_is_detected_by_the_idle_timeout(kind: Kind) {
    let net = listen(kind).await;
    let mut listener = net.listener;
    let dead = tokio::spawn(async move {
        let transport = listener.accept().await.expect("accept");
        let halves = handshake_then_play_dead(transport, &server_config()).await;
        (listener, halves)
    });
    let client = Session::connect_to(&net.addr, &net.client, client_config())
        .await
        .expect("client");
    let start = Instant::now();
    let (_resolver, pending) = client.register::<()>().expect("register");
    assert_eq!(client.closed().await, TerminationReason::IdleTimeout);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(29) && elapsed <= Duration::from_secs(31),
        "{elapsed:?}"
    );
    assert_eq!(
        pending.await,
        Err(Aborted::new(TerminationReason::IdleTimeout))
    );
    drop(dead.await.expect("dead peer"));
}

#[derive(Clone, Copy)]
enum Ender {
    ClientClose,
    ServerClose,
    ClientAbort,
    KilledTransport,
}

/// Requests in flight when the session ends resolve `Aborted` with the reason, on the
/// side that ended it and (as seen there) on the other; nothing hangs.
async fn termination_aborts_pending_requests(kind: Kind, ender: Ender) {
    let net = listen(kind).await;
    let mut server = Server::serve(net.listener, server_config());
    let transport = FaultyTransport::new(
        liaison_transport::connect(&net.addr, &net.client)
            .await
            .expect("connect"),
        FaultConfig::default(),
    );
    let cut = transport.handle();
    let client = Session::connect(Box::new(transport), client_config())
        .await
        .expect("client");
    let accepted = server.accept().await.expect("server");
    serve_requests(&accepted);
    let requester = Requester::new(client.clone());
    let capability = client.revocable("remote object");
    assert_eq!(
        requester
            .request(b"warm-up")
            .await
            .expect("registered")
            .await,
        Ok(Bytes::from_static(b"reply:warm-up"))
    );
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(requester.request(b"hold").await.expect("registered"));
    }
    assert_eq!(client.pending_count(), 10);

    match ender {
        Ender::ClientClose => {
            client.close("client done").await;
        }
        Ender::ServerClose => {
            accepted.close("server done").await;
        }
        Ender::ClientAbort => client.abort(),
        Ender::KilledTransport => cut.cut(),
    }
    let client_reason = client.closed().await;
    let server_reason = accepted.closed().await;
    match ender {
        Ender::ClientClose => {
            assert_eq!(
                client_reason,
                TerminationReason::Closed {
                    origin: Origin::Local,
                    reason: "client done".into()
                }
            );
            assert_eq!(
                server_reason,
                TerminationReason::Closed {
                    origin: Origin::Remote,
                    reason: "client done".into()
                }
            );
        }
        Ender::ServerClose => {
            assert_eq!(
                client_reason,
                TerminationReason::Closed {
                    origin: Origin::Remote,
                    reason: "server done".into()
                }
            );
            assert_eq!(
                server_reason,
                TerminationReason::Closed {
                    origin: Origin::Local,
                    reason: "server done".into()
                }
            );
        }
        Ender::ClientAbort => {
            assert_eq!(
                client_reason,
                TerminationReason::Aborted {
                    origin: Origin::Local
                }
            );
            assert_eq!(
                server_reason,
                TerminationReason::Aborted {
                    origin: Origin::Remote
                }
            );
        }
        Ender::KilledTransport => {
            assert!(
                matches!(client_reason, TerminationReason::TransportFailed(_)),
                "{client_reason:?}"
            );
            assert!(
                matches!(
                    server_reason,
                    TerminationReason::TransportFailed(_) | TerminationReason::TransportClosed
                ),
                "{server_reason:?}"
            );
        }
    }
    for eventual in held {
        assert_eq!(eventual.await, Err(Aborted::new(client_reason.clone())));
    }
    assert_eq!(client.pending_count(), 0);
    assert_eq!(
        client.register::<()>().map(|_| ()),
        Err(Aborted::new(client_reason.clone()))
    );
    assert_eq!(
        capability.get().map_err(|revoked| revoked.into_reason()),
        Err(client_reason.clone())
    );
    assert!(matches!(
        client.send(Frame::data(1, &b"late"[..])).await,
        Err(SessionError::Terminated(_))
    ));
}

/// 100 sessions in one scope, each with a request in flight: cancelling the scope aborts
/// every request with `ScopeCancelled` and every peer sees the session end.
async fn cancelled_scope_ends_every_session(kind: Kind) {
    const SESSIONS: usize = 100;
    let net = listen(kind).await;
    let mut server = Server::serve(net.listener, server_config());
    let scope = Scope::new();
    let mut clients = Vec::new();
    let mut accepted = Vec::new();
    let mut held = Vec::new();
    for _ in 0..SESSIONS {
        let transport = liaison_transport::connect(&net.addr, &net.client)
            .await
            .expect("connect");
        let client = Session::connect_in(&scope, transport, client_config())
            .await
            .expect("client");
        let peer = server.accept().await.expect("server");
        serve_requests(&peer);
        let requester = Requester::new(client.clone());
        held.push(requester.request(b"hold").await.expect("registered"));
        clients.push(client);
        accepted.push(peer);
    }
    drop(scope);
    for eventual in held {
        assert_eq!(
            eventual.await,
            Err(Aborted::new(TerminationReason::ScopeCancelled))
        );
    }
    for client in &clients {
        assert_eq!(client.closed().await, TerminationReason::ScopeCancelled);
    }
    for peer in &accepted {
        assert!(
            matches!(
                peer.closed().await,
                TerminationReason::Closed {
                    origin: Origin::Remote,
                    ..
                }
            ),
            "{:?}",
            peer.termination_reason()
        );
    }
}

macro_rules! suite {
    ($($name:ident => $kind:expr;)*) => {$(
        mod $name {
            use super::*;

            const KIND: Kind = $kind;

            #[tokio::test]
            async fn psk_handshake_shows_identities_on_both_sides() {
                within(super::psk_handshake_shows_identities_on_both_sides(KIND)).await;
            }

            #[tokio::test]
            async fn version_mismatch_is_typed_on_both_sides() {
                within(super::version_mismatch_is_typed_on_both_sides(KIND)).await;
            }

            #[tokio::test]
            async fn wrong_client_key_fails_on_both_sides() {
                within(super::wrong_key_fails_on_both_sides(KIND, [1; 32], common::KEY)).await;
            }

            #[tokio::test]
            async fn wrong_server_key_fails_on_both_sides() {
                within(super::wrong_key_fails_on_both_sides(KIND, common::KEY, [2; 32])).await;
            }

            #[tokio::test]
            async fn replayed_proof_fails_at_the_server() {
                within(super::replayed_proof_fails_at_the_server(KIND)).await;
            }

            #[tokio::test]
            async fn garbage_mid_handshake_is_a_violation_on_both_sides() {
                within(super::garbage_mid_handshake_is_a_violation_on_both_sides(KIND)).await;
            }

            #[tokio::test(start_paused = true)]
            async fn silent_client_is_dropped_at_the_handshake_deadline() {
                super::silent_client_is_dropped_at_the_handshake_deadline(KIND).await;
            }

            #[tokio::test(start_paused = true)]
            async fn silent_server_fails_the_client_at_the_handshake_deadline() {
                super::silent_server_fails_the_client_at_the_handshake_deadline(KIND).await;
            }

            #[tokio::test(start_paused = true)]
            async fn keepalive_holds_an_idle_session_open() {
                super::keepalive_holds_an_idle_session_open(KIND).await;
            }

            #[tokio::test(start_paused = true)]
            async fn dead_peer_is_detected_by_the_idle_timeout() {
                super::dead_peer_is_detected_by_the_idle_timeout(KIND).await;
            }

            #[tokio::test]
            async fn client_close_aborts_pending_requests() {
                within(super::termination_aborts_pending_requests(KIND, Ender::ClientClose)).await;
            }

            #[tokio::test]
            async fn server_close_aborts_pending_requests() {
                within(super::termination_aborts_pending_requests(KIND, Ender::ServerClose)).await;
            }

            #[tokio::test]
            async fn abort_aborts_pending_requests() {
                within(super::termination_aborts_pending_requests(KIND, Ender::ClientAbort)).await;
            }

            #[tokio::test]
            async fn killed_transport_aborts_pending_requests() {
                within(super::termination_aborts_pending_requests(KIND, Ender::KilledTransport)).await;
            }

            #[tokio::test]
            async fn cancelled_scope_of_100_sessions_aborts_everything() {
                within(super::cancelled_scope_ends_every_session(KIND)).await;
            }
        }
    )*};
}

suite! {
    memory => Kind::Memory;
    tcp => Kind::Tcp;
    unix => Kind::Unix;
    quic => Kind::Quic;
}

/// QUIC only: the TLS peer identity, with client certificates.
mod quic_tls_identity {
    use liaison_session::{ClientConfig, Fingerprint, ServerConfig, TlsIdentityAuth};
    use liaison_transport::TlsIdentity;

    use super::*;

    #[tokio::test]
    async fn identities_are_the_certificate_fingerprints() {
        within(async {
            let client_identity = TlsIdentity::self_signed(&["client"]).expect("client cert");
            let client_cert = Bytes::copy_from_slice(client_identity.cert_der().as_ref());
            let (server_tc, client_tc, server_cert) = common::quic_configs(Some(client_identity));
            let mut server = Server::bind(
                &"quic://127.0.0.1:0".parse().expect("address"),
                &server_tc,
                ServerConfig::new(TlsIdentityAuth::new()),
            )
            .await
            .expect("bind");
            let client = Session::connect_to(
                server.local_addr(),
                &client_tc,
                ClientConfig::new(
                    TlsIdentityAuth::new().allow([Fingerprint::of_der(&server_cert)]),
                ),
            )
            .await
            .expect("client");
            let accepted = server.accept().await.expect("server");
            assert_eq!(
                client.peer_identity(),
                &PeerIdentity::Certificate(Fingerprint::of_der(&server_cert))
            );
            assert_eq!(
                accepted.peer_identity(),
                &PeerIdentity::Certificate(Fingerprint::of_der(&client_cert))
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_server_not_on_the_allow_list_is_refused() {
        within(async {
            let (server_tc, client_tc, _) = common::quic_configs(None);
            let mut server = Server::bind(
                &"quic://127.0.0.1:0".parse().expect("address"),
                &server_tc,
                ServerConfig::new(TlsIdentityAuth::new().allow_anonymous()),
            )
            .await
            .expect("bind");
            let result = Session::connect_to(
                server.local_addr(),
                &client_tc,
                ClientConfig::new(TlsIdentityAuth::new().allow([Fingerprint([0; 32])])),
            )
            .await;
            assert!(matches!(
                result,
                Err(SessionError::AuthenticationFailed {
                    origin: Origin::Local,
                    ..
                })
            ));
            assert!(matches!(
                server.next_handshake().await,
                Some(Err(SessionError::AuthenticationFailed {
                    origin: Origin::Remote,
                    ..
                }))
            ));
        })
        .await;
    }
}

/// Memory only: TLS identity over a transport without TLS fails on both sides.
#[tokio::test]
async fn tls_identity_without_tls_fails_on_both_sides() {
    use liaison_session::{ClientConfig, ServerConfig, TlsIdentityAuth};
    within(async {
        let net = listen(Kind::Memory).await;
        let mut server = Server::serve(net.listener, ServerConfig::new(TlsIdentityAuth::new()));
        let result = Session::connect_to(
            &net.addr,
            &net.client,
            ClientConfig::new(TlsIdentityAuth::new()),
        )
        .await;
        assert!(matches!(
            result,
            Err(SessionError::AuthenticationFailed {
                origin: Origin::Local,
                ..
            })
        ));
        assert!(matches!(
            server.next_handshake().await,
            Some(Err(SessionError::AuthenticationFailed {
                origin: Origin::Remote,
                ..
            }))
        ));
    })
    .await;
}
