//! `StaticStore`: the `static_files` table, an app's static site.

use async_trait::async_trait;
use picloud_core::data::{FilePath, StaticFile};
use picloud_core::ids::AppId;
use picloud_core::store::{StaticStore, StoreResult};

use crate::db::on_pool;
use crate::{error, SqlStore};

const COLUMNS: &str = "path, blob, gzip_blob, br_blob, size, etag, content_type, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    path: String,
    blob: String,
    gzip_blob: Option<String>,
    br_blob: Option<String>,
    size: i64,
    etag: String,
    content_type: String,
    updated_at: i64,
}

impl From<Row> for StaticFile {
    fn from(r: Row) -> Self {
        Self {
            path: FilePath::from_trusted(r.path),
            blob: r.blob,
            gzip_blob: r.gzip_blob,
            br_blob: r.br_blob,
            size: r.size.max(0) as u64,
            etag: r.etag,
            content_type: r.content_type,
            updated_at: r.updated_at,
        }
    }
}

fn blobs(r: Row) -> Vec<String> {
    StaticFile::from(r).blobs().map(str::to_owned).collect()
}

#[async_trait]
impl StaticStore for SqlStore {
    async fn static_put(
        &self,
        app: &AppId,
        file: &StaticFile,
        quota: u64,
    ) -> StoreResult<Result<Vec<String>, u64>> {
        let select =
            format!("DELETE FROM static_files WHERE app_id = $1 AND path = $2 RETURNING {COLUMNS}");
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            // A write first (not a read): on SQLite a transaction that reads and then
            // writes fails with BUSY_SNAPSHOT when another connection wrote in between.
            let old: Option<Row> = sqlx::query_as(&select)
                .bind(app.as_str())
                .bind(file.path.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::other)?;
            sqlx::query(
                "INSERT INTO static_files (app_id, path, blob, gzip_blob, br_blob, size, etag, \
                 content_type, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(app.as_str())
            .bind(file.path.as_str())
            .bind(&file.blob)
            .bind(file.gzip_blob.as_deref())
            .bind(file.br_blob.as_deref())
            .bind(file.size as i64)
            .bind(&file.etag)
            .bind(&file.content_type)
            .bind(file.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(error::other)?;
            // Within the transaction, so two uploads at once cannot both pass the quota.
            let total: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM static_files WHERE app_id = $1",
            )
            .bind(app.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(error::other)?;
            let total = total.max(0) as u64;
            if total > quota {
                tx.rollback().await.map_err(error::other)?;
                return Ok(Err(total));
            }
            tx.commit().await.map_err(error::other)?;
            Ok(Ok(old.map(blobs).unwrap_or_default()))
        })
    }

    async fn static_get(&self, app: &AppId, path: &FilePath) -> StoreResult<Option<StaticFile>> {
        let sql = format!("SELECT {COLUMNS} FROM static_files WHERE app_id = $1 AND path = $2");
        let row: Option<Row> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(path.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(row.map(Into::into))
    }

    async fn static_delete(
        &self,
        app: &AppId,
        path: &FilePath,
    ) -> StoreResult<Option<Vec<String>>> {
        let sql =
            format!("DELETE FROM static_files WHERE app_id = $1 AND path = $2 RETURNING {COLUMNS}");
        let row: Option<Row> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(path.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(row.map(blobs))
    }

    async fn static_list(&self, app: &AppId) -> StoreResult<Vec<StaticFile>> {
        let sql = format!("SELECT {COLUMNS} FROM static_files WHERE app_id = $1 ORDER BY path");
        let rows: Vec<Row> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .fetch_all(pool)
                .await
                .map_err(error::other)?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
