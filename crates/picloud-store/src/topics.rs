//! `TopicStore`: the `topics` table.

use async_trait::async_trait;
use picloud_core::ids::AppId;
use picloud_core::store::{StoreResult, TopicStore};
use picloud_core::topic::{AuthMode, NewTopic, RateLimit, Retention, Topic, TopicName, TopicPatch};

use crate::db::{from_ms, now_ms, on_pool};
use crate::{error, SqlStore};

const CONFLICT: &str = "topic";
const COLUMNS: &str = "app_id, name, description, external_subscribable, auth_mode, \
     retention_max_messages, retention_max_age_secs, client_publish, presence, \
     client_event_limit_count, client_event_limit_secs, last_seq, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct TopicRow {
    app_id: String,
    name: String,
    description: String,
    external_subscribable: bool,
    auth_mode: String,
    retention_max_messages: Option<i64>,
    retention_max_age_secs: Option<i64>,
    client_publish: bool,
    presence: bool,
    client_event_limit_count: Option<i64>,
    client_event_limit_secs: Option<i64>,
    last_seq: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<TopicRow> for Topic {
    fn from(r: TopicRow) -> Self {
        Topic {
            app_id: AppId(r.app_id),
            name: TopicName::from_trusted(r.name),
            description: r.description,
            external_subscribable: r.external_subscribable,
            // Only valid modes are ever written; an unknown one fails closed.
            auth_mode: AuthMode::parse(&r.auth_mode).unwrap_or(AuthMode::Token),
            retention: Retention {
                max_messages: r.retention_max_messages,
                max_age_secs: r.retention_max_age_secs,
            },
            client_publish: r.client_publish,
            presence: r.presence,
            client_event_limit: match (r.client_event_limit_count, r.client_event_limit_secs) {
                (Some(count), Some(per_secs)) => Some(RateLimit {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    per_secs: u32::try_from(per_secs).unwrap_or(u32::MAX),
                }),
                _ => None,
            },
            last_seq: r.last_seq,
            created_at: from_ms(r.created_at),
            updated_at: from_ms(r.updated_at),
        }
    }
}

#[async_trait]
impl TopicStore for SqlStore {
    async fn create_topic(&self, app: &AppId, new: NewTopic) -> StoreResult<Topic> {
        let now = now_ms();
        let sql = format!(
            "INSERT INTO topics (app_id, name, description, external_subscribable, auth_mode, \
             retention_max_messages, retention_max_age_secs, client_publish, presence, \
             client_event_limit_count, client_event_limit_secs, last_seq, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $12) RETURNING {COLUMNS}"
        );
        let row: TopicRow = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(new.name.as_str())
                .bind(&new.description)
                .bind(new.external_subscribable)
                .bind(new.auth_mode.as_str())
                .bind(new.retention.max_messages)
                .bind(new.retention.max_age_secs)
                .bind(new.client_publish)
                .bind(new.presence)
                .bind(new.client_event_limit.map(|l| i64::from(l.count)))
                .bind(new.client_event_limit.map(|l| i64::from(l.per_secs)))
                .bind(now)
                .fetch_one(pool)
                .await
                .map_err(error::map(CONFLICT))?
        });
        Ok(row.into())
    }

    async fn get_topic(&self, app: &AppId, name: &TopicName) -> StoreResult<Option<Topic>> {
        let sql = format!("SELECT {COLUMNS} FROM topics WHERE app_id = $1 AND name = $2");
        let row: Option<TopicRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(name.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(row.map(Into::into))
    }

    async fn list_topics(&self, app: &AppId) -> StoreResult<Vec<Topic>> {
        let sql = format!("SELECT {COLUMNS} FROM topics WHERE app_id = $1 ORDER BY name");
        let rows: Vec<TopicRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(app.as_str()).fetch_all(pool).await.map_err(error::other)?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn update_topic(
        &self,
        app: &AppId,
        name: &TopicName,
        patch: TopicPatch,
    ) -> StoreResult<Option<Topic>> {
        // Retention is replaced as a whole when given (both limits, either may be null).
        let (set_retention, max_messages, max_age) = match patch.retention {
            Some(r) => (true, r.max_messages, r.max_age_secs),
            None => (false, None, None),
        };
        let (set_limit, limit) = match patch.client_event_limit {
            Some(l) => (true, l),
            None => (false, None),
        };
        let sql = format!(
            "UPDATE topics SET \
               description = COALESCE($3, description), \
               external_subscribable = COALESCE($4, external_subscribable), \
               auth_mode = COALESCE($5, auth_mode), \
               retention_max_messages = CASE WHEN $6 THEN $7 ELSE retention_max_messages END, \
               retention_max_age_secs = CASE WHEN $6 THEN $8 ELSE retention_max_age_secs END, \
               client_publish = COALESCE($10, client_publish), \
               presence = COALESCE($11, presence), \
               client_event_limit_count = CASE WHEN $12 THEN $13 ELSE client_event_limit_count END, \
               client_event_limit_secs = CASE WHEN $12 THEN $14 ELSE client_event_limit_secs END, \
               updated_at = $9 \
             WHERE app_id = $1 AND name = $2 RETURNING {COLUMNS}"
        );
        let row: Option<TopicRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(app.as_str())
                .bind(name.as_str())
                .bind(patch.description.as_deref())
                .bind(patch.external_subscribable)
                .bind(patch.auth_mode.map(AuthMode::as_str))
                .bind(set_retention)
                .bind(max_messages)
                .bind(max_age)
                .bind(now_ms())
                .bind(patch.client_publish)
                .bind(patch.presence)
                .bind(set_limit)
                .bind(limit.map(|l| i64::from(l.count)))
                .bind(limit.map(|l| i64::from(l.per_secs)))
                .fetch_optional(pool)
                .await
                .map_err(error::other)?
        });
        Ok(row.map(Into::into))
    }

    async fn delete_topic(&self, app: &AppId, name: &TopicName) -> StoreResult<bool> {
        let done = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM topics WHERE app_id = $1 AND name = $2")
                .bind(app.as_str())
                .bind(name.as_str())
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
        });
        Ok(done > 0)
    }
}
