//! Tests of the core's resume (docs/PROTOCOL.md §10) without I/O: two cores on a virtual
//! clock, a cut, and the resume handshake run by a second client core and a fresh server
//! core, which hand over to the session's own cores.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_resume::MemoryStore;
use liaison_transport::Properties;
use liaison_wire::{Frame, FrameKind};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Connection, Event};
use crate::auth::PskAuth;
use crate::messages::ReasonCode;
use crate::{
    ClientConfig, ResumeConfig, ServerConfig, ServerResume, SessionConfig, TerminationReason,
};

const RELIABLE: Properties = Properties {
    reliable: true,
    ordered: true,
    max_frame: 1 << 20,
};

const LOSSY: Properties = Properties {
    reliable: false,
    ordered: false,
    max_frame: 1 << 20,
};

fn configs() -> (ClientConfig, ServerConfig) {
    let psk = || PskAuth::new("tenant", [0x42; 32]).expect("valid key");
    let session = SessionConfig::default();
    let client = ClientConfig::new(psk().with_name("worker"))
        .with_session(session.clone())
        .with_resume(ResumeConfig::default());
    let store = Arc::new(MemoryStore::new());
    let server = ServerConfig::new(psk().with_name("hub"))
        .with_session(session)
        .with_resume(ServerResume::new(store, Duration::from_secs(30)));
    (client, server)
}

fn rng(seed: u64) -> Box<StdRng> {
    Box::new(StdRng::seed_from_u64(seed))
}

/// What [`run`] saw.
#[derive(Default)]
struct Outcome {
    /// The data payloads each side got: the client's (`a`) first.
    got: [Vec<Bytes>; 2],
    /// The other events of both sides.
    events: Vec<Event>,
    /// Every frame each side sent, delivered or not.
    sent: [Vec<Frame>; 2],
}

/// Moves frames between two cores until neither sends anything; `cut` drops every frame
/// after that many (counted over both directions).
fn run(a: &mut Connection, b: &mut Connection, now: Instant, cut: Option<usize>) -> Outcome {
    let mut outcome = Outcome::default();
    let mut passed = 0;
    loop {
        let to_b: VecDeque<Frame> = std::iter::from_fn(|| a.poll_transmit(now)).collect();
        let to_a: VecDeque<Frame> = std::iter::from_fn(|| b.poll_transmit(now)).collect();
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        outcome.sent[0].extend(to_b.iter().cloned());
        outcome.sent[1].extend(to_a.iter().cloned());
        for frame in to_b {
            if cut.is_none_or(|c| passed < c) {
                b.handle_frame(now, frame);
            }
            passed += 1;
        }
        for frame in to_a {
            if cut.is_none_or(|c| passed < c) {
                a.handle_frame(now, frame);
            }
            passed += 1;
        }
        for (conn, got) in [(&mut *a, 0), (&mut *b, 1)] {
            while let Some(event) = conn.poll_event() {
                match event {
                    Event::Frame(frame) if frame.kind == FrameKind::Data => {
                        outcome.got[got].push(frame.payload);
                    }
                    other => outcome.events.push(other),
                }
            }
        }
    }
    outcome
}

/// The resume request among a server core's events.
fn resume_request(events: &[Event]) -> super::ResumeRequest {
    events
        .iter()
        .find_map(|e| match e {
            Event::ResumeRequested(request) => Some((**request).clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no resume request: {events:?}"))
}

/// A resumable session over a lossy transport whose client lost its connection, and the
/// cores of a resume attempt over a new one: the client's and a fresh server's.
struct Lossy {
    client: Connection,
    server: Connection,
    attempt: Connection,
    fresh: Connection,
}

impl Lossy {
    fn cut(now: Instant) -> Self {
        let (client_config, server_config) = configs();
        let lossy = |mut conn: Connection| {
            conn.set_transport_properties(now, &LOSSY).expect("lossy");
            conn
        };
        let mut client = lossy(Connection::client(&client_config, None, rng(1), now).expect("c"));
        let mut server = lossy(Connection::server(&server_config, None, rng(2), now).expect("s"));
        run(&mut client, &mut server, now, None);
        assert!(client.established().is_some_and(|e| e.is_resumable()));
        client.handle_transport_lost(now, None);
        let ticket = client.resume_ticket().expect("ticket");
        let attempt = Connection::client_resume(&client_config, ticket, None, rng(3), now);
        let fresh = Connection::server(&server_config, None, rng(4), now);
        Self {
            client,
            server,
            attempt: lossy(attempt.expect("attempt")),
            fresh: lossy(fresh.expect("fresh")),
        }
    }
}

/// The payloads of [`message`]s `range`.
fn payloads(range: std::ops::Range<u8>) -> Vec<Bytes> {
    range.map(|i| Bytes::from(vec![i])).collect()
}

/// Five messages each way between two established cores arrive, in order.
fn assert_messages_flow(client: &mut Connection, server: &mut Connection, now: Instant) {
    for i in 0..5 {
        client.send(message(i)).expect("send");
        server.send(message(100 + i)).expect("send");
    }
    let got = run(client, server, now, None).got;
    assert_eq!(got[0], payloads(100..105));
    assert_eq!(got[1], payloads(0..5));
    assert!(!client.is_terminated() && !server.is_terminated());
}

fn message(i: u8) -> Frame {
    Frame::data(1, Bytes::from(vec![i]))
}

#[test]
fn a_cut_session_detaches_and_resumes_with_nothing_lost() {
    let (client_config, server_config) = configs();
    let t0 = Instant::now();
    let mut client = Connection::client(&client_config, None, rng(1), t0).expect("client");
    let mut server = Connection::server(&server_config, None, rng(2), t0).expect("server");
    run(&mut client, &mut server, t0, None);
    assert!(client.established().is_some_and(|e| e.is_resumable()));
    let server_secret = server
        .established()
        .and_then(|e| e.resume_secret.clone())
        .expect("resumable");

    for i in 0..10 {
        client.send(message(i)).expect("send");
        server.send(message(100 + i)).expect("send");
    }
    // The link fails with frames in flight both ways.
    let [first_c, first_s] = run(&mut client, &mut server, t0, Some(7)).got;
    let t1 = t0 + Duration::from_secs(1);
    client.handle_transport_lost(t1, Some("reset"));
    server.handle_transport_lost(t1, None);
    assert!(client.is_detached() && server.is_detached());
    assert!(!client.is_terminated() && !server.is_terminated());
    // Buffered while detached; nothing goes out.
    client.send(message(10)).expect("buffered");
    assert!(client.poll_transmit(t1).is_none());

    // The resume handshake on new cores.
    let ticket = client.resume_ticket().expect("ticket");
    let mut attempt =
        Connection::client_resume(&client_config, ticket, None, rng(3), t1).expect("attempt");
    let mut fresh = Connection::server(&server_config, None, rng(4), t1).expect("fresh");
    let events = run(&mut attempt, &mut fresh, t1, None).events;
    let request = resume_request(&events);
    assert_eq!(
        request.session_id,
        client.established().expect("e").config.session_id
    );
    assert!(liaison_resume::verify(
        &server_secret,
        &request.nonce,
        &request.session_id.0,
        &request.proof
    ));
    // The live server core takes the connection over and answers.
    server
        .reattach(t1, &RELIABLE, request.next_expected, true, Vec::new())
        .expect("reattach");
    // Its `ResumeAck` comes first; what follows is for the session's own client core.
    let mut from_server: VecDeque<Frame> =
        std::iter::from_fn(|| server.poll_transmit(t1)).collect();
    let ack = from_server.pop_front().expect("ResumeAck");
    assert_eq!(ack.kind, FrameKind::ResumeAck);
    attempt.handle_frame(t1, ack);
    let Some(Event::Resumed {
        peer_next,
        restarted,
    }) = attempt.poll_event()
    else {
        panic!("not resumed");
    };
    assert!(!restarted);
    client
        .reattach(t1, &RELIABLE, peer_next, false, Vec::new())
        .expect("reattach");
    let mut rest_c = Vec::new();
    for frame in from_server {
        client.handle_frame(t1, frame);
    }
    while let Some(event) = client.poll_event() {
        if let Event::Frame(frame) = event {
            rest_c.push(frame.payload);
        }
    }
    let [more_c, rest_s] = run(&mut client, &mut server, t1, None).got;
    let got_c: Vec<Bytes> = [first_c, rest_c, more_c].concat();
    let got_s: Vec<Bytes> = [first_s, rest_s].concat();
    assert_eq!(got_c, payloads(100..110));
    assert_eq!(got_s, payloads(0..11));
    assert!(!client.is_detached() && !server.is_detached());
}

#[test]
fn a_detached_server_session_expires_and_an_unknown_resume_gets_new() {
    let (client_config, server_config) = configs();
    let t0 = Instant::now();
    let mut client = Connection::client(&client_config, None, rng(1), t0).expect("client");
    let mut server = Connection::server(&server_config, None, rng(2), t0).expect("server");
    run(&mut client, &mut server, t0, None);
    server.handle_transport_lost(t0, None);
    let deadline = server.poll_timeout().expect("a detach deadline");
    assert_eq!(deadline, t0 + Duration::from_secs(30));
    server.handle_timeout(deadline);
    assert_eq!(
        server.termination_reason(),
        Some(&TerminationReason::IdleTimeout)
    );

    let mut attempt = Connection::client_resume(
        &client_config,
        client.resume_ticket().expect("ticket"),
        None,
        rng(3),
        deadline,
    )
    .expect("attempt");
    let mut fresh = Connection::server(&server_config, None, rng(4), deadline).expect("fresh");
    run(&mut attempt, &mut fresh, deadline, None);
    fresh.resume_refuse(ReasonCode::SessionUnknown, "session unknown or expired");
    run(&mut attempt, &mut fresh, deadline, None);
    assert!(matches!(
        attempt.termination_reason(),
        Some(TerminationReason::ResumeRefused {
            code: ReasonCode::SessionUnknown,
            ..
        })
    ));
}

/// docs/SESSION.md §7.6: over a lossy transport the client may repeat any frame of its
/// resume handshake, and the link may duplicate the server's, after the session's own
/// cores took the connection over. Those repeats are ignored, not violations.
#[test]
fn repeats_of_the_resume_handshake_after_the_handover_are_ignored() {
    let t0 = Instant::now();
    let Lossy {
        mut client,
        mut server,
        mut attempt,
        mut fresh,
    } = Lossy::cut(t0);
    server.handle_transport_lost(t0, None);
    let resume = run(&mut attempt, &mut fresh, t0, None);
    let request = resume_request(&resume.events);
    let [from_attempt, from_fresh] = resume.sent;
    assert!(from_attempt.iter().any(|f| f.kind == FrameKind::AuthProof));

    server
        .reattach(
            t0,
            &LOSSY,
            request.next_expected,
            true,
            fresh.take_peer_handshake(),
        )
        .expect("server reattach");
    for frame in from_attempt.iter().cloned() {
        server.handle_frame(t0, frame);
    }
    let from_server: Vec<Frame> = std::iter::from_fn(|| server.poll_transmit(t0)).collect();
    assert!(!server.is_terminated(), "{:?}", server.termination_reason());
    // The repeated `Resume` got the `ResumeAck` again, and nothing else was answered.
    assert!(
        from_server.len() >= 2 && from_server.iter().all(|f| f.kind == FrameKind::ResumeAck),
        "{from_server:?}"
    );

    attempt.handle_frame(t0, from_server[0].clone());
    let Some(Event::Resumed { peer_next, .. }) = attempt.poll_event() else {
        panic!("not resumed");
    };
    client
        .reattach(t0, &LOSSY, peer_next, false, attempt.take_peer_handshake())
        .expect("client reattach");
    for frame in from_fresh.into_iter().chain(from_server) {
        client.handle_frame(t0, frame);
    }
    assert!(!client.is_terminated(), "{:?}", client.termination_reason());
    let passed_up: Vec<Event> = std::iter::from_fn(|| client.poll_event())
        .filter(|e| matches!(e, Event::Frame(_)))
        .collect();
    assert!(
        passed_up.is_empty(),
        "repeats are not passed up: {passed_up:?}"
    );

    assert_messages_flow(&mut client, &mut server, t0);
}

/// docs/SESSION.md §7.6, §8.2: over a lossy transport, a restarted server's
/// `ResumeStateAck` is lost; the client repeats its `ResumeState`, the rebuilt session
/// answers again, and a duplicate of the answer reaching the client's resumed session is
/// ignored.
#[test]
fn a_lost_resume_state_answer_is_sent_again() {
    let t0 = Instant::now();
    let Lossy {
        mut client,
        server: old,
        mut attempt,
        fresh: mut server,
    } = Lossy::cut(t0);
    let established = old.established().expect("established").clone();
    let secret = established.resume_secret.clone().expect("resumable");
    // The server restarts: only its store knows the session.
    drop(old);
    let events = run(&mut attempt, &mut server, t0, None).events;
    resume_request(&events);
    server.resume_restore(established.config.clone(), secret);
    let events = run(&mut attempt, &mut server, t0, None).events;
    let Some(state) = events.iter().find_map(|e| match e {
        Event::ResumeState(state) => Some(state.clone()),
        _ => None,
    }) else {
        panic!("no client state: {events:?}");
    };
    server.resume_state_verdict(t0, state, Ok(()));
    assert!(server.is_established());
    let lost: Vec<Frame> = std::iter::from_fn(|| server.poll_transmit(t0)).collect();
    assert_eq!(
        lost.first().map(|f| f.kind),
        Some(FrameKind::ResumeStateAck)
    );

    // The client's timer repeats its `ResumeState`; the rebuilt session answers again.
    let deadline = attempt.poll_timeout().expect("a repeat timer");
    attempt.handle_timeout(deadline);
    let repeat: Vec<Frame> = std::iter::from_fn(|| attempt.poll_transmit(deadline)).collect();
    assert!(
        repeat.iter().any(|f| f.kind == FrameKind::ResumeState),
        "{repeat:?}"
    );
    for frame in repeat {
        server.handle_frame(deadline, frame);
    }
    assert!(!server.is_terminated(), "{:?}", server.termination_reason());
    let answer: Vec<Frame> = std::iter::from_fn(|| server.poll_transmit(deadline)).collect();
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0].kind, FrameKind::ResumeStateAck);
    attempt.handle_frame(deadline, answer[0].clone());
    let Some(Event::Resumed {
        restarted: true, ..
    }) = attempt.poll_event()
    else {
        panic!("not resumed from the restart");
    };
    client
        .reattach_restarted(deadline, &LOSSY, attempt.take_peer_handshake())
        .expect("client reattach");
    // A duplicate of the first answer arrives late.
    client.handle_frame(deadline, lost[0].clone());
    assert!(!client.is_terminated(), "{:?}", client.termination_reason());

    assert_messages_flow(&mut client, &mut server, deadline);
}
