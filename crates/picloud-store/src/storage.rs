//! Storage-full detection: the condition `/readyz` and `/metrics` report, logged once per
//! change of state.
//!
//! Writes report a full disk themselves (`StoreError::StorageFull`, answered 507). This
//! module keeps the node's view of it: the first such error anywhere (a publish, a kv write,
//! a WAL checkpoint) wakes the watch task, which probes with a write of its own
//! ([`PROBE_BYTES`] committed, then deleted). A probe refused for space marks the store
//! full; while full, the task probes every [`PROBE_INTERVAL`] and clears the mark when one
//! commits. A probe larger than most writes keeps the mark from flapping at the edge.
//! Nothing is written while the store is not full.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use picloud_core::StoreError;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::db::on_pool;
use crate::{error, Db};

/// Bytes one probe commits.
const PROBE_BYTES: usize = 64 * 1024;
/// How often a full store is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Woken by every storage-full error in the process. Process-wide because errors are
/// mapped without a store at hand; a wake-up only makes each store probe its own database.
static FULL_SEEN: Notify = Notify::const_new();

pub(crate) fn full_seen() {
    FULL_SEEN.notify_waiters();
}

/// The store's view of its storage, shared by its clones and the watch task.
#[derive(Debug, Default)]
pub(crate) struct StorageState {
    full: AtomicBool,
}

impl StorageState {
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Records the probe's verdict; logs when it changes.
    fn set_full(&self, full: bool) {
        if self.full.swap(full, Ordering::Relaxed) == full {
            return;
        }
        if full {
            tracing::error!(
                "storage is full: durable writes (publishes, kv, docs, files, scripts, \
                 deliveries) are refused with 507 storage_full until space returns; \
                 ephemeral publishes, reads and open streams go on"
            );
        } else {
            tracing::info!("storage has space again: durable writes resumed");
        }
    }
}

/// The running watch task; dropped with the last store clone, which stops it.
#[derive(Debug)]
pub(crate) struct Watch(AbortHandle);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the watch on `db` (must be called within a tokio runtime).
pub(crate) fn start(db: Db, state: Arc<StorageState>) -> Watch {
    let task = tokio::spawn(async move {
        loop {
            let woken = FULL_SEEN.notified();
            if state.is_full() {
                tokio::time::sleep(PROBE_INTERVAL).await;
            } else {
                woken.await;
            }
            if on_pool!(&db, pool => pool.is_closed()) {
                return;
            }
            match probe(&db).await {
                Ok(()) => state.set_full(false),
                Err(StoreError::StorageFull(_)) => state.set_full(true),
                // Not about space (say, the database is unreachable): the writes
                // themselves report that; keep the current view.
                Err(e) => tracing::debug!(error = %e, "storage probe failed"),
            }
        }
    });
    Watch(task.abort_handle())
}

/// Commits [`PROBE_BYTES`] (incompressible, so PostgreSQL's TOAST stores them all), then
/// deletes them.
async fn probe(db: &Db) -> Result<(), StoreError> {
    let pad = incompressible(PROBE_BYTES);
    on_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO storage_probe (id, pad) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET pad = excluded.pad",
        )
        .bind(&pad)
        .execute(pool)
        .await
        .map_err(error::other)?;
        sqlx::query("DELETE FROM storage_probe")
            .execute(pool)
            .await
            .map_err(error::other)?;
    });
    Ok(())
}

/// xorshift bytes: no compressor shrinks them, and no entropy is needed.
fn incompressible(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}
