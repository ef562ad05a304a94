//! Online snapshots of the SQLite database (`VACUUM INTO`: one read transaction, so the copy
//! is the database as of one commit while writers go on), and the check a restore runs on a
//! snapshot before anyone serves from it.

use std::path::Path;

use async_trait::async_trait;
use picloud_core::store::{BackupStore, StoreResult};
use picloud_core::StoreError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{error, Db, SqlStore};

#[async_trait]
impl BackupStore for SqlStore {
    fn can_snapshot(&self) -> bool {
        matches!(self.db, Db::Sqlite(_))
    }

    async fn snapshot_into(&self, dest: &Path) -> StoreResult<()> {
        let Db::Sqlite(pool) = &self.db else {
            return Err(StoreError::Internal(
                "PostgreSQL is backed up with pg_dump".into(),
            ));
        };
        let dest = dest
            .to_str()
            .ok_or_else(|| StoreError::Internal("backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(pool)
            .await
            .map_err(|e| match &e {
                // The copy's disk is full, which says nothing about the database's own room
                // (backups may live on another disk): no storage-full state for it.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("13") => {
                    StoreError::StorageFull(e.to_string())
                }
                _ => error::other(e),
            })?;
        Ok(())
    }
}

/// Opens the SQLite file at `path` read-only and runs `PRAGMA integrity_check`; `Err` carries
/// what SQLite reported (or why the file could not be opened).
pub async fn check_sqlite_file(path: &Path) -> Result<(), String> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("{} is not a SQLite database: {e}", path.display()))?;
    let _ = conn.close().await;
    if report == ["ok"] {
        Ok(())
    } else {
        Err(format!(
            "{} failed its integrity check: {}",
            path.display(),
            report.join("; ")
        ))
    }
}
