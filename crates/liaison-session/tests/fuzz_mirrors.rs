//! The fuzz targets of `fuzz/` for this crate run as proptests, so every test run exercises
//! their code: each target and the tests below call the same `run` from `fuzz_bodies/`.

use liaison_session::messages::{Blob, Bye, ConfigAnswer, ConfigRequest, Reject, Welcome};
use liaison_session::{ReasonCode, SequencingMode, SessionLimits};
use liaison_wire::{Codec, DefaultCodec};
use proptest::prelude::*;

#[path = "fuzz_bodies/handshake.rs"]
mod handshake;
#[path = "fuzz_bodies/session_messages.rs"]
mod session_messages;

fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// One round trip of a working link: the client transmits, the server takes it, the server
/// transmits, the client takes it. Four of them establish a session.
const ROUND_TRIP: [u8; 8] = [0, 0, 3, 1, 1, 0, 2, 0];

/// Operation bytes biased towards a working link: mostly transmit and deliver, some sends
/// and clock ticks, now and then anything; most runs start with an established session.
fn link_ops() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![
        6 => 0u8..2,                        // transmit
        6 => (0u8..2).prop_map(|s| 2 | s),  // deliver
        1 => (0u8..2).prop_map(|s| 6 | s),  // drop
        1 => (0u8..2).prop_map(|s| 8 | s),  // duplicate
        1 => (0u8..2).prop_map(|s| 10 | s), // reorder
        2 => Just(16u8),                    // advance the clock
        4 => (0u8..2).prop_map(|s| 18 | s), // send
        1 => any::<u8>(),
    ];
    (
        any::<u8>(),
        prop::bool::weighted(0.8),
        prop::collection::vec((op, any::<u8>()), 0..400),
    )
        .prop_map(|(setup, establish, ops)| {
            let rounds = if establish { 4 } else { 0 };
            std::iter::once(setup)
                .chain(ROUND_TRIP.iter().copied().cycle().take(8 * rounds))
                .chain(ops.into_iter().flat_map(|(op, arg)| [op, arg]))
                .collect()
        })
}

fn limits() -> impl Strategy<Value = SessionLimits> {
    (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c, d)| {
        let mut limits = SessionLimits::default();
        limits.max_frame_payload = a;
        limits.max_exchanges = b;
        limits.receive_buffer = c;
        limits.send_buffer = d;
        limits
    })
}

fn mode() -> impl Strategy<Value = SequencingMode> {
    prop_oneof![
        Just(SequencingMode::None),
        Just(SequencingMode::Ordered),
        Just(SequencingMode::Unordered)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn session_messages_target_on_arbitrary_bytes(data in any_bytes(96)) {
        session_messages::run(&data);
    }

    #[test]
    fn session_messages_target_on_valid_messages(
        version in any::<u16>(),
        mechanism in "[a-z0-9-]{0,24}",
        code in any::<u16>(),
        text in "\\PC{0,40}",
        versions in prop::collection::vec(any::<u16>(), 0..4),
        limits in limits(),
        timers in (any::<u64>(), any::<u64>()),
        mode in mode(),
        params in any_bytes(16),
        root in prop::option::of((any::<u64>(), any_bytes(8))),
    ) {
        let codec = DefaultCodec::default();
        session_messages::run(
            &Welcome {
                version,
                mechanism,
                nonce: [9; 32],
            }
            .to_bytes(),
        );
        let reject = Reject {
            code,
            message: text.clone(),
            supported_versions: versions,
        };
        session_messages::run(&codec.encode(&reject)?);
        session_messages::run(&codec.encode(&Bye::new(ReasonCode::from(code), &text))?);
        let request = ConfigRequest {
            limits,
            keepalive_ms: timers.0,
            idle_timeout_ms: timers.1,
            sequencing: mode,
            app_params: Blob(params.clone()),
            resume_key: None,
        };
        session_messages::run(&codec.encode(&request)?);
        let answer = ConfigAnswer {
            session_id: Blob(vec![7; 16]),
            limits,
            keepalive_ms: timers.0,
            idle_timeout_ms: timers.1,
            sequencing: mode,
            app_params: Blob(params),
            root: root.map(|(id, d)| (id, Blob(d))),
            resume_key: None,
        };
        session_messages::run(&codec.encode(&answer)?);
    }

    #[test]
    fn handshake_target_on_arbitrary_bytes(data in any_bytes(800)) {
        handshake::run(&data);
    }

    #[test]
    fn handshake_target_on_a_working_link(data in link_ops()) {
        handshake::run(&data);
    }
}
