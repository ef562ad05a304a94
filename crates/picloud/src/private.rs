//! The data dir holds every app's HMAC secrets and data: readable by this user only. New
//! files get mode 0600 and directories 0700 whatever the umask the process started with
//! (the umask is set once, first thing, for every command); a data dir left wider by an
//! earlier version or by hand is tightened at start, with a warning naming how much.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use picloud_store::DatabaseLocation;

/// No group or other bits on anything this process creates.
pub fn restrict_umask() {
    // SAFETY: `umask` only swaps the process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Makes what `serve` will use private: the data dir whole, and a SQLite database kept
/// outside it (its own three files only, never the directory around them). Warns when
/// anything was wider.
pub fn secure(data_dir: &Path, location: &DatabaseLocation) -> anyhow::Result<()> {
    let mut paths = vec![data_dir.to_owned()];
    if let DatabaseLocation::SqliteFile(file) = location {
        if !file.starts_with(data_dir) {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = file.clone().into_os_string();
                name.push(suffix);
                paths.push(name.into());
            }
        }
    }
    for path in paths {
        match tighten(&path) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                path = %path.display(),
                entries = n,
                "the data dir was readable by other users; group and other permissions removed"
            ),
            Err(e) => anyhow::bail!("cannot make {} private: {e}", path.display()),
        }
    }
    Ok(())
}

/// Removes group and other bits from `path` and everything under it (links are not
/// followed). Returns how many entries changed.
pub fn tighten(path: &Path) -> std::io::Result<usize> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Ok(0);
    }
    let mut changed = 0;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        changed += 1;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            changed += tighten(&entry?.path())?;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_other_bits_go_everywhere_below() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("files");
        std::fs::create_dir(&sub).unwrap();
        let file = sub.join("blob");
        std::fs::write(&file, b"x").unwrap();
        for (p, m) in [(dir.path(), 0o755), (&*sub, 0o775), (&*file, 0o644)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        assert_eq!(tighten(dir.path()).unwrap(), 3);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            (mode(dir.path()), mode(&sub), mode(&file)),
            (0o700, 0o700, 0o600)
        );
        assert_eq!(tighten(dir.path()).unwrap(), 0, "nothing left to change");
    }
}
