//! The service exported next to other services: a root that hands out the state service
//! as a capability, and a client built on that capability. Locks are shared with the same
//! service served elsewhere, and the capability is revoked with its session.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use liaison_exchange::{service_fn, CapabilityRef, Context, Endpoint, ExchangeConfig};
use liaison_resume::MemoryStore;
use liaison_session::{ClientConfig, PskAuth, RootCapability, ServerConfig, Session};
use liaison_state::{StateClient, StateConfig, StateError, StateService};
use liaison_transport::memory;

#[tokio::test(start_paused = true)]
async fn the_service_as_an_exported_capability() {
    let key = [3u8; 32];
    let service = StateService::new(
        Arc::new(MemoryStore::new()),
        StateConfig::default().with_lock_wait(Duration::from_secs(1)),
    )
    .expect("service");
    let (a, b) = memory::pair(64, 1 << 20);
    let (client, server) = tokio::try_join!(
        Session::connect(
            Box::new(a),
            ClientConfig::new(PskAuth::new("app", key).unwrap())
        ),
        Session::accept(
            Box::new(b),
            ServerConfig::new(PskAuth::new("app", key).unwrap())
                .with_root(RootCapability::new(1, &b"directory"[..])),
        ),
    )
    .expect("sessions");

    // The root is a directory: asked for "state", it exports the state service.
    let exported = service.clone();
    let _server = Endpoint::builder(server)
        .root(service_fn(move |name: String, ctx: Context| {
            let exported = exported.clone();
            async move {
                match name.as_str() {
                    "state" => Ok(ctx.export(exported)),
                    other => Err(format!("no service {other:?}")),
                }
            }
        }))
        .start()
        .expect("server");
    let client = Endpoint::new(client, ExchangeConfig::default()).expect("client");
    let capability: CapabilityRef = client
        .root()
        .expect("root")
        .call_typed(&"state".to_string())
        .await
        .expect("the state capability");
    let states = StateClient::new(client.remote(capability));
    assert_eq!(states.remote().capability(), capability);

    let written = states
        .update("k", |_| Bytes::from_static(b"v"))
        .await
        .expect("update");
    assert_eq!(states.get("k").await.expect("get"), written);

    // The same service instance, so the same locks: a second client of another session
    // through the root directory waits its lock wait out.
    let guard = states.lock("k").await.expect("lock");
    let (c, d) = memory::pair(64, 1 << 20);
    let (client2, server2) = tokio::try_join!(
        Session::connect(
            Box::new(c),
            ClientConfig::new(PskAuth::new("app", key).unwrap())
        ),
        Session::accept(
            Box::new(d),
            ServerConfig::new(PskAuth::new("app", key).unwrap())
                .with_root(RootCapability::new(1, &b"state"[..])),
        ),
    )
    .expect("sessions");
    let _server2 = service.serve(server2).expect("serve");
    let other = StateClient::root(&Endpoint::new(client2, ExchangeConfig::default()).unwrap())
        .expect("root");
    assert!(other.lock("k").await.unwrap_err().is_locked());
    guard.release().await.expect("release");

    // Revoked with the session.
    client.close("done").await;
    let error = states.get("k").await.unwrap_err();
    assert!(
        matches!(&error, StateError::Exchange(e) if e.is_revoked()),
        "{error}"
    );
    // The lock is free for the other session.
    other
        .lock("k")
        .await
        .expect("lock")
        .release()
        .await
        .expect("release");
}
