//! A test hook that makes SQLite run out of space without a small disk: when
//! `PICLOUD_FAULT_SQLITE_MAX_PAGE_COUNT_FILE` names a file, every connection applies
//! `PRAGMA max_page_count` with the number in it whenever the pool hands the connection
//! out, so a test (or an operator rehearsing) fills the database by lowering the number
//! and frees space by raising it, on a running server. Writes past the limit fail with
//! `SQLITE_FULL`, exactly as on a full disk. Unset, nothing is installed.

use std::path::PathBuf;

use sqlx::sqlite::SqlitePoolOptions;
use sqlx::SqliteConnection;

pub(crate) const MAX_PAGE_COUNT_FILE: &str = "PICLOUD_FAULT_SQLITE_MAX_PAGE_COUNT_FILE";

pub(crate) fn sqlite_max_page_count(options: SqlitePoolOptions) -> SqlitePoolOptions {
    let Some(file) = std::env::var_os(MAX_PAGE_COUNT_FILE).map(PathBuf::from) else {
        return options;
    };
    tracing::warn!(file = %file.display(), "fault injection: SQLite max_page_count from a file");
    let on_connect = file.clone();
    options
        .after_connect(move |conn, _| {
            let file = on_connect.clone();
            Box::pin(async move { apply(conn, &file).await })
        })
        .before_acquire(move |conn, _| {
            let file = file.clone();
            Box::pin(async move { apply(conn, &file).await.map(|()| true) })
        })
}

async fn apply(conn: &mut SqliteConnection, file: &std::path::Path) -> sqlx::Result<()> {
    let Some(pages) = std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return Ok(());
    };
    sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
        .execute(conn)
        .await
        .map(drop)
}
