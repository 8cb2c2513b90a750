//! The `Store` conformance suite, compiled once per backend: memory (paused tokio time),
//! redb (a temporary file on a manual clock) and Redis (a private `redis-server`).

mod common;

use std::sync::Arc;

use common::Backend;

/// The suite for one backend: `$make` builds it, `$($rt)*` are the `tokio::test` arguments.
macro_rules! conformance {
    ($name:ident, $make:expr, $($rt:tt)*) => {
        mod $name {
            use super::*;

            async fn backend() -> Backend {
                $make
            }

            #[tokio::test($($rt)*)]
            async fn values() {
                common::values(&backend().await).await;
            }

            #[tokio::test($($rt)*)]
            async fn namespaces() {
                common::namespaces(&backend().await).await;
            }

            #[tokio::test($($rt)*)]
            async fn time_to_live() {
                common::time_to_live(&backend().await).await;
            }

            #[tokio::test($($rt)*)]
            async fn locks() {
                common::locks(&backend().await).await;
            }

            #[tokio::test($($rt)*)]
            async fn lease_expiry() {
                common::lease_expiry(&backend().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_increments() {
                let backend = backend().await;
                common::concurrent_increments(&[Arc::clone(&backend.store)]).await;
            }
        }
    };
}

conformance!(memory, common::memory(), start_paused = true);
#[cfg(feature = "redb")]
conformance!(redb, common::redb(), flavor = "current_thread");
#[cfg(feature = "redis")]
conformance!(redis, common::redis().await, flavor = "current_thread");
