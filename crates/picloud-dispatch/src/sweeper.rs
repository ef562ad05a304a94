//! Periodic clean-up: expired kv keys, orphaned `*.tmp.*` blob files, old invocation
//! records (and all but each app's newest).

use std::sync::Arc;
use std::time::Duration;

use picloud_core::store::{DataStore, InvocationStore};
use tokio_util::sync::CancellationToken;

use crate::blobs::BlobStore;

#[derive(Clone, Debug)]
pub struct SweeperConfig {
    pub every: Duration,
    /// A tmp file this old belongs to a write that will never finish.
    pub tmp_age: Duration,
    pub keep_invocations_per_app: u32,
    pub invocation_max_age: Duration,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(60),
            tmp_age: Duration::from_secs(3600),
            keep_invocations_per_app: 1000,
            invocation_max_age: Duration::from_secs(7 * 86_400),
        }
    }
}

/// One pass; returns (kv keys, tmp files, invocation records) removed.
pub async fn sweep_once(
    store: &(impl DataStore + InvocationStore + ?Sized),
    blobs: &BlobStore,
    cfg: &SweeperConfig,
) -> (u64, u64, u64) {
    let now = chrono::Utc::now().timestamp_millis();
    let kv = store.kv_sweep_expired(now).await.unwrap_or_else(|e| {
        crate::warn_unless_full!(e, "sweeping kv failed");
        0
    });
    let blobs2 = blobs.clone();
    let age = cfg.tmp_age;
    let tmp = tokio::task::spawn_blocking(move || blobs2.sweep_tmp(age))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let before = now - cfg.invocation_max_age.as_millis() as i64;
    let inv = store
        .prune_invocations(cfg.keep_invocations_per_app, before)
        .await
        .unwrap_or_else(|e| {
            crate::warn_unless_full!(e, "pruning invocation records failed");
            0
        });
    (kv, tmp, inv)
}

pub fn spawn<S>(store: Arc<S>, blobs: BlobStore, cfg: SweeperConfig, stop: CancellationToken)
where
    S: DataStore + InvocationStore + ?Sized + 'static,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(cfg.every) => {}
                _ = stop.cancelled() => return,
            }
            let (kv, tmp, inv) = sweep_once(&*store, &blobs, &cfg).await;
            if kv + tmp + inv > 0 {
                tracing::debug!(kv, tmp, inv, "swept");
            }
        }
    });
}
