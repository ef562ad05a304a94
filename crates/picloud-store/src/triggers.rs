//! `TriggerStore` and `RuntimeStore`: triggers, per-app runtime settings and env values.

use async_trait::async_trait;
use picloud_core::data::EnvName;
use picloud_core::dispatch::AppRuntime;
use picloud_core::ids::{new_id, AppId};
use picloud_core::quota::Quotas;
use picloud_core::script::ScriptName;
use picloud_core::store::{RuntimeStore, StoreResult, TriggerStore};
use picloud_core::trigger::{
    NewTrigger, RetryPolicy, Trigger, TriggerFilter, TriggerKind, TriggerPatch,
};
use picloud_core::StoreError;

use crate::db::{from_ms, now_ms, on_pool};
use crate::{error, SqlStore};

const COLUMNS: &str =
    "id, kind, script, filter, enabled, max_attempts, base_delay_ms, max_delay_ms, created_at";

#[derive(sqlx::FromRow)]
struct TriggerRow {
    id: String,
    kind: String,
    script: String,
    filter: String,
    enabled: bool,
    max_attempts: i32,
    base_delay_ms: i64,
    max_delay_ms: i64,
    created_at: i64,
}

impl TryFrom<TriggerRow> for Trigger {
    type Error = StoreError;
    fn try_from(r: TriggerRow) -> Result<Self, StoreError> {
        let bad = |e: String| StoreError::Internal(format!("stored trigger {}: {e}", r.id));
        let kind = TriggerKind::parse(&r.kind).map_err(|e| bad(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&r.filter).map_err(|e| bad(e.to_string()))?;
        let filter = TriggerFilter::parse(kind, &json).map_err(|e| bad(e.to_string()))?;
        Ok(Trigger {
            id: r.id,
            script: ScriptName::from_trusted(r.script),
            filter,
            enabled: r.enabled,
            retry: RetryPolicy {
                max_attempts: r.max_attempts.max(1) as u32,
                base_delay_ms: r.base_delay_ms,
                max_delay_ms: r.max_delay_ms,
            },
            created_at: from_ms(r.created_at),
        })
    }
}

#[async_trait]
impl TriggerStore for SqlStore {
    async fn create_trigger(&self, app: &AppId, new: NewTrigger) -> StoreResult<Trigger> {
        let id = new_id();
        let now = now_ms();
        let (topic_match, topic_prefix) = new.filter.match_columns();
        on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO triggers (id, app_id, kind, script, filter, topic_match, topic_prefix, \
                 enabled, max_attempts, base_delay_ms, max_delay_ms, created_at, cron_cursor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
            )
            .bind(&id)
            .bind(app.as_str())
            .bind(new.filter.kind().as_str())
            .bind(new.script.as_str())
            .bind(new.filter.to_json().to_string())
            .bind(topic_match)
            .bind(topic_prefix)
            .bind(new.enabled)
            .bind(new.retry.max_attempts as i32)
            .bind(new.retry.base_delay_ms)
            .bind(new.retry.max_delay_ms)
            .bind(now)
            .execute(pool)
            .await
            .map_err(error::map("trigger"))?;
        });
        Ok(Trigger {
            id,
            script: new.script,
            filter: new.filter,
            enabled: new.enabled,
            retry: new.retry,
            created_at: from_ms(now),
        })
    }

    async fn list_triggers(&self, app: &AppId) -> StoreResult<Vec<Trigger>> {
        let sql =
            format!("SELECT {COLUMNS} FROM triggers WHERE app_id = $1 ORDER BY created_at, id");
        let rows: Vec<TriggerRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(app.as_str()).fetch_all(pool).await.map_err(error::other)?
        });
        rows.into_iter().map(Trigger::try_from).collect()
    }

    async fn get_trigger(&self, app: &AppId, id: &str) -> StoreResult<Option<Trigger>> {
        let sql = format!("SELECT {COLUMNS} FROM triggers WHERE app_id = $1 AND id = $2");
        let row: Option<TriggerRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        row.map(Trigger::try_from).transpose()
    }

    async fn update_trigger(
        &self,
        app: &AppId,
        id: &str,
        patch: TriggerPatch,
    ) -> StoreResult<Option<Trigger>> {
        let Some(mut t) = self.get_trigger(app, id).await? else {
            return Ok(None);
        };
        if let Some(f) = patch.filter {
            if f.kind() != t.filter.kind() {
                return Err(StoreError::Internal(
                    "a trigger's kind cannot change".into(),
                ));
            }
            t.filter = f;
        }
        if let Some(s) = patch.script {
            t.script = s;
        }
        if let Some(e) = patch.enabled {
            t.enabled = e;
        }
        if let Some(r) = patch.retry {
            t.retry = r;
        }
        let (topic_match, topic_prefix) = t.filter.match_columns();
        let n = on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE triggers SET script = $3, filter = $4, topic_match = $5, topic_prefix = $6, \
                 enabled = $7, max_attempts = $8, base_delay_ms = $9, max_delay_ms = $10 \
                 WHERE app_id = $1 AND id = $2",
            )
            .bind(app.as_str())
            .bind(id)
            .bind(t.script.as_str())
            .bind(t.filter.to_json().to_string())
            .bind(topic_match)
            .bind(topic_prefix)
            .bind(t.enabled)
            .bind(t.retry.max_attempts as i32)
            .bind(t.retry.base_delay_ms)
            .bind(t.retry.max_delay_ms)
            .execute(pool)
            .await
            .map_err(error::other)?
            .rows_affected()
        });
        Ok((n > 0).then_some(t))
    }

    async fn delete_trigger(&self, app: &AppId, id: &str) -> StoreResult<bool> {
        let n = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM triggers WHERE app_id = $1 AND id = $2")
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

#[async_trait]
impl RuntimeStore for SqlStore {
    async fn get_runtime(&self, app: &AppId) -> StoreResult<AppRuntime> {
        let row: Option<(String, i32)> = on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT limits, max_concurrency FROM app_runtime WHERE app_id = $1")
                .bind(app.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(match row {
            None => AppRuntime::default(),
            Some((limits, max_concurrency)) => AppRuntime {
                limits: serde_json::from_str(&limits)
                    .map_err(|e| StoreError::Internal(format!("stored limits: {e}")))?,
                max_concurrency: max_concurrency.max(1) as u32,
            },
        })
    }

    async fn set_runtime(&self, app: &AppId, rt: &AppRuntime) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO app_runtime (app_id, limits, max_concurrency, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (app_id) DO UPDATE \
                 SET limits = excluded.limits, max_concurrency = excluded.max_concurrency, \
                     updated_at = excluded.updated_at",
            )
            .bind(app.as_str())
            .bind(rt.limits.to_string())
            .bind(rt.max_concurrency as i32)
            .bind(now_ms())
            .execute(pool)
            .await
            .map_err(error::other)?;
        });
        Ok(())
    }

    async fn get_quotas(&self, app: &AppId) -> StoreResult<Quotas> {
        let row: Option<(String,)> = on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT quotas FROM app_quotas WHERE app_id = $1")
                .bind(app.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        let Some((json,)) = row else {
            return Ok(Quotas::default());
        };
        let v: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| StoreError::Internal(format!("stored quotas: {e}")))?;
        let field = |name: &str| v[name].as_u64().and_then(|n| u32::try_from(n).ok());
        Ok(Quotas {
            connections: field("connections"),
            topics_per_connection: field("topics_per_connection"),
            publishes_per_sec: field("publishes_per_sec"),
            ephemeral_per_sec: field("ephemeral_per_sec"),
            client_events_per_sec: field("client_events_per_sec"),
            presence_per_sec: field("presence_per_sec"),
        })
    }

    async fn set_quotas(&self, app: &AppId, q: &Quotas) -> StoreResult<()> {
        let json = serde_json::json!({
            "connections": q.connections,
            "topics_per_connection": q.topics_per_connection,
            "publishes_per_sec": q.publishes_per_sec,
            "ephemeral_per_sec": q.ephemeral_per_sec,
            "client_events_per_sec": q.client_events_per_sec,
            "presence_per_sec": q.presence_per_sec,
        });
        on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO app_quotas (app_id, quotas) VALUES ($1, $2) \
                 ON CONFLICT (app_id) DO UPDATE SET quotas = excluded.quotas",
            )
            .bind(app.as_str())
            .bind(json.to_string())
            .execute(pool)
            .await
            .map_err(error::other)?;
        });
        Ok(())
    }

    async fn list_env(&self, app: &AppId) -> StoreResult<Vec<(String, String)>> {
        Ok(on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT name, value FROM app_env WHERE app_id = $1 ORDER BY name")
                .bind(app.as_str())
                .fetch_all(pool)
                .await
                .map_err(error::other)?
        }))
    }

    async fn get_env(&self, app: &AppId, name: &EnvName) -> StoreResult<Option<String>> {
        Ok(on_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT value FROM app_env WHERE app_id = $1 AND name = $2")
                .bind(app.as_str())
                .bind(name.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        }))
    }

    async fn set_env(&self, app: &AppId, name: &EnvName, value: &str) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO app_env (app_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (app_id, name) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            )
            .bind(app.as_str())
            .bind(name.as_str())
            .bind(value)
            .bind(now_ms())
            .execute(pool)
            .await
            .map_err(error::other)?;
        });
        Ok(())
    }

    async fn delete_env(&self, app: &AppId, name: &EnvName) -> StoreResult<bool> {
        let n = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM app_env WHERE app_id = $1 AND name = $2")
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
