//! PiCloud script execution (DESIGN §7–8).
//!
//! # Layout
//! - [`invoker`]: runs one script for one app (cached compiled versions, per-app limits
//!   and run slots, script threads from `pool`) and records it.
//! - [`host`]: the SDK calls a script makes, bound to its app (kv, docs, files, pubsub,
//!   env), implemented over the store, the publisher and the blob store.
//! - [`blobs`]: file bytes on disk, written atomically.
//! - [`dispatcher`]: the outbox loop: claims, leases, retries with backoff, dead letters,
//!   cron firing.
//! - [`sweeper`]: expired kv keys, orphaned tmp files, old invocation records.
//! - `recorder`: batched invocation records; `pool`: the script threads.

/// Warns about a background store call that failed, unless it failed for a full disk:
/// that the store reports once per change of state, and every write would repeat it.
macro_rules! warn_unless_full {
    ($e:expr, $($rest:tt)+) => {
        if matches!($e, picloud_core::StoreError::StorageFull(_)) {
            tracing::debug!(error = %$e, $($rest)+)
        } else {
            tracing::warn!(error = %$e, $($rest)+)
        }
    };
}
pub(crate) use warn_unless_full;

pub mod blobs;
pub mod dispatcher;
pub mod host;
pub mod invoker;
mod pool;
mod recorder;
pub mod sweeper;

pub use blobs::BlobStore;
pub use dispatcher::{Dispatcher, DispatcherConfig};
pub use host::HostDeps;
pub use invoker::{InvokeError, Invoker, InvokerConfig, Ran};
