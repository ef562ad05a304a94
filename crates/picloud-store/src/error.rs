//! sqlx errors → [`StoreError`]. A full disk becomes `StorageFull` (and wakes the storage
//! watch, see `storage`); connectivity problems become `Unavailable` (a 503 the caller may
//! retry); unique violations become `Conflict`; everything else is `Internal`.

use picloud_core::StoreError;

/// Maps an error, naming what a unique violation would have duplicated.
pub(crate) fn map(conflict: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(conflict),
        _ => other(e),
    }
}

pub(crate) fn other(e: sqlx::Error) -> StoreError {
    let code = match &e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        _ if code.as_deref().is_some_and(is_storage_full) => {
            crate::storage::full_seen();
            StoreError::StorageFull(e.to_string())
        }
        _ if code.as_deref().is_some_and(is_unavailable) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Internal(e.to_string()),
    }
}

/// SQLite `SQLITE_FULL` (13; the unix VFS reports `ENOSPC` as this), PostgreSQL `53100`
/// (disk_full).
fn is_storage_full(code: &str) -> bool {
    matches!(code, "13" | "53100")
}

/// PostgreSQL: class 08 (connection exception), 57P0x (shutdown, cannot connect now),
/// 53300 (too many connections), 53200 (out of memory), 58030 (I/O error). SQLite: BUSY and
/// LOCKED after the busy timeout and their extended codes (517 BUSY_SNAPSHOT: a read
/// transaction that tried to write after another connection did; 261, 262, 773), and the
/// IOERR family (10 and its extended codes, `10 | n << 8`).
fn is_unavailable(code: &str) -> bool {
    if code.starts_with("08") || code.starts_with("57P0") {
        return true;
    }
    if matches!(
        code,
        "53300" | "53200" | "58030" | "5" | "6" | "517" | "261" | "262" | "773"
    ) {
        return true;
    }
    // SQLite's codes have at most four digits; PostgreSQL's SQLSTATEs have five characters.
    code.len() < 5 && code.parse::<u32>().is_ok_and(|c| c & 0xff == 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_conditions() {
        assert!(is_storage_full("13"));
        assert!(is_storage_full("53100"));
        assert!(!is_storage_full("53200"));
        for c in [
            "5", "517", "10", "266", "778", "08006", "57P01", "53300", "58030",
        ] {
            assert!(is_unavailable(c), "{c}");
        }
        for c in ["13", "19", "787", "2067", "23505", "42P01", "10000"] {
            assert!(!is_unavailable(c), "{c}");
        }
    }
}
