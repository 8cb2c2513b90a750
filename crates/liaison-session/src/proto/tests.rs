//! Tests of the sans-IO core: a simulated client / server pair on a virtual clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_wire::{Frame, FrameKind};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Connection, Event};
use crate::auth::{Authenticator, NoAuth, PeerIdentity, PskAuth, TlsIdentityAuth};
use crate::{
    ClientConfig, Fingerprint, HandshakeFailure, Origin, ReasonCode, RootCapability,
    SequencingMode, ServerConfig, SessionConfig, TerminationReason,
};

const KEY: [u8; 32] = [0x42; 32];

fn psk() -> PskAuth {
    PskAuth::new("tenant", KEY).expect("valid key")
}

fn session_config() -> SessionConfig {
    SessionConfig {
        keepalive_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(3),
        ..SessionConfig::default()
    }
}

fn client_config(auth: impl Authenticator + 'static) -> ClientConfig {
    ClientConfig::new(auth).with_session(session_config())
}

fn server_config(auth: impl Authenticator + 'static) -> ServerConfig {
    ServerConfig::new(auth).with_session(session_config())
}

fn rng(seed: u64) -> Box<StdRng> {
    Box::new(StdRng::seed_from_u64(seed))
}

/// A client and a server core joined by a perfect link, on a virtual clock.
struct Pair {
    now: Instant,
    client: Connection,
    server: Connection,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
}

impl Pair {
    fn new(client: &ClientConfig, server: &ServerConfig) -> Self {
        Self::with_tls(client, server, None, None)
    }

    fn with_tls(
        client: &ClientConfig,
        server: &ServerConfig,
        client_sees: Option<Vec<Bytes>>,
        server_sees: Option<Vec<Bytes>>,
    ) -> Self {
        let now = Instant::now();
        Self {
            now,
            client: Connection::client(client, client_sees, rng(1), now).expect("client"),
            server: Connection::server(server, server_sees, rng(2), now).expect("server"),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// Delivers frames both ways until neither side has anything to send.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            while let Some(frame) = self.client.poll_transmit(self.now) {
                self.server.handle_bytes(self.now, frame.to_bytes());
                moved = true;
            }
            while let Some(frame) = self.server.poll_transmit(self.now) {
                self.client.handle_bytes(self.now, frame.to_bytes());
                moved = true;
            }
            self.collect();
            if !moved {
                return;
            }
        }
    }

    fn collect(&mut self) {
        while let Some(event) = self.client.poll_event() {
            self.client_events.push(event);
        }
        while let Some(event) = self.server.poll_event() {
            self.server_events.push(event);
        }
    }

    /// Advances the clock to `at`, firing every deadline on the way and delivering what
    /// the timers produce.
    fn advance_to(&mut self, at: Instant) {
        loop {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(deadline) if deadline <= at => {
                    self.now = self.now.max(deadline);
                    self.client.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                    self.run();
                }
                _ => break,
            }
        }
        self.now = at;
    }

    fn established(&mut self) -> &mut Self {
        self.run();
        assert!(
            self.client.is_established(),
            "client: {:?}",
            self.client_events
        );
        assert!(
            self.server.is_established(),
            "server: {:?}",
            self.server_events
        );
        self
    }
}

fn failure(conn: &Connection) -> Option<&HandshakeFailure> {
    match conn.termination_reason() {
        Some(TerminationReason::HandshakeFailed(failure)) => Some(failure),
        _ => None,
    }
}

#[test]
fn psk_handshake_establishes_both_sides_with_identities_and_config() {
    let client = client_config(psk().with_name("worker"))
        .with_sequencing(SequencingMode::Ordered)
        .with_session({
            let mut c = session_config();
            c.app_params = Bytes::from_static(b"client params");
            c.limits.max_exchanges = 10;
            c
        });
    let server = server_config(psk().with_name("hub"))
        .with_root(RootCapability::new(7, &b"root"[..]))
        .with_session({
            let mut c = session_config();
            c.app_params = Bytes::from_static(b"server params");
            c.keepalive_interval = Duration::from_millis(700);
            c
        });
    let mut pair = Pair::new(&client, &server);
    pair.established();

    let c = pair
        .client
        .established()
        .expect("client established")
        .clone();
    let s = pair
        .server
        .established()
        .expect("server established")
        .clone();
    assert_eq!(
        c.peer_identity,
        PeerIdentity::PreSharedKey {
            key_id: "tenant".into(),
            name: "hub".into()
        }
    );
    assert_eq!(
        s.peer_identity,
        PeerIdentity::PreSharedKey {
            key_id: "tenant".into(),
            name: "worker".into()
        }
    );
    assert_eq!(c.config.session_id, s.config.session_id);
    assert_eq!(c.config.version, liaison_wire::PROTOCOL_VERSION);
    assert_eq!(c.config.limits, s.config.limits);
    assert_eq!(c.config.limits.max_exchanges, 10);
    assert_eq!(c.config.keepalive_interval, Duration::from_millis(700));
    assert_eq!(s.config.keepalive_interval, Duration::from_millis(700));
    assert_eq!(c.config.idle_timeout, Duration::from_secs(5));
    assert_eq!(c.config.sequencing, SequencingMode::Ordered);
    assert_eq!(s.config.sequencing, SequencingMode::Ordered);
    assert_eq!(c.config.peer_params, Bytes::from_static(b"server params"));
    assert_eq!(s.config.peer_params, Bytes::from_static(b"client params"));
    assert_eq!(c.config.root, Some(RootCapability::new(7, &b"root"[..])));
    assert_eq!(c.config.root, s.config.root);
    assert!(matches!(pair.client_events[0], Event::Established(_)));
    assert!(matches!(pair.server_events[0], Event::Established(_)));
}

#[test]
fn no_auth_is_anonymous_on_both_sides() {
    let mut pair = Pair::new(&client_config(NoAuth), &server_config(NoAuth));
    pair.established();
    for conn in [&pair.client, &pair.server] {
        assert_eq!(
            conn.established().map(|e| &e.peer_identity),
            Some(&PeerIdentity::Anonymous)
        );
    }
}

#[test]
fn tls_identity_is_the_fingerprint_each_side_sees() {
    let server_cert = Bytes::from_static(b"server leaf");
    let client_cert = Bytes::from_static(b"client leaf");
    let mut pair = Pair::with_tls(
        &client_config(TlsIdentityAuth::new().allow([Fingerprint::of_der(&server_cert)])),
        &server_config(TlsIdentityAuth::new()),
        Some(vec![server_cert.clone()]),
        Some(vec![client_cert.clone()]),
    );
    pair.established();
    assert_eq!(
        pair.client.established().map(|e| &e.peer_identity),
        Some(&PeerIdentity::Certificate(Fingerprint::of_der(
            &server_cert
        )))
    );
    assert_eq!(
        pair.server.established().map(|e| &e.peer_identity),
        Some(&PeerIdentity::Certificate(Fingerprint::of_der(
            &client_cert
        )))
    );
}

#[test]
fn tls_identity_without_a_certificate_fails_on_the_side_that_has_none() {
    let mut pair = Pair::with_tls(
        &client_config(TlsIdentityAuth::new()),
        &server_config(TlsIdentityAuth::new()),
        Some(vec![Bytes::from_static(b"server leaf")]),
        None,
    );
    pair.run();
    assert!(matches!(
        failure(&pair.server),
        Some(HandshakeFailure::AuthenticationFailed {
            origin: Origin::Local,
            ..
        })
    ));
    assert!(matches!(
        failure(&pair.client),
        Some(HandshakeFailure::AuthenticationFailed {
            origin: Origin::Remote,
            ..
        })
    ));
}

#[test]
fn version_mismatch_is_typed_on_both_sides() {
    let mut client = client_config(psk());
    client.session.versions = vec![7, 8];
    let mut server = server_config(psk());
    server.session.versions = vec![1, 2];
    let mut pair = Pair::new(&client, &server);
    pair.run();
    let expected = HandshakeFailure::VersionMismatch {
        offered: vec![7, 8],
        supported: vec![1, 2],
    };
    assert_eq!(failure(&pair.client), Some(&expected));
    assert_eq!(failure(&pair.server), Some(&expected));
}

#[test]
fn highest_common_version_is_chosen() {
    let mut client = client_config(psk());
    client.session.versions = vec![1, 2, 3];
    let mut server = server_config(psk());
    server.session.versions = vec![2, 3, 4];
    let mut pair = Pair::new(&client, &server);
    pair.established();
    assert_eq!(pair.client.established().map(|e| e.config.version), Some(3));
    assert_eq!(pair.server.established().map(|e| e.config.version), Some(3));
}

fn assert_auth_failed(pair: &Pair, detector: Origin) {
    let (local, remote) = match detector {
        Origin::Local => (&pair.client, &pair.server),
        Origin::Remote => (&pair.server, &pair.client),
    };
    match failure(local) {
        Some(HandshakeFailure::AuthenticationFailed {
            origin: Origin::Local,
            ..
        }) => {}
        other => panic!("detecting side: {other:?}"),
    }
    assert_eq!(
        failure(remote),
        Some(&HandshakeFailure::AuthenticationFailed {
            origin: Origin::Remote,
            detail: "authentication failed".into()
        })
    );
}

#[test]
fn wrong_client_key_fails_on_both_sides() {
    let client = client_config(PskAuth::new("tenant", [1u8; 32]).expect("key"));
    let mut pair = Pair::new(&client, &server_config(psk()));
    pair.run();
    // The client verifies the server's proof first, so it finds the mismatch.
    assert_auth_failed(&pair, Origin::Local);
}

#[test]
fn wrong_server_key_fails_on_both_sides() {
    let server = server_config(PskAuth::new("tenant", [1u8; 32]).expect("key"));
    let mut pair = Pair::new(&client_config(psk()), &server);
    pair.run();
    assert_auth_failed(&pair, Origin::Local);
}

#[test]
fn unknown_key_id_fails_like_a_wrong_key() {
    let client = client_config(PskAuth::new("stranger", KEY).expect("key"));
    let mut pair = Pair::new(&client, &server_config(psk()));
    pair.run();
    assert_auth_failed(&pair, Origin::Local);
}

#[test]
fn mechanism_mismatch_fails_authentication() {
    let mut pair = Pair::new(&client_config(NoAuth), &server_config(psk()));
    pair.run();
    assert_auth_failed(&pair, Origin::Local);
}

#[test]
fn a_replayed_proof_fails_at_the_server() {
    // Record the client's frames of a successful handshake.
    let client = client_config(psk());
    let server = server_config(psk());
    let mut pair = Pair::new(&client, &server);
    let mut recorded = Vec::new();
    loop {
        let mut moved = false;
        while let Some(frame) = pair.client.poll_transmit(pair.now) {
            recorded.push(frame.clone());
            pair.server.handle_frame(pair.now, frame);
            moved = true;
        }
        while let Some(frame) = pair.server.poll_transmit(pair.now) {
            pair.client.handle_frame(pair.now, frame);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert!(pair.server.is_established());

    // Replay them to a new server connection (fresh nonce).
    let now = pair.now;
    let mut victim = Connection::server(&server, None, rng(99), now).expect("server");
    for frame in recorded
        .into_iter()
        .take_while(|f| f.kind != FrameKind::Config)
    {
        victim.handle_frame(now, frame);
    }
    assert!(matches!(
        failure(&victim),
        Some(HandshakeFailure::AuthenticationFailed {
            origin: Origin::Local,
            ..
        })
    ));
    let mut sent = Vec::new();
    while let Some(frame) = victim.poll_transmit(now) {
        sent.push(frame.kind);
    }
    assert_eq!(sent.last(), Some(&FrameKind::Reject));
}

#[test]
fn unsupported_sequencing_mode_is_rejected_with_a_config_code() {
    let client = client_config(psk()).with_sequencing(SequencingMode::Unordered);
    let server = server_config(psk()).with_sequencing_modes([SequencingMode::None]);
    let mut pair = Pair::new(&client, &server);
    pair.run();
    assert!(matches!(
        failure(&pair.server),
        Some(HandshakeFailure::Rejected {
            origin: Origin::Local,
            code: ReasonCode::ConfigRejected,
            ..
        })
    ));
    match failure(&pair.client) {
        Some(HandshakeFailure::Rejected {
            origin: Origin::Remote,
            code: ReasonCode::ConfigRejected,
            message,
        }) => assert!(message.contains("unordered"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_mid_handshake_is_a_violation_on_both_sides() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    // Hello reaches the server, Welcome the client; then the client's next frame is garbage.
    let hello = pair.client.poll_transmit(pair.now).expect("hello");
    pair.server.handle_bytes(pair.now, hello.to_bytes());
    let welcome = pair.server.poll_transmit(pair.now).expect("welcome");
    pair.client.handle_bytes(pair.now, welcome.to_bytes());
    let _discarded = pair.client.poll_transmit(pair.now).expect("auth proof");
    pair.server.handle_bytes(
        pair.now,
        Bytes::from_static(b"\x05garbage that is no frame"),
    );
    pair.run();
    assert!(matches!(
        pair.server.termination_reason(),
        Some(TerminationReason::ProtocolViolation {
            origin: Origin::Local,
            ..
        })
    ));
    assert!(matches!(
        pair.client.termination_reason(),
        Some(TerminationReason::ProtocolViolation {
            origin: Origin::Remote,
            ..
        })
    ));
}

#[test]
fn a_first_frame_that_is_not_a_liaison_hello_gets_no_answer() {
    let now = Instant::now();
    let mut bad_magic = liaison_wire::VersionOffer::supported().to_bytes().to_vec();
    bad_magic[..8].copy_from_slice(b"GET / HT");
    let inputs = [
        Frame::data(1, &b"hi"[..]).to_bytes(),
        Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
        Frame::control(FrameKind::Hello, bad_magic).to_bytes(),
    ];
    for input in inputs {
        let mut server =
            Connection::server(&server_config(psk()), None, rng(1), now).expect("server");
        server.handle_bytes(now, input);
        assert!(matches!(
            server.termination_reason(),
            Some(TerminationReason::ProtocolViolation {
                origin: Origin::Local,
                ..
            })
        ));
        assert_eq!(server.poll_transmit(now), None);
        assert!(server.is_drained());
    }
}

#[test]
fn the_client_refuses_with_bye_and_the_server_with_reject() {
    // Wrong key: the client refuses.
    let client = client_config(PskAuth::new("tenant", [1u8; 32]).expect("key"));
    let mut pair = Pair::new(&client, &server_config(psk()));
    let mut last_client_frame = None;
    loop {
        let mut moved = false;
        while let Some(frame) = pair.client.poll_transmit(pair.now) {
            last_client_frame = Some(frame.kind);
            pair.server.handle_frame(pair.now, frame);
            moved = true;
        }
        while let Some(frame) = pair.server.poll_transmit(pair.now) {
            pair.client.handle_frame(pair.now, frame);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert_eq!(last_client_frame, Some(FrameKind::Bye));
    // Version mismatch: the server refuses.
    let mut client = client_config(psk());
    client.session.versions = vec![9];
    let mut pair = Pair::new(&client, &server_config(psk()));
    let hello = pair.client.poll_transmit(pair.now).expect("hello");
    pair.server.handle_frame(pair.now, hello);
    assert_eq!(
        pair.server.poll_transmit(pair.now).map(|f| f.kind),
        Some(FrameKind::Reject)
    );
}

#[test]
fn a_silent_peer_is_dropped_at_the_handshake_deadline() {
    let start = Instant::now();
    let mut server =
        Connection::server(&server_config(psk()), None, rng(1), start).expect("server");
    let deadline = start + Duration::from_secs(3);
    assert_eq!(server.poll_timeout(), Some(deadline));
    server.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!server.is_terminated());
    server.handle_timeout(deadline);
    assert_eq!(
        server.termination_reason(),
        Some(&TerminationReason::HandshakeFailed(
            HandshakeFailure::Timeout
        ))
    );
    assert_eq!(
        server.poll_transmit(deadline).map(|f| f.kind),
        Some(FrameKind::Reject)
    );
    assert_eq!(server.poll_timeout(), None);

    // The client side of a silent server fails the same way.
    let mut client =
        Connection::client(&client_config(psk()), None, rng(1), start).expect("client");
    assert_eq!(
        client.poll_transmit(start).map(|f| f.kind),
        Some(FrameKind::Hello)
    );
    client.handle_timeout(deadline);
    assert_eq!(
        client.termination_reason(),
        Some(&TerminationReason::HandshakeFailed(
            HandshakeFailure::Timeout
        ))
    );
}

#[test]
fn keepalive_holds_an_idle_session_open() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    let start = pair.now;
    pair.advance_to(start + Duration::from_secs(60));
    assert!(pair.client.is_established());
    assert!(pair.server.is_established());
    // Pings went both ways; nothing reached the application.
    assert!(pair
        .client_events
        .iter()
        .chain(&pair.server_events)
        .all(|e| matches!(e, Event::Established(_))));
}

#[test]
fn pings_go_out_after_a_keepalive_interval_of_send_silence() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    let t0 = pair.now;
    pair.client.handle_timeout(t0 + Duration::from_millis(999));
    assert!(pair.client.poll_transmit(t0).is_none());
    pair.client.handle_timeout(t0 + Duration::from_secs(1));
    let ping = pair
        .client
        .poll_transmit(t0 + Duration::from_secs(1))
        .expect("ping");
    assert_eq!(ping.kind, FrameKind::Ping);
    pair.server
        .handle_frame(t0 + Duration::from_secs(1), ping.clone());
    let pong = pair
        .server
        .poll_transmit(t0 + Duration::from_secs(1))
        .expect("pong");
    assert_eq!(pong.kind, FrameKind::Pong);
    assert_eq!(pong.payload, ping.payload);
}

#[test]
fn a_dead_peer_is_detected_by_the_idle_timeout() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    let t0 = pair.now;
    // The server goes silent: its frames are never delivered, the client keeps pinging.
    let mut now = t0;
    while !pair.client.is_terminated() {
        now = pair.client.poll_timeout().expect("a deadline");
        pair.client.handle_timeout(now);
        while pair.client.poll_transmit(now).is_some() {}
    }
    assert_eq!(now, t0 + Duration::from_secs(5));
    assert_eq!(
        pair.client.termination_reason(),
        Some(&TerminationReason::IdleTimeout)
    );
}

#[test]
fn receive_pause_suspends_the_idle_timer() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    let t0 = pair.now;
    pair.client.set_receive_paused(t0, true);
    pair.client.handle_timeout(t0 + Duration::from_secs(30));
    assert!(pair.client.is_established());
    pair.client
        .set_receive_paused(t0 + Duration::from_secs(30), false);
    pair.client.handle_timeout(t0 + Duration::from_secs(35));
    assert_eq!(
        pair.client.termination_reason(),
        Some(&TerminationReason::IdleTimeout)
    );
}

#[test]
fn close_sends_queued_frames_then_bye() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    pair.client
        .send(Frame::data(3, &b"last words"[..]))
        .expect("send");
    pair.client.close("done here");
    pair.run();
    assert_eq!(
        pair.client.termination_reason(),
        Some(&TerminationReason::Closed {
            origin: Origin::Local,
            reason: "done here".into()
        })
    );
    assert_eq!(
        pair.server.termination_reason(),
        Some(&TerminationReason::Closed {
            origin: Origin::Remote,
            reason: "done here".into()
        })
    );
    assert!(pair
        .server_events
        .iter()
        .any(|e| matches!(e, Event::Frame(f) if f.payload == b"last words"[..])));
}

#[test]
fn a_violation_found_above_drops_queued_frames_and_tells_the_peer() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    pair.server
        .send(Frame::data(2, &b"never sent"[..]))
        .expect("send");
    let detail = format!("data for exchange 9 never opened{}", "!".repeat(600));
    pair.server.fail_protocol(&detail);
    // Ignored once ended: the first reason stays.
    pair.server.fail_protocol("a second one");
    pair.run();
    let cut = &detail[..crate::messages::MAX_REASON_LEN];
    assert_eq!(
        pair.server.termination_reason(),
        Some(&TerminationReason::ProtocolViolation {
            origin: Origin::Local,
            detail: cut.into()
        })
    );
    assert_eq!(
        pair.client.termination_reason(),
        Some(&TerminationReason::ProtocolViolation {
            origin: Origin::Remote,
            detail: cut.into()
        })
    );
    assert!(!pair
        .client_events
        .iter()
        .any(|e| matches!(e, Event::Frame(_))));
}

#[test]
fn abort_and_cancel_tell_the_peer() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    pair.server.abort();
    pair.run();
    assert_eq!(
        pair.client.termination_reason(),
        Some(&TerminationReason::Aborted {
            origin: Origin::Remote
        })
    );

    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    pair.client.cancel();
    pair.run();
    assert_eq!(
        pair.client.termination_reason(),
        Some(&TerminationReason::ScopeCancelled)
    );
    assert!(matches!(
        pair.server.termination_reason(),
        Some(TerminationReason::Closed {
            origin: Origin::Remote,
            ..
        })
    ));
}

#[test]
fn application_frames_pass_up_and_session_frames_are_refused_from_above() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    for frame in [
        Frame::data(9, &b"req"[..]),
        Frame::on_exchange(FrameKind::ExchangeBegin, 9, Bytes::new()),
        Frame::ack(4),
    ] {
        pair.client.send(frame).expect("send");
    }
    for kind in [
        FrameKind::Ping,
        FrameKind::Bye,
        FrameKind::Hello,
        FrameKind::Config,
    ] {
        assert!(pair
            .client
            .send(Frame::control(kind, Bytes::new()))
            .is_err());
    }
    pair.run();
    let kinds: Vec<FrameKind> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [FrameKind::Data, FrameKind::ExchangeBegin, FrameKind::Ack]
    );
}

#[test]
fn oversized_data_is_refused_before_sending_and_on_receipt() {
    let mut client = client_config(psk());
    client.session.limits.max_frame_payload = 16;
    let mut pair = Pair::new(&client, &server_config(psk()));
    pair.established();
    assert!(pair.server.send(Frame::data(1, vec![0u8; 17])).is_err());
    // A peer that ignores the negotiated limit is a protocol violation.
    pair.client
        .handle_bytes(pair.now, Frame::data(1, vec![0u8; 17]).to_bytes());
    assert!(matches!(
        pair.client.termination_reason(),
        Some(TerminationReason::ProtocolViolation {
            origin: Origin::Local,
            ..
        })
    ));
}

#[test]
fn handshake_and_resume_frames_after_establishment_are_violations() {
    let violation = |conn: &Connection, from: Origin| {
        matches!(
            conn.termination_reason(),
            Some(TerminationReason::ProtocolViolation { origin, .. }) if *origin == from
        )
    };
    for kind in [
        FrameKind::AuthProof,
        FrameKind::Resume,
        FrameKind::ResumeAck,
    ] {
        let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
        pair.established();
        pair.server
            .handle_frame(pair.now, Frame::control(kind, Bytes::new()));
        pair.run();
        assert!(violation(&pair.server, Origin::Local), "{kind}");
        assert!(violation(&pair.client, Origin::Remote), "{kind}");
    }
}

#[test]
fn transport_end_terminates_without_sending() {
    let mut pair = Pair::new(&client_config(psk()), &server_config(psk()));
    pair.established();
    pair.client.send(Frame::data(1, &b"x"[..])).expect("send");
    pair.client.handle_transport_error("reset by peer");
    assert!(pair.client.is_drained());
    assert_eq!(
        pair.client.termination_reason(),
        Some(&TerminationReason::TransportFailed("reset by peer".into()))
    );
    pair.server.handle_transport_closed();
    assert_eq!(
        pair.server.termination_reason(),
        Some(&TerminationReason::TransportClosed)
    );
}

#[test]
fn invalid_configuration_is_refused_at_construction() {
    let mut config = client_config(psk());
    config.session.idle_timeout = config.session.keepalive_interval;
    assert!(Connection::client(&config, None, rng(0), Instant::now()).is_err());
}

/// One step of the adversarial schedule.
#[derive(Debug, Clone)]
enum Action {
    /// Deliver the client's next frame to the server.
    ToServer,
    /// Deliver the server's next frame to the client.
    ToClient,
    /// Drop the next frame in one direction.
    Drop(bool),
    /// Deliver one frame twice.
    Duplicate(bool),
    /// Inject random bytes into one side.
    Garbage(bool, Vec<u8>),
    /// Inject a well-formed frame of a random kind with a random payload.
    Forged(bool, FrameKind, Vec<u8>),
    /// Move the clock forward.
    Advance(u16),
    /// A user command on one side: 0 close, 1 abort, 2 cancel, 3 send data.
    Command(bool, u8),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => Just(Action::ToServer),
        6 => Just(Action::ToClient),
        1 => any::<bool>().prop_map(Action::Drop),
        1 => any::<bool>().prop_map(Action::Duplicate),
        1 => (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(s, b)| Action::Garbage(s, b)),
        2 => (any::<bool>(), proptest::sample::select(FrameKind::ALL), proptest::collection::vec(any::<u8>(), 0..48))
            .prop_map(|(s, k, b)| Action::Forged(s, k, b)),
        1 => (0u16..4000).prop_map(Action::Advance),
        1 => (any::<bool>(), 0u8..4).prop_map(|(s, c)| Action::Command(s, c)),
    ]
}

struct Harness {
    now: Instant,
    conns: [Connection; 2],
    queues: [std::collections::VecDeque<Frame>; 2],
    events: [Vec<Event>; 2],
}

impl Harness {
    fn pump(&mut self) {
        for i in 0..2 {
            while let Some(frame) = self.conns[i].poll_transmit(self.now) {
                self.queues[i].push_back(frame);
            }
            while let Some(event) = self.conns[i].poll_event() {
                self.events[i].push(event);
            }
        }
    }

    fn deliver(&mut self, from: usize, twice: bool) {
        if let Some(frame) = self.queues[from].pop_front() {
            let to = 1 - from;
            self.conns[to].handle_bytes(self.now, frame.to_bytes());
            if twice {
                self.conns[to].handle_bytes(self.now, frame.to_bytes());
            }
        }
    }

    fn apply(&mut self, action: Action) {
        let side = |client: bool| usize::from(!client);
        match action {
            Action::ToServer => self.deliver(0, false),
            Action::ToClient => self.deliver(1, false),
            Action::Drop(c) => {
                self.queues[side(c)].pop_front();
            }
            Action::Duplicate(c) => self.deliver(side(c), true),
            Action::Garbage(c, bytes) => self.conns[side(c)].handle_bytes(self.now, bytes.into()),
            Action::Forged(c, kind, payload) => {
                let frame = if kind.is_exchange() {
                    Frame::on_exchange(kind, 1, payload)
                } else {
                    Frame::control(kind, payload)
                };
                self.conns[side(c)].handle_bytes(self.now, frame.to_bytes());
            }
            Action::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                for conn in &mut self.conns {
                    conn.handle_timeout(self.now);
                }
            }
            Action::Command(c, command) => {
                let conn = &mut self.conns[side(c)];
                match command {
                    0 => conn.close("test"),
                    1 => conn.abort(),
                    2 => conn.cancel(),
                    _ => {
                        let _ = conn.send(Frame::data(1, &b"payload"[..]));
                    }
                }
            }
        }
        self.pump();
    }
}

/// Every event list: at most one `Established`, first if present; exactly one
/// `Terminated` iff the connection is terminated, last, with the same reason.
fn check_events(conn: &Connection, events: &[Event]) -> Result<(), TestCaseError> {
    let established = events
        .iter()
        .filter(|e| matches!(e, Event::Established(_)))
        .count();
    prop_assert!(established <= 1);
    if established == 1 {
        prop_assert!(matches!(events[0], Event::Established(_)));
    }
    let terminations: Vec<&TerminationReason> = events
        .iter()
        .filter_map(|e| match e {
            Event::Terminated(r) => Some(r),
            _ => None,
        })
        .collect();
    match conn.termination_reason() {
        Some(reason) => {
            prop_assert_eq!(terminations, vec![reason]);
            prop_assert!(matches!(events.last(), Some(Event::Terminated(_))));
        }
        None => prop_assert!(terminations.is_empty()),
    }
    prop_assert!(established == 1 || !events.iter().any(|e| matches!(e, Event::Frame(_))));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random orders of valid, dropped, duplicated, forged and garbage inputs, timer jumps
    /// and user commands never panic; each side always ends established or terminated
    /// with a reason, and once the handshake deadline and the idle timeout have passed
    /// without traffic, terminated.
    #[test]
    fn handshake_machine_survives_any_schedule(
        actions in proptest::collection::vec(action(), 0..48),
        seed in any::<u64>(),
    ) {
        let now = Instant::now();
        let mut harness = Harness {
            now,
            conns: [
                Connection::client(&client_config(psk()), None, rng(seed), now).expect("client"),
                Connection::server(&server_config(psk()), None, rng(seed ^ 1), now).expect("server"),
            ],
            queues: Default::default(),
            events: Default::default(),
        };
        harness.pump();
        for action in actions {
            harness.apply(action);
        }
        for i in 0..2 {
            let conn = &harness.conns[i];
            prop_assert!(conn.is_established() || conn.termination_reason().is_some()
                || conn.poll_timeout().is_some(), "a live handshake always has a deadline");
            check_events(conn, &harness.events[i])?;
        }
        // Silence until every deadline has passed.
        harness.now += Duration::from_secs(3600);
        for conn in &mut harness.conns {
            conn.handle_timeout(harness.now);
        }
        harness.pump();
        for i in 0..2 {
            let conn = &harness.conns[i];
            prop_assert!(conn.termination_reason().is_some(), "{:?}", conn);
            prop_assert_eq!(conn.poll_timeout(), None);
            check_events(conn, &harness.events[i])?;
        }
    }

    /// With only valid deliveries in any interleaving, the handshake always succeeds.
    #[test]
    fn any_interleaving_of_valid_deliveries_establishes(
        order in proptest::collection::vec(any::<bool>(), 0..64),
        seed in any::<u64>(),
    ) {
        let now = Instant::now();
        let mut harness = Harness {
            now,
            conns: [
                Connection::client(&client_config(psk()), None, rng(seed), now).expect("client"),
                Connection::server(&server_config(psk()), None, rng(seed ^ 1), now).expect("server"),
            ],
            queues: Default::default(),
            events: Default::default(),
        };
        harness.pump();
        for to_server in order {
            harness.apply(if to_server { Action::ToServer } else { Action::ToClient });
        }
        while !harness.queues[0].is_empty() || !harness.queues[1].is_empty() {
            harness.apply(Action::ToServer);
            harness.apply(Action::ToClient);
        }
        prop_assert!(harness.conns[0].is_established());
        prop_assert!(harness.conns[1].is_established());
    }
}
