//! `AppStore`: the `apps` table.

use async_trait::async_trait;
use picloud_core::app::{App, AppPatch, AppRef, NewApp, Slug};
use picloud_core::ids::AppId;
use picloud_core::store::{AppStore, Page, StoreResult};

use crate::db::{from_ms, now_ms, on_pool};
use crate::{error, SqlStore};

const CONFLICT: &str = "app slug";
const COLUMNS: &str = "id, slug, name, max_token_ttl_secs, static_spa, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct AppRow {
    id: String,
    slug: String,
    name: String,
    max_token_ttl_secs: i64,
    static_spa: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<AppRow> for App {
    fn from(r: AppRow) -> Self {
        App {
            id: AppId(r.id),
            slug: Slug::from_trusted(r.slug),
            name: r.name,
            max_token_ttl_secs: r.max_token_ttl_secs,
            static_spa: r.static_spa,
            created_at: from_ms(r.created_at),
            updated_at: from_ms(r.updated_at),
        }
    }
}

#[async_trait]
impl AppStore for SqlStore {
    async fn create_app(&self, new: NewApp) -> StoreResult<App> {
        let now = now_ms();
        let row = AppRow {
            id: AppId::new().0,
            slug: new.slug.as_str().to_owned(),
            name: new.name,
            max_token_ttl_secs: picloud_core::app::DEFAULT_MAX_TOKEN_TTL_SECS,
            static_spa: false,
            created_at: now,
            updated_at: now,
        };
        on_pool!(&self.db, pool => {
            sqlx::query("INSERT INTO apps (id, slug, name, max_token_ttl_secs, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&row.id)
                .bind(&row.slug)
                .bind(&row.name)
                .bind(row.max_token_ttl_secs)
                .bind(row.created_at)
                .bind(row.updated_at)
                .execute(pool)
                .await
                .map_err(error::map(CONFLICT))?;
        });
        Ok(row.into())
    }

    async fn get_app(&self, id: &AppId) -> StoreResult<Option<App>> {
        let sql = format!("SELECT {COLUMNS} FROM apps WHERE id = $1");
        let row: Option<AppRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(pool).await.map_err(error::other)?
        });
        Ok(row.map(Into::into))
    }

    async fn get_app_by_slug(&self, slug: &Slug) -> StoreResult<Option<App>> {
        let sql = format!("SELECT {COLUMNS} FROM apps WHERE slug = $1");
        let row: Option<AppRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(slug.as_str()).fetch_optional(pool).await.map_err(error::other)?
        });
        Ok(row.map(Into::into))
    }

    async fn list_apps(&self, page: Page) -> StoreResult<Vec<App>> {
        let sql = format!("SELECT {COLUMNS} FROM apps WHERE slug > $1 ORDER BY slug LIMIT $2");
        let after = page.after.unwrap_or_default();
        let rows: Vec<AppRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(&after)
                .bind(i64::from(page.limit))
                .fetch_all(pool)
                .await
                .map_err(error::other)?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn update_app(&self, id: &AppId, patch: AppPatch) -> StoreResult<Option<App>> {
        // COALESCE keeps the current value for fields the patch leaves out: one statement,
        // no read-modify-write race.
        let sql = format!(
            "UPDATE apps SET slug = COALESCE($2, slug), name = COALESCE($3, name), \
             max_token_ttl_secs = COALESCE($5, max_token_ttl_secs), \
             static_spa = COALESCE($6, static_spa), updated_at = $4 \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<AppRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(id.as_str())
                .bind(patch.slug.as_ref().map(Slug::as_str))
                .bind(patch.name.as_deref())
                .bind(now_ms())
                .bind(patch.max_token_ttl_secs)
                .bind(patch.static_spa)
                .fetch_optional(pool)
                .await
                .map_err(error::map(CONFLICT))?
        });
        Ok(row.map(Into::into))
    }

    async fn delete_app(&self, id: &AppId) -> StoreResult<bool> {
        let done = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM apps WHERE id = $1")
                .bind(id.as_str())
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
        });
        Ok(done > 0)
    }

    async fn apps_with_topic_counts(&self) -> StoreResult<Vec<(AppRef, i64)>> {
        let rows: Vec<(String, String, i64)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT a.id, a.slug, count(t.name) FROM apps a \
                 LEFT JOIN topics t ON t.app_id = a.id GROUP BY a.id, a.slug ORDER BY a.slug",
            )
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        Ok(rows
            .into_iter()
            .map(|(id, slug, topics)| {
                let app = AppRef {
                    id: AppId(id),
                    slug: Slug::from_trusted(slug),
                };
                (app, topics)
            })
            .collect())
    }
}
