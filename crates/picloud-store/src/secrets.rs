//! `SecretStore`: the `app_secrets` table.

use async_trait::async_trait;
use picloud_core::ids::AppId;
use picloud_core::secret::AppSecret;
use picloud_core::store::{SecretStore, StoreResult};

use crate::db::{from_ms, now_ms, on_pool};
use crate::{error, SqlStore};

#[derive(sqlx::FromRow)]
struct SecretRow {
    kid: String,
    secret: Vec<u8>,
    created_at: i64,
    retired_at: Option<i64>,
}

#[async_trait]
impl SecretStore for SqlStore {
    async fn list_secrets(&self, app: &AppId) -> StoreResult<Vec<AppSecret>> {
        let rows: Vec<SecretRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT kid, secret, created_at, retired_at FROM app_secrets \
                 WHERE app_id = $1 ORDER BY created_at, kid",
            )
            .bind(app.as_str())
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        Ok(rows
            .into_iter()
            .map(|r| AppSecret {
                kid: r.kid,
                secret: r.secret,
                created_at: from_ms(r.created_at),
                retired_at: r.retired_at.map(from_ms),
            })
            .collect())
    }

    async fn add_secret(&self, app: &AppId, secret: &AppSecret) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO app_secrets (app_id, kid, secret, created_at, retired_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(app.as_str())
            .bind(&secret.kid)
            .bind(&secret.secret)
            .bind(secret.created_at.timestamp_millis())
            .bind(secret.retired_at.map(|t| t.timestamp_millis()))
            .execute(pool)
            .await
            .map_err(error::map("app secret"))?;
        });
        Ok(())
    }

    async fn retire_secret(&self, app: &AppId, kid: &str) -> StoreResult<bool> {
        let done = on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE app_secrets SET retired_at = $3 \
                 WHERE app_id = $1 AND kid = $2 AND retired_at IS NULL",
            )
            .bind(app.as_str())
            .bind(kid)
            .bind(now_ms())
            .execute(pool)
            .await
            .map_err(error::other)?
            .rows_affected()
        });
        Ok(done > 0)
    }
}
