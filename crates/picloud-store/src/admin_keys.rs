//! `AdminKeyStore`: the `admin_keys` table and the bootstrap marker in `instance_meta`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use picloud_core::admin_key::AdminKey;
use picloud_core::capability;
use picloud_core::ids::AppId;
use picloud_core::store::{AdminKeyStore, StoreResult, StoredAdminKey};

use crate::db::{from_ms, on_pool};
use crate::{error, SqlStore};

const CONFLICT: &str = "admin key";
const INSERT: &str =
    "INSERT INTO admin_keys (id, secret_hash, capabilities, app_id, label, created_at) \
                      VALUES ($1, $2, $3, $4, $5, $6)";
const COLUMNS: &str = "id, secret_hash, capabilities, app_id, label, created_at, last_used_at";

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    secret_hash: Vec<u8>,
    capabilities: String,
    app_id: Option<String>,
    label: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<KeyRow> for StoredAdminKey {
    fn from(r: KeyRow) -> Self {
        StoredAdminKey {
            key: AdminKey {
                id: r.id,
                capabilities: capability::decode_set(&r.capabilities),
                app_id: r.app_id.map(AppId),
                label: r.label,
                created_at: from_ms(r.created_at),
                last_used_at: r.last_used_at.map(from_ms),
            },
            secret_hash: r.secret_hash,
        }
    }
}

/// Binds a key's columns to [`INSERT`], on whichever backend.
macro_rules! bind_key {
    ($query:expr, $k:expr) => {
        $query
            .bind(&$k.key.id)
            .bind(&$k.secret_hash)
            .bind(capability::encode_set(&$k.key.capabilities))
            .bind($k.key.app_id.as_ref().map(AppId::as_str))
            .bind(&$k.key.label)
            .bind($k.key.created_at.timestamp_millis())
    };
}

#[async_trait]
impl AdminKeyStore for SqlStore {
    async fn create_admin_key(&self, key: StoredAdminKey) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            bind_key!(sqlx::query(INSERT), key)
                .execute(pool)
                .await
                .map_err(error::map(CONFLICT))?;
        });
        Ok(())
    }

    async fn create_bootstrap_admin_key(&self, key: StoredAdminKey) -> StoreResult<bool> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            // The marker row is the lock: a concurrent bootstrap blocks on it (PostgreSQL) or
            // on the write lock (SQLite), then inserts nothing.
            let claimed = sqlx::query(
                "INSERT INTO instance_meta (key, value) VALUES ('bootstrapped', $1) ON CONFLICT (key) DO NOTHING",
            )
            .bind(&key.key.id)
            .execute(&mut *tx)
            .await
            .map_err(error::other)?
            .rows_affected()
                == 1;
            if claimed {
                bind_key!(sqlx::query(INSERT), key)
                    .execute(&mut *tx)
                    .await
                    .map_err(error::map(CONFLICT))?;
            }
            tx.commit().await.map_err(error::other)?;
            Ok(claimed)
        })
    }

    async fn find_admin_key(&self, id: &str) -> StoreResult<Option<StoredAdminKey>> {
        let sql = format!("SELECT {COLUMNS} FROM admin_keys WHERE id = $1");
        let row: Option<KeyRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await.map_err(error::other)?
        });
        Ok(row.map(Into::into))
    }

    async fn list_admin_keys(&self) -> StoreResult<Vec<AdminKey>> {
        let sql = format!("SELECT {COLUMNS} FROM admin_keys ORDER BY created_at, id");
        let rows: Vec<KeyRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).fetch_all(pool).await.map_err(error::other)?
        });
        Ok(rows
            .into_iter()
            .map(|r| StoredAdminKey::from(r).key)
            .collect())
    }

    async fn delete_admin_key(&self, id: &str) -> StoreResult<bool> {
        let done = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM admin_keys WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
        });
        Ok(done > 0)
    }

    async fn touch_admin_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE admin_keys SET last_used_at = $2 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            )
            .bind(id)
            .bind(at.timestamp_millis())
            .execute(pool)
            .await
            .map_err(error::other)?;
        });
        Ok(())
    }
}
