//! Backups of a SQLite server, made by the server itself while it runs (no second process
//! opens the database): `<data dir>/backups/picloud-<UTC time>[-scheduled].tar.gz`, each
//! the database as of one commit (`VACUUM INTO`) plus every file blob it names (deletes
//! held meanwhile, see `BlobStore::hold_deletes`). One at a time; optionally on a cron
//! schedule that keeps the newest N scheduled ones. PostgreSQL is backed up with `pg_dump`
//! (docs/operations.md); there `create` answers [`BackupError::Unsupported`].

pub mod archive;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use picloud_core::store::Store;
use picloud_core::trigger::Schedule;
use picloud_core::StoreError;
use picloud_dispatch::BlobStore;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

const PREFIX: &str = "picloud-";
const SCHEDULED: &str = "-scheduled";
const SUFFIX: &str = ".tar.gz";
/// The name's time: sortable, and legal in every file system.
const TIME: &str = "%Y%m%dT%H%M%S%.3fZ";

/// One backup file.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackupInfo {
    /// File name; also the id in `/api/v1/backups/{name}`.
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub bytes: u64,
    /// Made by `PICLOUD_BACKUP_CRON` (and pruned by `PICLOUD_BACKUP_KEEP`), not by hand.
    pub scheduled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("this server keeps its data in PostgreSQL: back it up with pg_dump and copy the files directory (docs/operations.md)")]
    Unsupported,
    #[error("a backup is already being made")]
    Running,
    #[error("no space left for the backup")]
    NoSpace,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("backup failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A backup schedule: when, and how many scheduled backups to keep.
#[derive(Debug, Clone)]
pub struct BackupSchedule {
    pub cron: Schedule,
    pub keep: usize,
}

pub struct Backups {
    dir: PathBuf,
    store: Arc<dyn Store>,
    blobs: BlobStore,
    running: tokio::sync::Mutex<()>,
    schedule: Option<BackupSchedule>,
}

impl Backups {
    /// Backups written to `dir` (created on first use).
    pub fn new(
        dir: PathBuf,
        store: Arc<dyn Store>,
        blobs: BlobStore,
        schedule: Option<BackupSchedule>,
    ) -> Self {
        Self {
            dir,
            store,
            blobs,
            running: tokio::sync::Mutex::new(()),
            schedule,
        }
    }

    pub fn supported(&self) -> bool {
        self.store.can_snapshot()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn schedule(&self) -> Option<&BackupSchedule> {
        self.schedule.as_ref()
    }

    /// Makes a backup now; nothing is left behind if it fails.
    pub async fn create(&self, scheduled: bool) -> Result<BackupInfo, BackupError> {
        if !self.supported() {
            return Err(BackupError::Unsupported);
        }
        let _one = self.running.try_lock().map_err(|_| BackupError::Running)?;
        let started = Instant::now();
        let created_at = Utc::now();
        let name = format!(
            "{PREFIX}{}{}{SUFFIX}",
            created_at.format(TIME),
            if scheduled { SCHEDULED } else { "" }
        );
        let work = self.dir.join(format!(".{name}.work"));
        let result = self.write(&work, &name, created_at, scheduled).await;
        let _ = tokio::fs::remove_dir_all(&work).await;
        let bytes = result.map_err(|e| match e {
            BackupError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                BackupError::NoSpace
            }
            BackupError::Store(StoreError::StorageFull(_)) => BackupError::NoSpace,
            e => e,
        })?;
        tracing::info!(%name, bytes, elapsed = ?started.elapsed(), "backup made");
        Ok(BackupInfo {
            name,
            created_at,
            bytes,
            scheduled,
        })
    }

    async fn write(
        &self,
        work: &Path,
        name: &str,
        created_at: DateTime<Utc>,
        scheduled: bool,
    ) -> Result<u64, BackupError> {
        tokio::fs::create_dir_all(work).await?;
        let snapshot = work.join(archive::DATABASE);
        // Held from before the snapshot until the files are copied: every blob the snapshot
        // names is still on disk when it is read.
        let hold = self.blobs.hold_deletes();
        self.store.snapshot_into(&snapshot).await?;
        let blob_dir = self.blobs.root().to_owned();
        let part = work.join(name);
        let written = part.clone();
        tokio::task::spawn_blocking(move || {
            let blobs = archive::blobs(&blob_dir)?;
            let mut manifest = archive::Manifest::new(created_at, scheduled);
            manifest.database_bytes = std::fs::metadata(&snapshot)?.len();
            manifest.files = blobs.len() as u64;
            manifest.file_bytes = blobs.iter().map(|(_, n)| n).sum();
            let result = archive::write(&written, &manifest, &snapshot, &blob_dir, &blobs);
            drop(hold);
            result
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        let dest = self.dir.join(name);
        tokio::fs::rename(&part, &dest).await?;
        // The rename is durable once the directory is synced.
        tokio::fs::File::open(&self.dir).await?.sync_all().await?;
        Ok(tokio::fs::metadata(&dest).await?.len())
    }

    /// Every backup, newest first.
    pub async fn list(&self) -> std::io::Result<Vec<BackupInfo>> {
        let mut out = Vec::new();
        let mut dir = match tokio::fs::read_dir(&self.dir).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        while let Some(entry) = dir.next_entry().await? {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some((created_at, scheduled)) = parse_name(&name) else {
                continue;
            };
            out.push(BackupInfo {
                bytes: entry.metadata().await?.len(),
                name,
                created_at,
                scheduled,
            });
        }
        out.sort_by_key(|b| std::cmp::Reverse(b.created_at));
        Ok(out)
    }

    /// The file of the backup called `name`, if there is one (a name that is not a backup's
    /// never reaches the file system).
    pub async fn path(&self, name: &str) -> Option<PathBuf> {
        parse_name(name)?;
        let path = self.dir.join(name);
        tokio::fs::metadata(&path)
            .await
            .is_ok_and(|m| m.is_file())
            .then_some(path)
    }

    /// Deletes a backup; false when there was none by that name.
    pub async fn delete(&self, name: &str) -> std::io::Result<bool> {
        let Some(path) = self.path(name).await else {
            return Ok(false);
        };
        tokio::fs::remove_file(path).await?;
        Ok(true)
    }

    /// Deletes scheduled backups beyond the newest `keep`.
    async fn prune(&self, keep: usize) -> std::io::Result<()> {
        for old in self
            .list()
            .await?
            .into_iter()
            .filter(|b| b.scheduled)
            .skip(keep)
        {
            self.delete(&old.name).await?;
            tracing::info!(name = %old.name, "old scheduled backup deleted");
        }
        Ok(())
    }

    /// Makes a backup at each time of the schedule until `shutdown`, keeping the newest N.
    pub fn spawn_schedule(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(schedule) = self.schedule.clone() else {
            return;
        };
        tokio::spawn(async move {
            loop {
                let now = Utc::now().timestamp_millis();
                let Some(&next) = schedule.cron.next_times(now, 1).first() else {
                    return;
                };
                let wait = std::time::Duration::from_millis((next - now).max(0) as u64);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                match self.create(true).await {
                    Ok(_) => {
                        if let Err(e) = self.prune(schedule.keep).await {
                            tracing::warn!(error = %e, "pruning old backups failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
                }
            }
        });
    }
}

/// `picloud-<time>[-scheduled].tar.gz` → its time and whether it was scheduled.
fn parse_name(name: &str) -> Option<(DateTime<Utc>, bool)> {
    let stem = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (time, scheduled) = match stem.strip_suffix(SCHEDULED) {
        Some(t) => (t, true),
        None => (stem, false),
    };
    let at = NaiveDateTime::parse_from_str(time, TIME).ok()?.and_utc();
    Some((at, scheduled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_not_backups() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T13:41:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let name = format!("{PREFIX}{}{SUFFIX}", at.format(TIME));
        assert_eq!(name, "picloud-20261207T134100.123Z.tar.gz");
        assert_eq!(parse_name(&name), Some((at, false)));
        let sched = format!("{PREFIX}{}{SCHEDULED}{SUFFIX}", at.format(TIME));
        assert_eq!(parse_name(&sched), Some((at, true)));
        for bad in [
            "../picloud-20261207T134100.123Z.tar.gz",
            "picloud-x.tar.gz",
            "picloud-20261207T134100.123Z.tar",
            ".picloud-20261207T134100.123Z.tar.gz.work",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
