//! Throwaway databases for tests: a fresh SQLite file in a temp dir, or a fresh PostgreSQL
//! database created on the server at `PICLOUD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped when the [`TestDatabase`] drops.
//!
//! PostgreSQL is never optional: when it cannot be reached, creating a test database panics
//! with a message that says how to start it. A skipped backend must never pass as green.
//! Also: [`TcpProxy`], a connection that can be cut, and [`PrivateRedis`], a `redis-server`
//! of the test's own to kill and restart.

mod proxy;
mod redis;

use std::path::Path;

pub use proxy::TcpProxy;
pub use redis::PrivateRedis;

use rand::RngCore;
use sqlx::{Connection, PgConnection};

use crate::{connect, Backend, DatabaseLocation, SqlStore};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server-level URL tests create their databases through.
pub fn postgres_admin_url() -> String {
    std::env::var("PICLOUD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A database that exists only for one test.
pub struct TestDatabase {
    pub backend: Backend,
    /// The data dir a server under test should use (SQLite lives here too).
    pub data_dir: tempfile::TempDir,
    /// `Some` for PostgreSQL: the `DATABASE_URL` of the fresh database.
    pub database_url: Option<String>,
    pg_name: Option<String>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self {
                backend,
                data_dir,
                database_url: None,
                pg_name: None,
            },
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is required for the test suite and is not reachable at {admin}: {e}\n\
                         start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                    )
                });
                let mut suffix = [0u8; 8];
                rand::rng().fill_bytes(&mut suffix);
                let name: String = std::iter::once("picloud_t_".to_owned())
                    .chain(suffix.iter().map(|b| format!("{b:02x}")))
                    .collect();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let url = with_database(&admin, &name);
                Self {
                    backend,
                    data_dir,
                    database_url: Some(url),
                    pg_name: Some(name),
                }
            }
        }
    }

    /// The `DATABASE_URL` of this PostgreSQL database reached through `proxy` instead.
    pub fn url_via(&self, proxy: &TcpProxy) -> String {
        let url = self
            .database_url
            .as_deref()
            .expect("a PostgreSQL test database");
        let (scheme, rest) = url.split_once("://").expect("url scheme");
        let (userinfo, after_at) = rest.split_once('@').expect("url userinfo");
        let path = &after_at[after_at.find('/').expect("url path")..];
        format!("{scheme}://{userinfo}@{}{path}", proxy.addr)
    }

    /// The address of the PostgreSQL server, for [`TcpProxy::start`].
    pub fn postgres_addr(&self) -> std::net::SocketAddr {
        use std::net::ToSocketAddrs;
        let url = self
            .database_url
            .as_deref()
            .expect("a PostgreSQL test database");
        let rest = url.split_once("://").expect("scheme").1;
        let host_port = rest.split_once('@').map_or(rest, |(_, h)| h);
        let host_port = host_port.split('/').next().expect("host");
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        host_port
            .to_socket_addrs()
            .expect("resolve PostgreSQL host")
            .next()
            .expect("an address")
    }

    pub fn location(&self) -> DatabaseLocation {
        DatabaseLocation::from_config(self.database_url.as_deref(), self.data_dir.path())
            .expect("test location")
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Connects (and migrates) a store on this database.
    pub async fn open(&self) -> SqlStore {
        connect(&self.location()).await.expect("open test store")
    }
}

/// Inserts an enabled `pubsub` trigger row (`filter` is a topic or `prefix.*`) until the
/// trigger API exists; returns its id.
pub async fn insert_pubsub_trigger(
    store: &SqlStore,
    app: &picloud_core::ids::AppId,
    filter: &str,
    enabled: bool,
) -> String {
    let id = picloud_core::ids::new_id();
    let (topic_match, prefix) = match filter.strip_suffix('*') {
        Some(p) => (p.to_owned(), true),
        None => (filter.to_owned(), false),
    };
    crate::db::on_pool!(store.db(), pool => {
        sqlx::query(
            "INSERT INTO triggers (id, app_id, kind, script, filter, topic_match, topic_prefix, enabled, created_at) \
             VALUES ($1, $2, 'pubsub', 'noop', '{}', $3, $4, $5, 0)",
        )
        .bind(&id)
        .bind(app.as_str())
        .bind(topic_match)
        .bind(prefix)
        .bind(enabled)
        .execute(pool)
        .await
        .expect("insert trigger");
    });
    id
}

/// The app's outbox rows as `(trigger_id, event)`, in insertion order.
pub async fn outbox_rows(
    store: &SqlStore,
    app: &picloud_core::ids::AppId,
) -> Vec<(String, String)> {
    crate::db::on_pool!(store.db(), pool => {
        sqlx::query_as("SELECT trigger_id, event FROM outbox WHERE app_id = $1 ORDER BY id")
            .bind(app.as_str())
            .fetch_all(pool)
            .await
            .expect("read outbox")
    })
}

/// Replaces the database name (path) of a PostgreSQL URL, keeping its query string.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..host_end])
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside any runtime we may block on, so use a thread with its own.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Declares `mod name { sqlite, postgres }` for each `name`, each running `name(store)` on
/// a fresh database of that backend: one test body, both backends.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = $crate::testing::TestDatabase::new($crate::Backend::Sqlite).await;
                super::$name(db.open().await).await;
            }
            #[tokio::test]
            async fn postgres() {
                let db = $crate::testing::TestDatabase::new($crate::Backend::Postgres).await;
                let store = db.open().await;
                super::$name(store.clone()).await;
                store.close().await;
            }
        }
    )*};
}
