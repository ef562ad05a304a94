//! `ScriptStore` and `RouteStore`: script versions and the routes that point at them.

use async_trait::async_trait;
use picloud_core::ids::{new_id, AppId};
use picloud_core::script::{
    NewRoute, Route, RouteMethod, RoutePath, ScriptInfo, ScriptName, ScriptVersion,
};
use picloud_core::store::{RouteStore, ScriptStore, StoreResult};
use picloud_core::StoreError;

use crate::db::{from_ms, now_ms, on_pool};
use crate::{error, SqlStore};

type InfoRow = (String, i64, i64, i64, i64);
type VersionRow = (String, i64, String, i64);

fn info((name, active, latest, created, updated): InfoRow) -> ScriptInfo {
    ScriptInfo {
        name: ScriptName::from_trusted(name),
        active_version: active,
        latest_version: latest,
        created_at: from_ms(created),
        updated_at: from_ms(updated),
    }
}

fn version((name, version, source, created): VersionRow) -> ScriptVersion {
    ScriptVersion {
        name: ScriptName::from_trusted(name),
        version,
        source,
        created_at: from_ms(created),
    }
}

const INFO: &str = "name, active_version, latest_version, created_at, updated_at";

#[async_trait]
impl ScriptStore for SqlStore {
    async fn deploy_script(
        &self,
        app: &AppId,
        name: &ScriptName,
        source: &str,
    ) -> StoreResult<ScriptVersion> {
        let now = now_ms();
        // The upsert takes the script row's lock, so concurrent deploys get distinct,
        // consecutive versions.
        let v: i64 = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            let v: i64 = sqlx::query_scalar(
                "INSERT INTO scripts (app_id, name, active_version, latest_version, created_at, updated_at) \
                 VALUES ($1, $2, 1, 1, $3, $3) ON CONFLICT (app_id, name) DO UPDATE \
                 SET latest_version = scripts.latest_version + 1, \
                     active_version = scripts.latest_version + 1, updated_at = $3 \
                 RETURNING latest_version",
            )
            .bind(app.as_str())
            .bind(name.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(error::other)?;
            sqlx::query(
                "INSERT INTO script_versions (app_id, name, version, source, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(app.as_str())
            .bind(name.as_str())
            .bind(v)
            .bind(source)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(error::map("script version"))?;
            tx.commit().await.map_err(error::other)?;
            v
        });
        Ok(ScriptVersion {
            name: name.clone(),
            version: v,
            source: source.to_owned(),
            created_at: from_ms(now),
        })
    }

    async fn list_scripts(&self, app: &AppId) -> StoreResult<Vec<ScriptInfo>> {
        let sql = format!("SELECT {INFO} FROM scripts WHERE app_id = $1 ORDER BY name");
        let rows: Vec<InfoRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(app.as_str()).fetch_all(pool).await.map_err(error::other)?
        });
        Ok(rows.into_iter().map(info).collect())
    }

    async fn get_script(&self, app: &AppId, name: &ScriptName) -> StoreResult<Option<ScriptInfo>> {
        let sql = format!("SELECT {INFO} FROM scripts WHERE app_id = $1 AND name = $2");
        let row: Option<InfoRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(name.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(row.map(info))
    }

    async fn list_script_versions(
        &self,
        app: &AppId,
        name: &ScriptName,
    ) -> StoreResult<Vec<ScriptVersion>> {
        let rows: Vec<VersionRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT name, version, source, created_at FROM script_versions \
                 WHERE app_id = $1 AND name = $2 ORDER BY version",
            )
            .bind(app.as_str())
            .bind(name.as_str())
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        Ok(rows.into_iter().map(version).collect())
    }

    async fn get_script_version(
        &self,
        app: &AppId,
        name: &ScriptName,
        v: Option<i64>,
    ) -> StoreResult<Option<ScriptVersion>> {
        let row: Option<VersionRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT v.name, v.version, v.source, v.created_at FROM script_versions v \
                 JOIN scripts s ON s.app_id = v.app_id AND s.name = v.name \
                 WHERE v.app_id = $1 AND v.name = $2 \
                 AND v.version = COALESCE($3, s.active_version)",
            )
            .bind(app.as_str())
            .bind(name.as_str())
            .bind(v)
            .fetch_optional(pool)
            .await
            .map_err(error::other)?
        });
        Ok(row.map(version))
    }

    async fn activate_script_version(
        &self,
        app: &AppId,
        name: &ScriptName,
        v: i64,
    ) -> StoreResult<Option<ScriptInfo>> {
        let sql = format!(
            "UPDATE scripts SET active_version = $3, updated_at = $4 \
             WHERE app_id = $1 AND name = $2 AND EXISTS (SELECT 1 FROM script_versions \
               WHERE app_id = $1 AND name = $2 AND version = $3) RETURNING {INFO}"
        );
        let row: Option<InfoRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(name.as_str())
                .bind(v)
                .bind(now_ms())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(row.map(info))
    }

    async fn delete_script(&self, app: &AppId, name: &ScriptName) -> StoreResult<bool> {
        let n = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM scripts WHERE app_id = $1 AND name = $2")
                .bind(app.as_str())
                .bind(name.as_str())
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
        });
        Ok(n > 0)
    }
}

type RouteRow = (String, String, String, String, i64);

fn route((id, method, path, script, created): RouteRow) -> StoreResult<Route> {
    let bad = |e: picloud_core::ValidationError| StoreError::Internal(format!("stored route: {e}"));
    Ok(Route {
        id,
        method: RouteMethod::parse(&method).map_err(bad)?,
        path: RoutePath::parse(&path).map_err(bad)?,
        script: ScriptName::from_trusted(script),
        created_at: from_ms(created),
    })
}

#[async_trait]
impl RouteStore for SqlStore {
    async fn create_route(&self, app: &AppId, new: NewRoute) -> StoreResult<Route> {
        let id = new_id();
        let now = now_ms();
        on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO routes (id, app_id, method, path, script, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(app.as_str())
            .bind(new.method.as_str())
            .bind(new.path.as_str())
            .bind(new.script.as_str())
            .bind(now)
            .execute(pool)
            .await
            .map_err(error::map("route"))?;
        });
        Ok(Route {
            id,
            method: new.method,
            path: new.path,
            script: new.script,
            created_at: from_ms(now),
        })
    }

    async fn list_routes(&self, app: &AppId) -> StoreResult<Vec<Route>> {
        let rows: Vec<RouteRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, method, path, script, created_at FROM routes WHERE app_id = $1 \
                 ORDER BY path, method",
            )
            .bind(app.as_str())
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        rows.into_iter().map(route).collect()
    }

    async fn delete_route(&self, app: &AppId, id: &str) -> StoreResult<bool> {
        let n = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM routes WHERE app_id = $1 AND id = $2")
                .bind(app.as_str())
                .bind(id)
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
        });
        Ok(n > 0)
    }
}
