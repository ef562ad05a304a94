//! `DomainStore`: the `app_domains` table.

use async_trait::async_trait;
use picloud_core::domain::Domain;
use picloud_core::host::Host;
use picloud_core::ids::{new_id, AppId};
use picloud_core::store::{DomainStore, StoreResult};

use crate::db::{from_ms, now_ms, on_pool};
use crate::{error, SqlStore};

const CONFLICT: &str = "domain";
const COLUMNS: &str = "id, app_id, host, created_at";

#[derive(sqlx::FromRow)]
struct DomainRow {
    id: String,
    app_id: String,
    host: String,
    created_at: i64,
}

impl From<DomainRow> for Domain {
    fn from(r: DomainRow) -> Self {
        Domain {
            id: r.id,
            app_id: AppId(r.app_id),
            host: Host::from_trusted(r.host),
            created_at: from_ms(r.created_at),
        }
    }
}

#[async_trait]
impl DomainStore for SqlStore {
    async fn add_domain(&self, app: &AppId, host: &Host) -> StoreResult<Domain> {
        let row = DomainRow {
            id: new_id(),
            app_id: app.0.clone(),
            host: host.as_str().to_owned(),
            created_at: now_ms(),
        };
        on_pool!(&self.db, pool => {
            sqlx::query("INSERT INTO app_domains (id, app_id, host, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&row.id)
                .bind(&row.app_id)
                .bind(&row.host)
                .bind(row.created_at)
                .execute(pool)
                .await
                .map_err(error::map(CONFLICT))?;
        });
        Ok(row.into())
    }

    async fn list_domains(&self, app: &AppId) -> StoreResult<Vec<Domain>> {
        let sql = format!("SELECT {COLUMNS} FROM app_domains WHERE app_id = $1 ORDER BY host");
        let rows: Vec<DomainRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(app.as_str()).fetch_all(pool).await.map_err(error::other)?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn all_domain_hosts(&self, limit: u32) -> StoreResult<Vec<String>> {
        let hosts: Vec<(String,)> = on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT host FROM app_domains ORDER BY host LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(error::other)?
        });
        Ok(hosts.into_iter().map(|(h,)| h).collect())
    }

    async fn get_domain(&self, app: &AppId, id_or_host: &str) -> StoreResult<Option<Domain>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM app_domains WHERE app_id = $1 AND (id = $2 OR host = $2)"
        );
        let row: Option<DomainRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(id_or_host)
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(row.map(Into::into))
    }

    async fn update_domain(
        &self,
        app: &AppId,
        id: &str,
        host: &Host,
    ) -> StoreResult<Option<Domain>> {
        let sql = format!(
            "UPDATE app_domains SET host = $3 WHERE app_id = $1 AND id = $2 RETURNING {COLUMNS}"
        );
        let row: Option<DomainRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(id)
                .bind(host.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::map(CONFLICT))?
        });
        Ok(row.map(Into::into))
    }

    async fn delete_domain(&self, app: &AppId, id: &str) -> StoreResult<bool> {
        let done = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM app_domains WHERE app_id = $1 AND id = $2")
                .bind(app.as_str())
                .bind(id)
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
        });
        Ok(done > 0)
    }

    async fn resolve_domain(&self, host: &Host) -> StoreResult<Option<AppId>> {
        let id: Option<String> = on_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT app_id FROM app_domains WHERE host = $1")
                .bind(host.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(id.map(AppId))
    }
}
