//! One server per SQLite database: `serve` holds an exclusive lock on a file beside the
//! database for its whole life, taken before the database is opened. A second server on
//! the same data dir refuses to start with a clear message instead of sharing the file
//! (SQLite allows it, but two publishers would each hand out seqs and fight over the
//! write lock). The operating system releases the lock when the process ends, however
//! it ends. Offline commands (`admin key …`, `migrate`) do not take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::Context;
use picloud_store::DatabaseLocation;

/// Held for as long as the server runs.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Locks the SQLite database's directory; PostgreSQL needs no lock (many nodes may share it).
pub fn acquire(location: &DatabaseLocation) -> anyhow::Result<Option<DataDirLock>> {
    let DatabaseLocation::SqliteFile(db) = location else {
        return Ok(None);
    };
    let path = lock_path(db);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(DataDirLock { _file: file })),
        Err(TryLockError::WouldBlock) => anyhow::bail!(
            "another PiCloud server is already using the database {} (it holds {}); \
             stop it first, or give this one its own --data-dir (PICLOUD_DATA_DIR)",
            db.display(),
            path.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    db.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let location = DatabaseLocation::SqliteFile(dir.path().join("picloud.db"));
        let first = acquire(&location).unwrap().expect("SQLite takes a lock");
        let err = acquire(&location).unwrap_err().to_string();
        assert!(err.contains("another PiCloud server"), "{err}");
        drop(first);
        assert!(acquire(&location).unwrap().is_some());
        let pg = DatabaseLocation::Postgres("postgres://h/db".into());
        assert!(acquire(&pg).unwrap().is_none());
    }
}
