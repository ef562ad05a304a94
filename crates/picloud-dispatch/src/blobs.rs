//! File bytes on disk: `<root>/<app id>/<blob id>`. A write goes to `<blob>.tmp.<random>`
//! first, is synced, then renamed into place, so a crash leaves either nothing or an
//! orphaned `*.tmp.*` (which the sweeper removes), never a torn blob. Blob ids are fresh
//! per write, so a reader of the old version is never cut off mid-read.
//!
//! A backup holds deletes ([`BlobStore::hold_deletes`]): a blob is written before the row
//! that names it commits, and removed only after that row is gone, so with deletes held from
//! before the database snapshot until the copy of this directory ends, every blob the
//! snapshot names is copied.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use picloud_core::ids::AppId;

#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    held: Arc<Mutex<Held>>,
}

/// Deletes asked for while a [`DeleteHold`] lives: done when the last hold ends.
#[derive(Debug, Default)]
struct Held {
    holds: usize,
    deferred: Vec<PathBuf>,
}

/// While one lives, [`BlobStore::delete`] defers its removals.
#[must_use]
pub struct DeleteHold {
    held: Arc<Mutex<Held>>,
}

impl Drop for DeleteHold {
    fn drop(&mut self) {
        let deferred = {
            let mut held = self.held.lock().expect("blob hold lock");
            held.holds -= 1;
            if held.holds > 0 {
                return;
            }
            std::mem::take(&mut held.deferred)
        };
        for path in deferred {
            if let Err(e) = remove(&path) {
                tracing::warn!(path = %path.display(), error = %e, "deferred blob delete failed");
            }
        }
    }
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

impl BlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            held: Arc::default(),
        }
    }

    /// The directory holding every app's blobs.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Defers every delete until the returned hold (and any other) is dropped.
    pub fn hold_deletes(&self) -> DeleteHold {
        self.held.lock().expect("blob hold lock").holds += 1;
        DeleteHold {
            held: self.held.clone(),
        }
    }

    fn dir(&self, app: &AppId) -> PathBuf {
        // App ids are UUIDs: safe as a directory name.
        self.root.join(app.as_str())
    }

    /// Writes `bytes` under a new blob id and returns the id.
    pub fn put(&self, app: &AppId, bytes: &[u8]) -> std::io::Result<String> {
        let dir = self.dir(app);
        std::fs::create_dir_all(&dir)?;
        let blob = uuid::Uuid::now_v7().simple().to_string();
        let tmp = dir.join(format!("{blob}.tmp.{}", rand::random::<u32>()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join(&blob))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| blob)
    }

    pub fn get(&self, app: &AppId, blob: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.dir(app).join(checked(blob)?))
    }

    /// Removes a blob (later, while deletes are held); a missing one is not an error.
    pub fn delete(&self, app: &AppId, blob: &str) -> std::io::Result<()> {
        let path = self.dir(app).join(checked(blob)?);
        {
            let mut held = self.held.lock().expect("blob hold lock");
            if held.holds > 0 {
                held.deferred.push(path);
                return Ok(());
            }
        }
        remove(&path)
    }

    /// Removes `*.tmp.*` files older than `older_than` (writes that never finished);
    /// returns how many.
    pub fn sweep_tmp(&self, older_than: Duration) -> std::io::Result<u64> {
        let mut removed = 0;
        let Ok(apps) = std::fs::read_dir(&self.root) else {
            return Ok(0);
        };
        let cutoff = SystemTime::now() - older_than;
        for app in apps.flatten() {
            let Ok(files) = std::fs::read_dir(app.path()) else {
                continue;
            };
            for f in files.flatten() {
                if is_tmp(&f.path())
                    && modified_before(&f.path(), cutoff)
                    && std::fs::remove_file(f.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

fn checked(blob: &str) -> std::io::Result<&str> {
    if !blob.is_empty() && blob.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(blob)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "bad blob id",
        ))
    }
}

fn is_tmp(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains(".tmp."))
}

fn modified_before(p: &Path, cutoff: SystemTime) -> bool {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .is_ok_and(|m| m < cutoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let app = AppId::new();
        let id = blobs.put(&app, b"hello").unwrap();
        assert_eq!(blobs.get(&app, &id).unwrap(), b"hello");
        assert!(blobs.get(&app, "../../etc/passwd").is_err());
        // An interrupted write: a tmp file left behind.
        let stale = dir.path().join(app.as_str()).join(format!("{id}.tmp.1"));
        std::fs::write(&stale, b"partial").unwrap();
        assert_eq!(
            blobs.sweep_tmp(Duration::from_secs(3600)).unwrap(),
            0,
            "too young"
        );
        assert_eq!(blobs.sweep_tmp(Duration::ZERO).unwrap(), 1);
        assert!(!stale.exists());
        assert_eq!(
            blobs.get(&app, &id).unwrap(),
            b"hello",
            "the real blob stays"
        );
        blobs.delete(&app, &id).unwrap();
        blobs.delete(&app, &id).unwrap();
        assert!(blobs.get(&app, &id).is_err());
    }

    #[test]
    fn held_deletes_happen_when_the_last_hold_ends() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let app = AppId::new();
        let id = blobs.put(&app, b"kept").unwrap();
        let first = blobs.hold_deletes();
        let second = blobs.hold_deletes();
        blobs.delete(&app, &id).unwrap();
        drop(first);
        assert_eq!(blobs.get(&app, &id).unwrap(), b"kept", "still held");
        drop(second);
        assert!(blobs.get(&app, &id).is_err(), "deleted once released");
        let id = blobs.put(&app, b"x").unwrap();
        blobs.delete(&app, &id).unwrap();
        assert!(blobs.get(&app, &id).is_err(), "no hold: deleted at once");
    }
}
