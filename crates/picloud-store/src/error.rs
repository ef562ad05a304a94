//! sqlx errors → [`StoreError`]. Connectivity problems become `Unavailable` (a 503 the
//! caller may retry); unique violations become `Conflict`; everything else is `Internal`.

use picloud_core::StoreError;

/// Maps an error, naming what a unique violation would have duplicated.
pub(crate) fn map(conflict: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(conflict),
        _ => other(e),
    }
}

pub(crate) fn other(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        // PostgreSQL: class 08 (connection exception), 57P0x (shutdown, cannot connect now),
        // 53300 (too many connections). SQLite: BUSY/LOCKED after the busy timeout, and
        // their extended codes (517 BUSY_SNAPSHOT: a read transaction that tried to write
        // after another connection did; 261, 262, 773).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08")
                    || c.starts_with("57P0")
                    || matches!(&*c, "53300" | "5" | "6" | "517" | "261" | "262" | "773")
            }) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}
