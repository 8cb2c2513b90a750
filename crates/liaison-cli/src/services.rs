//! What `liaison serve` offers on every session, and how `liaison connect` reaches it.
//!
//! The session's root capability is a directory: a typed call with a service name
//! (`"echo"`, `"stream"`, `"state"`) answers the capability serving it. `echo` sends every message of
//! an exchange back, then ends; a unary call to it returns its request. `stream` takes a
//! [`StreamRequest`] and sends that many numbered messages, then ends. `state` is the
//! session-state service (`liaison-state`) over the server's store, one instance shared by
//! every session so that locks taken on one session hold against the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{BufMut as _, Bytes, BytesMut};
use liaison_exchange::{service_fn, CapabilityRef, Context, Exchange, Service};
use liaison_state::StateService;
use serde::{Deserialize, Serialize};

/// The name of the echo service.
pub(crate) const ECHO: &str = "echo";
/// The name of the stream service.
pub(crate) const STREAM: &str = "stream";
/// The name of the session-state service.
pub(crate) const STATE: &str = "state";
/// Every service name the directory knows.
pub(crate) const SERVICES: [&str; 3] = [ECHO, STREAM, STATE];

/// What the root capability's descriptor says (the client checks it before asking).
pub(crate) const ROOT_DESCRIPTOR: &[u8] = b"liaison-cli/directory/1";

/// Echoes every message of an exchange back, then ends its side.
pub(crate) struct Echo;

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

/// The first message of an exchange with the stream service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamRequest {
    /// How many messages to send.
    pub(crate) count: u64,
    /// Filler bytes after each message's 8-byte index.
    pub(crate) size: u32,
}

/// Message `index` of a stream: the index (little-endian u64), then `size` filler bytes.
pub(crate) fn stream_message(index: u64, size: u32) -> Bytes {
    let mut message = BytesMut::with_capacity(8 + size as usize);
    message.put_u64_le(index);
    message.put_bytes(u8::try_from(index % 251).unwrap_or(0), size as usize);
    message.freeze()
}

/// Sends the messages a [`StreamRequest`] asks for, then ends; a request whose messages
/// exceed the session's payload limit fails the exchange with a reason.
pub(crate) struct Streamer;

#[async_trait]
impl Service for Streamer {
    async fn handle(&self, mut exchange: Exchange, ctx: &Context) {
        let request = match exchange.recv_typed::<StreamRequest>().await {
            Ok(Some(request)) => request,
            Ok(None) => {
                let _ = exchange.fail("expected a stream request").await;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "stream request");
                let _ = exchange.fail("malformed stream request").await;
                return;
            }
        };
        let limit = ctx.session().config().limits.max_frame_payload;
        if u64::from(request.size) + 8 > u64::from(limit) {
            let _ = exchange
                .fail(format!(
                    "messages of {} bytes exceed the session's {limit}-byte payload limit",
                    u64::from(request.size) + 8
                ))
                .await;
            return;
        }
        for index in 0..request.count {
            if exchange
                .send(stream_message(index, request.size))
                .await
                .is_err()
            {
                return;
            }
        }
        if exchange.end().await.is_ok() {
            // Dropping the exchange before the client's side ended would cancel it (and the
            // messages not yet read): wait for that end.
            while let Ok(Some(_)) = exchange.recv().await {}
        }
    }
}

/// The root capability of one session: maps a service name to the capability serving it,
/// exporting each service once per session; `state` is the server's shared service.
pub(crate) fn directory(state: StateService) -> impl Service {
    let exported: Arc<Mutex<HashMap<String, CapabilityRef>>> = Arc::default();
    service_fn(move |name: String, ctx: Context| {
        let exported = Arc::clone(&exported);
        let state = state.clone();
        async move {
            // The lock is never held across an await, so it cannot be poisoned by one.
            let mut exported = exported.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(capability) = exported.get(&name) {
                return Ok(*capability);
            }
            let capability = match name.as_str() {
                ECHO => ctx.export(Echo),
                STREAM => ctx.export(Streamer),
                STATE => ctx.export(state),
                _ => {
                    return Err(format!(
                        "no service `{name}` (known: {})",
                        SERVICES.join(", ")
                    ))
                }
            };
            exported.insert(name, capability);
            Ok::<_, String>(capability)
        }
    })
}
