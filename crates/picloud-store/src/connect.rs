//! Opening the database: SQLite in the data dir by default, PostgreSQL when `DATABASE_URL`
//! says `postgres://`. Migrations are applied here, before anything else touches the pool.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::Db;
use crate::{migrate, SqlStore};

/// The SQLite file's name inside the data dir.
pub const SQLITE_FILE: &str = "picloud.db";

/// Where the database is, decided from configuration before any I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseLocation {
    SqliteFile(PathBuf),
    Postgres(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "unsupported DATABASE_URL scheme {0:?}: use postgres://… or leave it unset for SQLite"
    )]
    UnsupportedUrl(String),
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("cannot apply migrations to {target}: {reason}")]
    Migrate { target: String, reason: String },
    #[error(
        "no PiCloud database at {target}: `picloud serve` or `picloud migrate` creates one \
         (PICLOUD_DATA_DIR or --data-dir chooses the SQLite data dir, DATABASE_URL a PostgreSQL database)"
    )]
    Missing { target: String },
}

impl DatabaseLocation {
    /// `database_url` unset (or empty) → SQLite file in `data_dir`.
    pub fn from_config(database_url: Option<&str>, data_dir: &Path) -> Result<Self, ConnectError> {
        match database_url.map(str::trim).filter(|u| !u.is_empty()) {
            None => Ok(Self::SqliteFile(data_dir.join(SQLITE_FILE))),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Self::Postgres(u.to_owned()))
            }
            Some(u) if u.starts_with("sqlite:") => {
                let path = u.trim_start_matches("sqlite:").trim_start_matches("//");
                Ok(Self::SqliteFile(PathBuf::from(path)))
            }
            Some(u) => Err(ConnectError::UnsupportedUrl(
                u.split(':').next().unwrap_or_default().to_owned(),
            )),
        }
    }

    /// A description safe to print: a PostgreSQL password is replaced by `***`.
    pub fn describe(&self) -> String {
        match self {
            Self::SqliteFile(p) => format!("SQLite {}", p.display()),
            Self::Postgres(url) => format!("PostgreSQL {}", redact_password(url)),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Opens the pool and applies pending migrations.
pub async fn connect(location: &DatabaseLocation) -> Result<SqlStore, ConnectError> {
    open(location, true).await
}

/// Like [`connect`], for a database PiCloud has already created: a command pointed at the
/// wrong data dir or database fails with [`ConnectError::Missing`] instead of leaving an
/// empty one behind (only `serve` and `migrate` create).
pub async fn connect_existing(location: &DatabaseLocation) -> Result<SqlStore, ConnectError> {
    open(location, false).await
}

async fn open(location: &DatabaseLocation, create: bool) -> Result<SqlStore, ConnectError> {
    let target = location.describe();
    let missing = || ConnectError::Missing {
        target: target.clone(),
    };
    let unreachable = |e: sqlx::Error| ConnectError::Unreachable {
        target: target.clone(),
        reason: e.to_string(),
    };
    let migrate_err = |e: sqlx::migrate::MigrateError| ConnectError::Migrate {
        target: target.clone(),
        reason: e.to_string(),
    };
    let db = match location {
        DatabaseLocation::SqliteFile(path) => {
            if !create && !path.is_file() {
                return Err(missing());
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| ConnectError::DataDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(create)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL in WAL mode is durable against process crashes; only an OS crash or
                // power loss can lose the last commits. The usual trade for WAL.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // 16 MiB of page cache per connection (default 2 MiB): topic rows and the
                // recent end of `messages` stay in memory under many-topic publishing.
                .pragma("cache_size", "-16384")
                // Statement journals (a multi-row insert inside a transaction keeps one) in
                // memory: on disk, one that outgrew 64 KiB was a temp file created, written
                // and unlinked on every publish batch (measured: ~5 % of publish CPU).
                .pragma("temp_store", "memory")
                // Raised because a background task checkpoints (see `checkpoint`).
                .pragma(
                    "wal_autocheckpoint",
                    crate::checkpoint::AUTOCHECKPOINT_PAGES.to_string(),
                );
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                // No ping before every use: it is a round trip per query. A dead connection
                // fails its query and is replaced by the pool.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(5))
                .after_release(|conn, _| Box::pin(async move { Ok(outside_transaction(conn)) }));
            let pool = crate::fault::sqlite_max_page_count(pool)
                .connect_with(opts)
                .await
                .map_err(unreachable)?;
            migrate::SQLITE.run(&pool).await.map_err(migrate_err)?;
            Db::Sqlite(pool)
        }
        DatabaseLocation::Postgres(url) => {
            let opts = PgConnectOptions::from_str(url).map_err(unreachable)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(5))
                .after_release(|conn, _| Box::pin(async move { Ok(outside_transaction(conn)) }))
                .connect_with(opts)
                .await
                .map_err(unreachable)?;
            if !create {
                // sqlx's migrations table: present once PiCloud has migrated the database.
                let ours: bool =
                    sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                        .fetch_one(&pool)
                        .await
                        .map_err(unreachable)?;
                if !ours {
                    pool.close().await;
                    return Err(missing());
                }
            }
            migrate::POSTGRES.run(&pool).await.map_err(migrate_err)?;
            Db::Postgres(pool)
        }
    };
    Ok(SqlStore::new(db))
}

/// Whether a connection handed back may be reused: only outside any transaction. A
/// transaction whose statement or `COMMIT` failed may still be open — SQLite leaves it open
/// after `SQLITE_FULL` or a deferred constraint at `COMMIT`, and sqlx then counts it open
/// too, so its next `begin` would be a savepoint inside it and its "commits" would commit
/// nothing — and sqlx's rollback of a dropped transaction runs after the release. Such a
/// connection is closed instead, on every write path, kept writer connections included.
fn outside_transaction<C: sqlx::Connection>(conn: &C) -> bool {
    !conn.is_in_transaction()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_follows_database_url() {
        let dir = Path::new("/data");
        assert_eq!(
            DatabaseLocation::from_config(None, dir).unwrap(),
            DatabaseLocation::SqliteFile("/data/picloud.db".into())
        );
        assert_eq!(
            DatabaseLocation::from_config(Some(" "), dir).unwrap(),
            DatabaseLocation::SqliteFile("/data/picloud.db".into())
        );
        assert!(matches!(
            DatabaseLocation::from_config(Some("postgres://u@h/db"), dir).unwrap(),
            DatabaseLocation::Postgres(_)
        ));
        assert!(matches!(
            DatabaseLocation::from_config(Some("mysql://h/db"), dir),
            Err(ConnectError::UnsupportedUrl(s)) if s == "mysql"
        ));
    }

    #[test]
    fn descriptions_hide_passwords() {
        let d = DatabaseLocation::Postgres("postgres://bob:hunter2@db:5432/x".into()).describe();
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("bob:***@db:5432/x"), "{d}");
    }
}
