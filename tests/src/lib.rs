//! Shared support for the cross-layer integration tests in `tests/tests/`.
//!
//! Each file there composes several liaison crates over real transports; this library holds
//! what more than one of them needs: an [`Echo`] service, connected transport pairs, hostile
//! peers and a server harness ([`hostile`]), the cells of the integration matrix
//! ([`matrix`]) and memory figures ([`memory`]). Its `soak` binary is the soak run of
//! `cargo xtask soak`.
//!
//! # Example
//!
//! A frame of every kind crosses a TCP connection intact.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use liaison_tests::{connected_pair, one_frame_of_each_kind};
//! use liaison_transport::LoopbackKind;
//! use liaison_wire::{Frame, Limits};
//!
//! let (client, server) = connected_pair(LoopbackKind::Tcp).await;
//! let (mut tx, _) = client.split();
//! let (_, mut rx) = server.split();
//! for frame in one_frame_of_each_kind() {
//!     tx.send(frame.to_bytes()).await.expect("send");
//!     let bytes = rx.recv().await.expect("recv").expect("a frame");
//!     assert_eq!(Frame::decode(bytes, &Limits::default()).expect("decodes"), frame);
//! }
//! # }
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use liaison_exchange::{Context, Exchange, Service};
use liaison_transport::fault::{FaultConfig, FaultyTransport};
use liaison_transport::{
    bind, connect, Address, Listener, Loopback, LoopbackKind, Transport, TransportError,
};
use liaison_wire::{Flags, Frame, FrameKind};

pub mod hostile;
pub mod matrix;
pub mod memory;

/// A service that echoes every message back on its exchange, in order, then ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

#[async_trait]
impl Service for Echo {
    async fn handle(&self, mut exchange: Exchange, _ctx: &Context) {
        while let Ok(Some(message)) = exchange.recv().await {
            if exchange.send(message).await.is_err() {
                return;
            }
        }
        let _ = exchange.end().await;
    }
}

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

/// A listener whose accepted connections inject faults on their sending side, each seeded
/// with the configuration's seed plus its index: the server's half of a lossy link.
pub struct FaultyListener {
    inner: Box<dyn Listener>,
    faults: FaultConfig,
    accepted: u64,
}

impl FaultyListener {
    /// Wraps `inner`; every connection it accepts injects `faults`.
    pub fn new(inner: Box<dyn Listener>, faults: FaultConfig) -> Self {
        Self {
            inner,
            faults,
            accepted: 0,
        }
    }
}

#[async_trait]
impl Listener for FaultyListener {
    async fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        let transport = self.inner.accept().await?;
        self.accepted += 1;
        let faults = self
            .faults
            .with_seed(self.faults.seed.wrapping_add(self.accepted));
        Ok(FaultyTransport::wrap(transport, faults))
    }

    fn local_addr(&self) -> Address {
        self.inner.local_addr()
    }
}
