//! `DataStore`: the kv, docs and file-metadata tables behind the script SDK. Each write
//! writes its trigger deliveries in the same transaction (DESIGN §7).

use async_trait::async_trait;
use picloud_core::data::{Collection, Doc, DocFilter, FileMeta, FilePath, KvEntry, KvKey};
use picloud_core::ids::AppId;
use picloud_core::store::{DataStore, StoreResult};
use picloud_core::trigger::{TriggerFilter, TriggerKind};
use picloud_core::StoreError;
use serde_json::{json, Value};

use crate::db::{now_ms, on_pool};
use crate::emit::emit;
use crate::{error, SqlStore};

fn kv_accepts(key: &str) -> impl Fn(&str, &TriggerFilter) -> bool + '_ {
    move |_, f| matches!(f, TriggerFilter::Kv { prefix } if key.starts_with(prefix.as_str()))
}

fn docs_accepts(coll: &Collection) -> impl Fn(&str, &TriggerFilter) -> bool + '_ {
    move |_, f| matches!(f, TriggerFilter::Docs { collection } if collection == coll)
}

fn files_accepts(path: &str) -> impl Fn(&str, &TriggerFilter) -> bool + '_ {
    move |_, f| matches!(f, TriggerFilter::Files { prefix } if path.starts_with(prefix.as_str()))
}

fn parse_json(s: &str) -> StoreResult<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Internal(format!("stored JSON: {e}")))
}

// Prefix filters use `substr(x, 1, length(p)) = p`: exact (SQLite's LIKE ignores ASCII
// case) and independent of PostgreSQL's collation.

#[async_trait]
impl DataStore for SqlStore {
    async fn kv_get(&self, app: &AppId, key: &KvKey, now: i64) -> StoreResult<Option<KvEntry>> {
        let row: Option<(String, Option<i64>)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT value, expires_at FROM kv WHERE app_id = $1 AND key = $2 \
                 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(app.as_str())
            .bind(key.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await
            .map_err(error::other)?
        });
        row.map(|(v, expires_at)| {
            Ok(KvEntry {
                key: key.as_str().to_owned(),
                value: parse_json(&v)?,
                expires_at,
            })
        })
        .transpose()
    }

    async fn kv_set(
        &self,
        app: &AppId,
        key: &KvKey,
        value: &str,
        expires_at: Option<i64>,
    ) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            sqlx::query(
                "INSERT INTO kv (app_id, key, value, expires_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value, \
                 expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            )
            .bind(app.as_str())
            .bind(key.as_str())
            .bind(value)
            .bind(expires_at)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(error::other)?;
            emit!(tx, app, TriggerKind::Kv, kv_accepts(key.as_str()), json!({
                "kind": "kv", "key": key.as_str(), "op": "set", "value": parse_json(value)?,
            }));
            tx.commit().await.map_err(error::other)?;
        });
        Ok(())
    }

    async fn kv_delete(&self, app: &AppId, key: &KvKey) -> StoreResult<bool> {
        let deleted = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            let n = sqlx::query("DELETE FROM kv WHERE app_id = $1 AND key = $2")
                .bind(app.as_str())
                .bind(key.as_str())
                .execute(&mut *tx)
                .await
                .map_err(error::other)?
                .rows_affected();
            if n > 0 {
                emit!(tx, app, TriggerKind::Kv, kv_accepts(key.as_str()), json!({
                    "kind": "kv", "key": key.as_str(), "op": "delete", "value": null,
                }));
            }
            tx.commit().await.map_err(error::other)?;
            n > 0
        });
        Ok(deleted)
    }

    async fn kv_list(
        &self,
        app: &AppId,
        prefix: &str,
        limit: u32,
        now: i64,
    ) -> StoreResult<Vec<KvEntry>> {
        let rows: Vec<(String, String, Option<i64>)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT key, value, expires_at FROM kv WHERE app_id = $1 \
                 AND substr(key, 1, length($2)) = $2 AND (expires_at IS NULL OR expires_at > $3) \
                 ORDER BY key LIMIT $4",
            )
            .bind(app.as_str())
            .bind(prefix)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        rows.into_iter()
            .map(|(key, v, expires_at)| {
                Ok(KvEntry {
                    key,
                    value: parse_json(&v)?,
                    expires_at,
                })
            })
            .collect()
    }

    async fn kv_sweep_expired(&self, now: i64) -> StoreResult<u64> {
        Ok(on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
        }))
    }

    async fn docs_insert(
        &self,
        app: &AppId,
        coll: &Collection,
        id: &str,
        doc: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            let now = now_ms();
            sqlx::query(
                "INSERT INTO docs (app_id, collection, id, doc, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(app.as_str())
            .bind(coll.as_str())
            .bind(id)
            .bind(doc)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(error::map("document"))?;
            emit!(tx, app, TriggerKind::Docs, docs_accepts(coll), json!({
                "kind": "docs", "collection": coll.as_str(), "id": id, "op": "insert",
                "doc": parse_json(doc)?,
            }));
            tx.commit().await.map_err(error::other)?;
        });
        Ok(())
    }

    async fn docs_get(&self, app: &AppId, coll: &Collection, id: &str) -> StoreResult<Option<Doc>> {
        let row: Option<String> = on_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT doc FROM docs WHERE app_id = $1 AND collection = $2 AND id = $3")
                .bind(app.as_str())
                .bind(coll.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        row.map(|d| {
            Ok(Doc {
                id: id.to_owned(),
                doc: parse_json(&d)?,
            })
        })
        .transpose()
    }

    async fn docs_update(
        &self,
        app: &AppId,
        coll: &Collection,
        id: &str,
        doc: &str,
    ) -> StoreResult<bool> {
        let updated = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            let n = sqlx::query(
                "UPDATE docs SET doc = $4, updated_at = $5 \
                 WHERE app_id = $1 AND collection = $2 AND id = $3",
            )
            .bind(app.as_str())
            .bind(coll.as_str())
            .bind(id)
            .bind(doc)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(error::other)?
            .rows_affected();
            if n > 0 {
                emit!(tx, app, TriggerKind::Docs, docs_accepts(coll), json!({
                    "kind": "docs", "collection": coll.as_str(), "id": id, "op": "update",
                    "doc": parse_json(doc)?,
                }));
            }
            tx.commit().await.map_err(error::other)?;
            n > 0
        });
        Ok(updated)
    }

    async fn docs_delete(&self, app: &AppId, coll: &Collection, id: &str) -> StoreResult<bool> {
        let deleted = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            let n = sqlx::query("DELETE FROM docs WHERE app_id = $1 AND collection = $2 AND id = $3")
                .bind(app.as_str())
                .bind(coll.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(error::other)?
                .rows_affected();
            if n > 0 {
                emit!(tx, app, TriggerKind::Docs, docs_accepts(coll), json!({
                    "kind": "docs", "collection": coll.as_str(), "id": id, "op": "delete",
                    "doc": null,
                }));
            }
            tx.commit().await.map_err(error::other)?;
            n > 0
        });
        Ok(deleted)
    }

    async fn docs_find(
        &self,
        app: &AppId,
        coll: &Collection,
        filter: &DocFilter,
        limit: u32,
    ) -> StoreResult<Vec<Doc>> {
        // Each condition compares one top-level field with a JSON value. Field names are
        // validated (letters, digits, '_', '-'), values are bound.
        let rows: Vec<(String, String)> = match &self.db {
            crate::Db::Sqlite(pool) => {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT id, doc FROM docs WHERE app_id = ",
                );
                q.push_bind(app.as_str())
                    .push(" AND collection = ")
                    .push_bind(coll.as_str());
                for (field, value) in &filter.0 {
                    // json_extract yields SQL values for scalars and JSON text for objects
                    // and arrays on both sides, so equal JSON compares equal.
                    q.push(" AND json_extract(doc, ")
                        .push_bind(format!("$.\"{field}\""))
                        .push(") IS json_extract(")
                        .push_bind(value.to_string())
                        .push(", '$')");
                }
                q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
                q.build_query_as()
                    .fetch_all(pool)
                    .await
                    .map_err(error::other)?
            }
            crate::Db::Postgres(pool) => {
                let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                    "SELECT id, doc FROM docs WHERE app_id = ",
                );
                q.push_bind(app.as_str())
                    .push(" AND collection = ")
                    .push_bind(coll.as_str());
                for (field, value) in &filter.0 {
                    q.push(" AND (doc::jsonb -> ")
                        .push_bind(field.as_str())
                        .push(") = ")
                        .push_bind(value.to_string())
                        .push("::jsonb");
                }
                q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
                q.build_query_as()
                    .fetch_all(pool)
                    .await
                    .map_err(error::other)?
            }
        };
        rows.into_iter()
            .map(|(id, d)| {
                Ok(Doc {
                    id,
                    doc: parse_json(&d)?,
                })
            })
            .collect()
    }

    async fn file_put(
        &self,
        app: &AppId,
        path: &FilePath,
        blob: &str,
        size: u64,
    ) -> StoreResult<Option<String>> {
        let old = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            // A write first (not a read): on SQLite a transaction that reads and then
            // writes fails with BUSY_SNAPSHOT when another connection wrote in between.
            let old: Option<String> = sqlx::query_scalar(
                "DELETE FROM files WHERE app_id = $1 AND path = $2 RETURNING blob",
            )
            .bind(app.as_str())
            .bind(path.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::other)?;
            sqlx::query(
                "INSERT INTO files (app_id, path, blob, size, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (app_id, path) DO UPDATE SET blob = excluded.blob, size = excluded.size, \
                 updated_at = excluded.updated_at",
            )
            .bind(app.as_str())
            .bind(path.as_str())
            .bind(blob)
            .bind(size as i64)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(error::other)?;
            emit!(tx, app, TriggerKind::Files, files_accepts(path.as_str()), json!({
                "kind": "files", "path": path.as_str(), "size": size, "op": "put",
            }));
            tx.commit().await.map_err(error::other)?;
            old
        });
        Ok(old)
    }

    async fn file_get(&self, app: &AppId, path: &FilePath) -> StoreResult<Option<FileMeta>> {
        let row: Option<(String, i64, i64)> = on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT blob, size, updated_at FROM files WHERE app_id = $1 AND path = $2")
                .bind(app.as_str())
                .bind(path.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(row.map(|(blob, size, updated_at)| FileMeta {
            path: path.as_str().to_owned(),
            blob,
            size: size.max(0) as u64,
            updated_at,
        }))
    }

    async fn file_delete(&self, app: &AppId, path: &FilePath) -> StoreResult<Option<String>> {
        let old = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            let old: Option<(String, i64)> = sqlx::query_as(
                "DELETE FROM files WHERE app_id = $1 AND path = $2 RETURNING blob, size",
            )
            .bind(app.as_str())
            .bind(path.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::other)?;
            if let Some((_, size)) = &old {
                emit!(tx, app, TriggerKind::Files, files_accepts(path.as_str()), json!({
                    "kind": "files", "path": path.as_str(), "size": size, "op": "delete",
                }));
            }
            tx.commit().await.map_err(error::other)?;
            old.map(|(b, _)| b)
        });
        Ok(old)
    }

    async fn file_list(&self, app: &AppId, prefix: &str, limit: u32) -> StoreResult<Vec<FileMeta>> {
        let rows: Vec<(String, String, i64, i64)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT path, blob, size, updated_at FROM files WHERE app_id = $1 \
                 AND substr(path, 1, length($2)) = $2 ORDER BY path LIMIT $3",
            )
            .bind(app.as_str())
            .bind(prefix)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        Ok(rows
            .into_iter()
            .map(|(path, blob, size, updated_at)| FileMeta {
                path,
                blob,
                size: size.max(0) as u64,
                updated_at,
            })
            .collect())
    }

    async fn blob_in_use(&self, blob: &str) -> StoreResult<bool> {
        let n: i64 = on_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM files WHERE blob = $1) + (SELECT COUNT(*) \
                 FROM static_files WHERE blob = $1 OR gzip_blob = $1 OR br_blob = $1)",
            )
                .bind(blob)
                .fetch_one(pool)
                .await
                .map_err(error::other)?
        });
        Ok(n > 0)
    }
}
