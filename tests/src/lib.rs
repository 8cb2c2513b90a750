//! Shared support for the cross-layer integration tests in `tests/tests/`.
//!
//! Each file there composes several liaison crates over real transports; this library holds
//! what more than one of them needs.

use bytes::Bytes;
use liaison_transport::{bind, connect, Loopback, LoopbackKind, Transport};
use liaison_wire::{Flags, Frame, FrameKind};

/// One valid frame of every kind, with payloads that tell them apart.
pub fn one_frame_of_each_kind() -> Vec<Frame> {
    FrameKind::ALL
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            let payload = Bytes::from(vec![u8::try_from(i).unwrap_or(u8::MAX); i * 7]);
            let frame = if kind.is_exchange() {
                Frame::on_exchange(kind, 1000 + i as u64, payload)
            } else {
                Frame::control(kind, payload)
            };
            if kind.allowed_flags().contains(Flags::SEQ) {
                frame.with_seq(i as u64)
            } else {
                frame
            }
        })
        .collect()
}

/// A connected (client, server) transport pair over a fresh loopback endpoint of `kind`.
pub async fn connected_pair(kind: LoopbackKind) -> (Box<dyn Transport>, Box<dyn Transport>) {
    let endpoint = Loopback::new(kind).expect("loopback endpoint");
    let mut listener = bind(&endpoint.address, &endpoint.config)
        .await
        .expect("bind");
    let client = connect(&listener.local_addr(), &endpoint.config)
        .await
        .expect("connect");
    (client, listener.accept().await.expect("accept"))
}
