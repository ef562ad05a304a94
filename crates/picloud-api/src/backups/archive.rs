//! The backup file: a gzipped tar holding `picloud-backup.json` (the manifest, first),
//! `picloud.db` (the database snapshot) and `files/<app id>/<blob id>` (file bytes). Written
//! by [`write`], read back by [`unpack`], which accepts nothing else: no links, no paths
//! outside those three.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "picloud-backup.json";
/// The database's name inside the archive and in a data dir (`picloud_store::SQLITE_FILE`).
pub const DATABASE: &str = "picloud.db";
pub const FILES: &str = "files";
const FORMAT: u32 = 1;

/// What a backup holds, as written first in its archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The archive layout's version; a restore refuses one it does not know.
    pub format: u32,
    /// The binary that made it (a restore into an older binary may not start).
    pub picloud_version: String,
    pub created_at: DateTime<Utc>,
    pub scheduled: bool,
    pub database_bytes: u64,
    pub files: u64,
    pub file_bytes: u64,
}

impl Manifest {
    pub fn new(created_at: DateTime<Utc>, scheduled: bool) -> Self {
        Self {
            format: FORMAT,
            picloud_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            scheduled,
            database_bytes: 0,
            files: 0,
            file_bytes: 0,
        }
    }
}

/// Every blob under `blob_dir` (`<app>/<blob>`, in-progress `*.tmp.*` writes left out).
pub fn blobs(blob_dir: &Path) -> io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let apps = match std::fs::read_dir(blob_dir) {
        Ok(apps) => apps,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for app in apps {
        let app = app?;
        if !app.file_type()?.is_dir() {
            continue;
        }
        for blob in std::fs::read_dir(app.path())? {
            let blob = blob?;
            let name = blob.file_name();
            if !blob.file_type()?.is_file() || name.to_string_lossy().contains(".tmp.") {
                continue;
            }
            out.push((
                Path::new(&app.file_name()).join(name),
                blob.metadata()?.len(),
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes the archive to `dest` (synced before it returns): the manifest, the snapshot at
/// `database`, and `blobs` (paths relative to `blob_dir`).
pub fn write(
    dest: &Path,
    manifest: &Manifest,
    database: &Path,
    blob_dir: &Path,
    blobs: &[(PathBuf, u64)],
) -> io::Result<()> {
    let file = File::create(dest)?;
    let gz = GzEncoder::new(BufWriter::new(file), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let json = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(manifest.created_at.timestamp().max(0) as u64);
    tar.append_data(&mut header, MANIFEST, json.as_slice())?;
    tar.append_path_with_name(database, DATABASE)?;
    for (rel, _) in blobs {
        tar.append_path_with_name(blob_dir.join(rel), Path::new(FILES).join(rel))?;
    }
    let gz = tar.into_inner()?;
    let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Why a restore refused an archive.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a PiCloud backup: {0}")]
    Foreign(String),
}

/// Unpacks `archive` into `data_dir` (the database) and `blob_dir` (the files), both new or
/// empty; answers its manifest. Refuses an archive with anything but the three kinds of
/// entry, before writing it.
pub fn unpack(archive: &Path, data_dir: &Path, blob_dir: &Path) -> Result<Manifest, UnpackError> {
    let mut tar = tar::Archive::new(GzDecoder::new(File::open(archive)?));
    let mut manifest: Option<Manifest> = None;
    let mut database = false;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let regular = entry.header().entry_type() == tar::EntryType::Regular;
        if path == Path::new(MANIFEST) && regular {
            let mut json = Vec::new();
            entry.by_ref().take(1 << 20).read_to_end(&mut json)?;
            let m: Manifest = serde_json::from_slice(&json)
                .map_err(|e| UnpackError::Foreign(format!("unreadable manifest: {e}")))?;
            if m.format != FORMAT {
                return Err(UnpackError::Foreign(format!(
                    "backup format {} is not {FORMAT}, the one this binary reads",
                    m.format
                )));
            }
            manifest = Some(m);
            continue;
        }
        if manifest.is_none() {
            return Err(UnpackError::Foreign(format!("{MANIFEST} is not first")));
        }
        let dest = match blob_path(&path) {
            _ if !regular => None,
            _ if path == Path::new(DATABASE) => {
                database = true;
                Some(data_dir.join(DATABASE))
            }
            Some(rel) => Some(blob_dir.join(rel)),
            None => None,
        };
        let Some(dest) = dest else {
            return Err(UnpackError::Foreign(format!(
                "unexpected entry {}",
                path.display()
            )));
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = File::create(&dest)?;
        io::copy(&mut entry, &mut out)?;
        out.flush()?;
        out.sync_all()?;
    }
    let manifest = manifest.ok_or_else(|| UnpackError::Foreign(format!("no {MANIFEST}")))?;
    if !database {
        return Err(UnpackError::Foreign(format!("no {DATABASE}")));
    }
    Ok(manifest)
}

/// `files/<app>/<blob>` → `<app>/<blob>`, for plain names only.
fn blob_path(path: &Path) -> Option<PathBuf> {
    let mut parts = path.components();
    if parts.next() != Some(Component::Normal(FILES.as_ref())) {
        return None;
    }
    let rest: Vec<_> = parts.collect();
    match rest.as_slice() {
        [Component::Normal(app), Component::Normal(blob)] => Some(Path::new(app).join(blob)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_blob_paths_are_files() {
        assert_eq!(
            blob_path(Path::new("files/a/b")),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(blob_path(Path::new("files/../b")), None);
        assert_eq!(blob_path(Path::new("files/a/b/c")), None);
        assert_eq!(blob_path(Path::new("/files/a/b")), None);
        assert_eq!(blob_path(Path::new("other/a/b")), None);
    }

    #[test]
    fn an_archive_round_trips_and_a_foreign_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("snap.db");
        std::fs::write(&db, b"database bytes").unwrap();
        let blob_dir = dir.path().join("blobs");
        std::fs::create_dir_all(blob_dir.join("app1")).unwrap();
        std::fs::write(blob_dir.join("app1/abc"), b"file").unwrap();
        std::fs::write(blob_dir.join("app1/abd.tmp.7"), b"partial").unwrap();
        let listed = blobs(&blob_dir).unwrap();
        assert_eq!(listed, [(PathBuf::from("app1/abc"), 4)], "tmp left out");
        let archive = dir.path().join("b.tar.gz");
        write(
            &archive,
            &Manifest::new(Utc::now(), false),
            &db,
            &blob_dir,
            &listed,
        )
        .unwrap();

        let data = dir.path().join("restored");
        let files = data.join("files");
        let m = unpack(&archive, &data, &files).unwrap();
        assert_eq!(m.format, FORMAT);
        assert_eq!(
            std::fs::read(data.join(DATABASE)).unwrap(),
            b"database bytes"
        );
        assert_eq!(std::fs::read(files.join("app1/abc")).unwrap(), b"file");

        // A tar with a path outside the layout.
        let evil = dir.path().join("evil.tar.gz");
        let gz = GzEncoder::new(File::create(&evil).unwrap(), flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        let json = serde_json::to_vec(&Manifest::new(Utc::now(), false)).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(json.len() as u64);
        t.append_data(&mut h, MANIFEST, json.as_slice()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        t.append_data(&mut h, "etc/passwd", &b"x"[..]).unwrap();
        t.into_inner().unwrap().finish().unwrap();
        let err = unpack(&evil, &dir.path().join("r2"), &dir.path().join("r2/files"));
        assert!(matches!(err, Err(UnpackError::Foreign(_))), "{err:?}");
    }
}
