//! SQLite: WAL checkpoints off the commit path.
//!
//! SQLite's own checkpoint runs inside the commit that takes the WAL past
//! `wal_autocheckpoint` pages, so that commit (a whole publish batch) waits while pages are
//! copied back into the database file. At the default 1,000 pages, publishing over many
//! topics spent 11 % of the server's CPU there, copying the same hot topic and index pages
//! again and again; at 10,000 pages it copied less but stalled one commit for longer (S5's
//! p99 at 5k/s went from ~8 to 22–24 ms; docs/benchmarks.md).
//!
//! So a task checkpoints passively from a pool connection every [`INTERVAL`]: passive
//! checkpoints never block the writer, and once every frame is back in the database file
//! the writer's next transaction starts the WAL over from its beginning. The writers'
//! own threshold goes up to [`AUTOCHECKPOINT_PAGES`] and stays as the backstop: if the task
//! falls behind, a commit still checkpoints, so the WAL stays bounded either way.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::task::AbortHandle;

/// The writers' own checkpoint threshold, in WAL pages (`PRAGMA wal_autocheckpoint`).
pub(crate) const AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// How often the task checkpoints.
const INTERVAL: Duration = Duration::from_millis(250);

/// The running task; dropping this (with the last store clone) stops it, so the task never
/// keeps the pool, and with it the database file, open on its own.
#[derive(Debug)]
pub(crate) struct Checkpointer(AbortHandle);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the task on `pool` (must be called within a tokio runtime).
pub(crate) fn start(pool: SqlitePool) -> Checkpointer {
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                Ok(_) => {}
                Err(sqlx::Error::PoolClosed) => return,
                // The writers' own threshold still bounds the WAL. A full disk is reported
                // once by the storage watch, which the mapping wakes.
                Err(e) => match crate::error::other(e) {
                    picloud_core::StoreError::StorageFull(_) => {}
                    e => tracing::warn!(error = %e, "background WAL checkpoint failed"),
                },
            }
        }
    });
    Checkpointer(task.abort_handle())
}
