//! Retention: deletes history beyond each topic's limits, periodically, until shutdown.

use std::sync::Arc;
use std::time::Duration;

use picloud_core::store::MessageStore;
use tokio_util::sync::CancellationToken;

pub fn spawn(
    store: Arc<dyn MessageStore>,
    every: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match store
                .prune_messages(chrono::Utc::now().timestamp_millis())
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::debug!(pruned = n, "retention pruned messages"),
                // A full disk is reported once by the store, not on every pass.
                Err(e @ picloud_core::StoreError::StorageFull(_)) => {
                    tracing::debug!(error = %e, "retention pruning failed; will retry")
                }
                Err(e) => tracing::warn!(error = %e, "retention pruning failed; will retry"),
            }
        }
    })
}
