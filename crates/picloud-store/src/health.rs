//! Readiness: the database answers and knows every migration this binary ships; and the
//! storage-full view (`storage`).

use async_trait::async_trait;
use picloud_core::store::{HealthStore, StoreResult};
use picloud_core::StoreError;

use crate::db::on_pool;
use crate::{error, migrate, Db, SqlStore};

#[async_trait]
impl HealthStore for SqlStore {
    async fn readiness(&self) -> StoreResult<()> {
        let latest = match &self.db {
            Db::Sqlite(_) => migrate::latest(&migrate::SQLITE),
            Db::Postgres(_) => migrate::latest(&migrate::POSTGRES),
        };
        let applied: Option<i64> = on_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await
                .map_err(error::other)?
        });
        match applied {
            Some(v) if v >= latest => Ok(()),
            v => Err(StoreError::Unavailable(format!(
                "migrations not applied (database at {}, binary needs {latest})",
                v.unwrap_or(0)
            ))),
        }
    }

    fn storage_full(&self) -> bool {
        self.storage.is_full()
    }
}
