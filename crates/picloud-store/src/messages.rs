//! `MessageStore`: publishing (seq allocation, history, outbox) and reading history.
//!
//! A publish batch is one transaction. Items are grouped by topic and the groups visited in
//! (app, topic) order, so two batches touching the same topics lock their rows in the same
//! order and cannot deadlock. Each group takes its seqs with one upsert on the topic row
//! (`last_seq = last_seq + n`), which holds the row lock until commit: a later seq can never
//! commit before an earlier one. SQLite has one writer at a time, which gives the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use picloud_core::ids::AppId;
use picloud_core::message::{Message, PublishItem};
use picloud_core::store::{MessageStore, StoreResult};
use picloud_core::topic::{Retention, TopicName};
use sqlx::{PgConnection, SqliteConnection};

use crate::db::{now_ms, on_pool};
use crate::{error, Db, SqlStore};

/// Takes `$5` seqs on the topic, creating it internal when it has no row.
const TAKE_SEQS: &str = "INSERT INTO topics (app_id, name, description, external_subscribable, \
     auth_mode, retention_max_messages, retention_max_age_secs, last_seq, created_at, updated_at) \
     VALUES ($1, $2, '', FALSE, 'token', $3, $4, $5, $6, $6) \
     ON CONFLICT (app_id, name) DO UPDATE SET last_seq = topics.last_seq + excluded.last_seq \
     RETURNING last_seq";

/// The enabled `pubsub` triggers whose filter matches topic `$2`.
const MATCHING_TRIGGERS: &str = "SELECT id FROM triggers \
     WHERE app_id = $1 AND kind = 'pubsub' AND enabled AND ( \
       (NOT topic_prefix AND topic_match = $2) OR \
       (topic_prefix AND length($2) > length(topic_match) \
          AND substr($2, 1, length(topic_match)) = topic_match))";

/// One topic's share of a batch.
struct Group<'a> {
    app: &'a AppId,
    topic: &'a TopicName,
    /// Indexes into the batch, in publish order.
    items: Vec<usize>,
}

fn group(items: &[PublishItem]) -> Vec<Group<'_>> {
    let mut groups: BTreeMap<(&AppId, &TopicName), Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        groups
            .entry((&item.app_id, &item.topic))
            .or_default()
            .push(i);
    }
    groups
        .into_iter()
        .map(|((app, topic), items)| Group { app, topic, items })
        .collect()
}

/// The outbox event of a pubsub delivery. Topic names need no escaping (see `TopicName`);
/// the payload is already JSON.
fn pubsub_event(topic: &TopicName, seq: i64, payload: &str) -> String {
    format!(r#"{{"kind":"pubsub","topic":"{topic}","seq":{seq},"message":{payload}}}"#)
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn publish(&self, items: &[PublishItem]) -> StoreResult<Vec<i64>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin().await.map_err(error::other)?;
                let seqs = publish_sqlite(&mut tx, items).await?;
                tx.commit().await.map_err(error::other)?;
                Ok(seqs)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(error::other)?;
                let seqs = publish_postgres(&mut tx, items).await?;
                tx.commit().await.map_err(error::other)?;
                Ok(seqs)
            }
        }
    }

    async fn read_after(
        &self,
        app: &AppId,
        topic: &TopicName,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows: Vec<(i64, String, i64)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT seq, payload, published_at FROM messages \
                 WHERE app_id = $1 AND topic = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            )
            .bind(app.as_str())
            .bind(topic.as_str())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        Ok(rows
            .into_iter()
            .map(|(seq, payload, published_at)| Message {
                app_id: app.clone(),
                topic: topic.clone(),
                seq: Some(seq),
                payload: Arc::from(payload),
                published_at,
            })
            .collect())
    }

    async fn prune_messages(&self, now_ms: i64) -> StoreResult<u64> {
        let topics: Vec<(String, String, i64, Option<i64>, Option<i64>)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT app_id, name, last_seq, retention_max_messages, retention_max_age_secs \
                 FROM topics WHERE retention_max_messages IS NOT NULL \
                 OR retention_max_age_secs IS NOT NULL",
            )
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        let mut pruned = 0;
        for (app, topic, last_seq, max_messages, max_age) in topics {
            let keep_after_seq = max_messages.map_or(i64::MIN, |n| last_seq - n);
            let keep_after_ms = max_age.map_or(i64::MIN, |s| now_ms - s * 1000);
            pruned += on_pool!(&self.db, pool => {
                sqlx::query(
                    "DELETE FROM messages WHERE app_id = $1 AND topic = $2 \
                     AND (seq <= $3 OR published_at < $4)",
                )
                .bind(&app)
                .bind(&topic)
                .bind(keep_after_seq)
                .bind(keep_after_ms)
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
            });
        }
        Ok(pruned)
    }
}

async fn publish_sqlite(tx: &mut SqliteConnection, items: &[PublishItem]) -> StoreResult<Vec<i64>> {
    let now = now_ms();
    let mut seqs = vec![0; items.len()];
    for g in group(items) {
        let n = g.items.len() as i64;
        let last: i64 = sqlx::query_scalar(TAKE_SEQS)
            .bind(g.app.as_str())
            .bind(g.topic.as_str())
            .bind(Retention::DEFAULT.max_messages)
            .bind(Retention::DEFAULT.max_age_secs)
            .bind(n)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(error::other)?;
        let triggers: Vec<String> = sqlx::query_scalar(MATCHING_TRIGGERS)
            .bind(g.app.as_str())
            .bind(g.topic.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(error::other)?;
        for (k, &i) in g.items.iter().enumerate() {
            let seq = last - n + 1 + k as i64;
            seqs[i] = seq;
            let item = &items[i];
            sqlx::query(
                "INSERT INTO messages (app_id, topic, seq, payload, published_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(g.app.as_str())
            .bind(g.topic.as_str())
            .bind(seq)
            .bind(&*item.payload)
            .bind(item.published_at)
            .execute(&mut *tx)
            .await
            .map_err(error::other)?;
            for trigger in &triggers {
                sqlx::query(
                    "INSERT INTO outbox (app_id, trigger_id, event, next_attempt_at, created_at) \
                     VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(g.app.as_str())
                .bind(trigger)
                .bind(pubsub_event(g.topic, seq, &item.payload))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(error::other)?;
            }
        }
    }
    Ok(seqs)
}

/// PostgreSQL: the same steps, with each group's rows sent as arrays (one round trip per
/// group instead of one per message).
async fn publish_postgres(tx: &mut PgConnection, items: &[PublishItem]) -> StoreResult<Vec<i64>> {
    let now = now_ms();
    let mut seqs = vec![0; items.len()];
    for g in group(items) {
        let n = g.items.len() as i64;
        let last: i64 = sqlx::query_scalar(TAKE_SEQS)
            .bind(g.app.as_str())
            .bind(g.topic.as_str())
            .bind(Retention::DEFAULT.max_messages)
            .bind(Retention::DEFAULT.max_age_secs)
            .bind(n)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(error::other)?;
        let mut group_seqs = Vec::with_capacity(g.items.len());
        let mut payloads = Vec::with_capacity(g.items.len());
        let mut published = Vec::with_capacity(g.items.len());
        for (k, &i) in g.items.iter().enumerate() {
            let seq = last - n + 1 + k as i64;
            seqs[i] = seq;
            group_seqs.push(seq);
            payloads.push(&*items[i].payload);
            published.push(items[i].published_at);
        }
        sqlx::query(
            "INSERT INTO messages (app_id, topic, seq, payload, published_at) \
             SELECT $1, $2, s, p, t FROM UNNEST($3::bigint[], $4::text[], $5::bigint[]) AS m(s, p, t)",
        )
        .bind(g.app.as_str())
        .bind(g.topic.as_str())
        .bind(&group_seqs)
        .bind(&payloads)
        .bind(&published)
        .execute(&mut *tx)
        .await
        .map_err(error::other)?;
        let triggers: Vec<String> = sqlx::query_scalar(MATCHING_TRIGGERS)
            .bind(g.app.as_str())
            .bind(g.topic.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(error::other)?;
        if !triggers.is_empty() {
            let events: Vec<String> = group_seqs
                .iter()
                .zip(&payloads)
                .map(|(seq, payload)| pubsub_event(g.topic, *seq, payload))
                .collect();
            sqlx::query(
                "INSERT INTO outbox (app_id, trigger_id, event, next_attempt_at, created_at) \
                 SELECT $1, t, e, $4, $4 FROM UNNEST($2::text[]) AS t(t) \
                 CROSS JOIN UNNEST($3::text[]) WITH ORDINALITY AS e(e, o) ORDER BY t, o",
            )
            .bind(g.app.as_str())
            .bind(&triggers)
            .bind(&events)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(error::other)?;
        }
    }
    Ok(seqs)
}
