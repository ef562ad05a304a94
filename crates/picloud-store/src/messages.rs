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
use sqlx::{PgConnection, QueryBuilder, Sqlite, SqliteConnection};

use crate::db::{now_ms, on_pool};
use crate::{error, Db, SqlStore};

/// The head of the statement that takes seqs: one row per topic of the batch, each adding
/// its count to `last_seq`, creating the topic internal when it has no row. The upsert
/// holds each topic row's lock until commit. Rows are written in (app, topic) order.
const TAKE_SEQS_HEAD: &str = "INSERT INTO topics (app_id, name, description, \
     external_subscribable, auth_mode, retention_max_messages, retention_max_age_secs, \
     last_seq, created_at, updated_at) ";
const TAKE_SEQS_TAIL: &str = " ON CONFLICT (app_id, name) DO UPDATE \
     SET last_seq = topics.last_seq + excluded.last_seq RETURNING app_id, name, last_seq";

/// An app's enabled `pubsub` triggers: (id, topic or prefix, is prefix).
const PUBSUB_TRIGGERS: &str = "SELECT id, topic_match, topic_prefix FROM triggers \
     WHERE app_id = $1 AND kind = 'pubsub' AND enabled";

/// Most rows in one SQLite `INSERT … VALUES` (SQLite allows 32,766 bound values).
const SQLITE_ROWS_PER_INSERT: usize = 1000;

/// A pubsub trigger's filter: `topic`, or `prefix.` for `prefix.*` (never the prefix itself).
struct TopicFilter {
    id: String,
    topic_match: String,
    prefix: bool,
}

impl TopicFilter {
    fn matches(&self, topic: &TopicName) -> bool {
        let t = topic.as_str();
        if self.prefix {
            t.len() > self.topic_match.len() && t.starts_with(&self.topic_match)
        } else {
            t == self.topic_match
        }
    }
}

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
                let mut writer = self.sqlite_writer.lock().await;
                if writer.is_none() {
                    *writer = Some(pool.acquire().await.map_err(error::other)?);
                }
                let conn = writer.as_mut().expect("just set");
                let result = publish_sqlite(conn, items).await;
                if result.is_err() {
                    // Whatever went wrong, the next batch starts on a fresh connection.
                    *writer = None;
                }
                result
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(error::other)?;
                let plan = Plan::new(items);
                let lasts = take_seqs_postgres(&mut tx, &plan).await?;
                let seqs = plan.seqs(&lasts);
                insert_messages_postgres(&mut tx, items, &seqs).await?;
                let outbox =
                    plan.outbox_rows(items, &seqs, &pubsub_triggers(&mut *tx, &plan).await?);
                insert_outbox_postgres(&mut tx, &outbox, now_ms()).await?;
                tx.commit().await.map_err(error::other)?;
                Ok(seqs)
            }
        }
    }

    fn publish_concurrency(&self) -> usize {
        match self.db {
            Db::Sqlite(_) => 1,
            // Overlapping commits let PostgreSQL flush one WAL write for several batches;
            // 4 leaves most of the 16-connection pool to everything else.
            Db::Postgres(_) => 2,
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

async fn publish_sqlite(
    conn: &mut SqliteConnection,
    items: &[PublishItem],
) -> StoreResult<Vec<i64>> {
    use sqlx::Connection;
    let mut tx = conn.begin().await.map_err(error::other)?;
    let plan = Plan::new(items);
    let lasts = take_seqs_sqlite(&mut tx, &plan).await?;
    let seqs = plan.seqs(&lasts);
    insert_messages_sqlite(&mut tx, items, &seqs).await?;
    let outbox = plan.outbox_rows(items, &seqs, &pubsub_triggers(&mut *tx, &plan).await?);
    insert_outbox_sqlite(&mut tx, &outbox, now_ms()).await?;
    tx.commit().await.map_err(error::other)?;
    Ok(seqs)
}

/// A batch split by topic, in (app, topic) order: the lock order every batch follows.
struct Plan<'a> {
    groups: Vec<Group<'a>>,
}

/// One outbox row: (app, trigger, event JSON).
type OutboxRow<'a> = (&'a AppId, String, String);

impl<'a> Plan<'a> {
    fn new(items: &'a [PublishItem]) -> Self {
        Self {
            groups: group(items),
        }
    }

    /// Each item's seq, given each group's `last_seq` after the upsert (group order).
    fn seqs(&self, lasts: &[i64]) -> Vec<i64> {
        let total = self.groups.iter().map(|g| g.items.len()).sum();
        let mut seqs = vec![0; total];
        for (g, last) in self.groups.iter().zip(lasts) {
            let first = last - g.items.len() as i64 + 1;
            for (k, &i) in g.items.iter().enumerate() {
                seqs[i] = first + k as i64;
            }
        }
        seqs
    }

    /// The distinct apps of the batch.
    fn apps(&self) -> Vec<&'a AppId> {
        let mut apps: Vec<_> = self.groups.iter().map(|g| g.app).collect();
        apps.dedup();
        apps
    }

    /// One row per (message, matching trigger): per trigger, messages in seq order.
    fn outbox_rows(
        &self,
        items: &[PublishItem],
        seqs: &[i64],
        triggers: &[(&'a AppId, Vec<TopicFilter>)],
    ) -> Vec<OutboxRow<'a>> {
        let mut rows = Vec::new();
        for g in &self.groups {
            let Some((_, filters)) = triggers.iter().find(|(app, _)| *app == g.app) else {
                continue;
            };
            for f in filters.iter().filter(|f| f.matches(g.topic)) {
                for &i in &g.items {
                    let event = pubsub_event(g.topic, seqs[i], &items[i].payload);
                    rows.push((g.app, f.id.clone(), event));
                }
            }
        }
        rows
    }

    /// Matches the `RETURNING` rows (in no promised order) to the groups.
    fn order_lasts(&self, returned: Vec<(String, String, i64)>) -> StoreResult<Vec<i64>> {
        let mut by_topic: std::collections::HashMap<(String, String), i64> =
            returned.into_iter().map(|(a, t, l)| ((a, t), l)).collect();
        self.groups
            .iter()
            .map(|g| {
                by_topic
                    .remove(&(g.app.as_str().to_owned(), g.topic.as_str().to_owned()))
                    .ok_or_else(|| picloud_core::StoreError::Internal("a topic got no seq".into()))
            })
            .collect()
    }
}

/// The enabled pubsub triggers of every app in the batch (one query per app; almost every
/// batch has one app). Read inside the transaction, so a trigger created concurrently is
/// either seen here or created after these messages.
async fn pubsub_triggers<'a, E>(
    conn: &mut E,
    plan: &Plan<'a>,
) -> StoreResult<Vec<(&'a AppId, Vec<TopicFilter>)>>
where
    for<'c> &'c mut E: TriggerQuery,
{
    let mut out = Vec::new();
    for app in plan.apps() {
        let rows = conn.pubsub_triggers(app.as_str()).await?;
        if !rows.is_empty() {
            out.push((app, rows));
        }
    }
    Ok(out)
}

/// The one query that differs only in connection type.
#[async_trait]
trait TriggerQuery {
    async fn pubsub_triggers(self, app: &str) -> StoreResult<Vec<TopicFilter>>;
}

fn filters(rows: Vec<(String, Option<String>, bool)>) -> Vec<TopicFilter> {
    rows.into_iter()
        .filter_map(|(id, topic_match, prefix)| {
            topic_match.map(|topic_match| TopicFilter {
                id,
                topic_match,
                prefix,
            })
        })
        .collect()
}

#[async_trait]
impl TriggerQuery for &mut SqliteConnection {
    async fn pubsub_triggers(self, app: &str) -> StoreResult<Vec<TopicFilter>> {
        let rows = sqlx::query_as(PUBSUB_TRIGGERS)
            .bind(app)
            .fetch_all(self)
            .await
            .map_err(error::other)?;
        Ok(filters(rows))
    }
}

#[async_trait]
impl TriggerQuery for &mut PgConnection {
    async fn pubsub_triggers(self, app: &str) -> StoreResult<Vec<TopicFilter>> {
        let rows = sqlx::query_as(PUBSUB_TRIGGERS)
            .bind(app)
            .fetch_all(self)
            .await
            .map_err(error::other)?;
        Ok(filters(rows))
    }
}

async fn take_seqs_sqlite(tx: &mut SqliteConnection, plan: &Plan<'_>) -> StoreResult<Vec<i64>> {
    let now = now_ms();
    let mut q = QueryBuilder::<Sqlite>::new(TAKE_SEQS_HEAD);
    q.push_values(&plan.groups, |mut row, g| {
        row.push_bind(g.app.as_str())
            .push_bind(g.topic.as_str())
            .push("''")
            .push("FALSE")
            .push("'token'")
            .push_bind(Retention::DEFAULT.max_messages)
            .push_bind(Retention::DEFAULT.max_age_secs)
            .push_bind(g.items.len() as i64)
            .push_bind(now)
            .push_bind(now);
    });
    q.push(TAKE_SEQS_TAIL);
    let returned = q
        .build_query_as::<(String, String, i64)>()
        .fetch_all(&mut *tx)
        .await
        .map_err(error::other)?;
    plan.order_lasts(returned)
}

async fn insert_messages_sqlite(
    tx: &mut SqliteConnection,
    items: &[PublishItem],
    seqs: &[i64],
) -> StoreResult<()> {
    let rows: Vec<_> = items.iter().zip(seqs).collect();
    for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (app_id, topic, seq, payload, published_at) ",
        );
        q.push_values(chunk, |mut row, (item, seq)| {
            row.push_bind(item.app_id.as_str())
                .push_bind(item.topic.as_str())
                .push_bind(**seq)
                .push_bind(&*item.payload)
                .push_bind(item.published_at);
        });
        q.build().execute(&mut *tx).await.map_err(error::other)?;
    }
    Ok(())
}

async fn insert_outbox_sqlite(
    tx: &mut SqliteConnection,
    rows: &[OutboxRow<'_>],
    now: i64,
) -> StoreResult<()> {
    for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (app_id, trigger_id, event, next_attempt_at, created_at) ",
        );
        q.push_values(chunk, |mut row, (app, trigger, event)| {
            row.push_bind(app.as_str())
                .push_bind(trigger.as_str())
                .push_bind(event.as_str())
                .push_bind(now)
                .push_bind(now);
        });
        q.build().execute(&mut *tx).await.map_err(error::other)?;
    }
    Ok(())
}

/// PostgreSQL sends every list as an array: fixed statement texts (prepared once), one round
/// trip per step whatever the batch size.
async fn take_seqs_postgres(tx: &mut PgConnection, plan: &Plan<'_>) -> StoreResult<Vec<i64>> {
    let apps: Vec<&str> = plan.groups.iter().map(|g| g.app.as_str()).collect();
    let topics: Vec<&str> = plan.groups.iter().map(|g| g.topic.as_str()).collect();
    let counts: Vec<i64> = plan.groups.iter().map(|g| g.items.len() as i64).collect();
    // WITH ORDINALITY + ORDER BY: rows are inserted, and their locks taken, in plan order.
    let sql = format!(
        "{TAKE_SEQS_HEAD} SELECT a, t, '', FALSE, 'token', $4, $5, n, $6, $6 \
         FROM UNNEST($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS g(a, t, n, o) \
         ORDER BY o {TAKE_SEQS_TAIL}"
    );
    let returned = sqlx::query_as::<_, (String, String, i64)>(&sql)
        .bind(&apps)
        .bind(&topics)
        .bind(&counts)
        .bind(Retention::DEFAULT.max_messages)
        .bind(Retention::DEFAULT.max_age_secs)
        .bind(now_ms())
        .fetch_all(&mut *tx)
        .await
        .map_err(error::other)?;
    plan.order_lasts(returned)
}

async fn insert_messages_postgres(
    tx: &mut PgConnection,
    items: &[PublishItem],
    seqs: &[i64],
) -> StoreResult<()> {
    let apps: Vec<&str> = items.iter().map(|i| i.app_id.as_str()).collect();
    let topics: Vec<&str> = items.iter().map(|i| i.topic.as_str()).collect();
    let payloads: Vec<&str> = items.iter().map(|i| &*i.payload).collect();
    let published: Vec<i64> = items.iter().map(|i| i.published_at).collect();
    sqlx::query(
        "INSERT INTO messages (app_id, topic, seq, payload, published_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])",
    )
    .bind(&apps)
    .bind(&topics)
    .bind(seqs)
    .bind(&payloads)
    .bind(&published)
    .execute(&mut *tx)
    .await
    .map_err(error::other)?;
    Ok(())
}

async fn insert_outbox_postgres(
    tx: &mut PgConnection,
    rows: &[OutboxRow<'_>],
    now: i64,
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let triggers: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let events: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    sqlx::query(
        "INSERT INTO outbox (app_id, trigger_id, event, next_attempt_at, created_at) \
         SELECT a, t, e, $4, $4 FROM UNNEST($1::text[], $2::text[], $3::text[]) \
         WITH ORDINALITY AS r(a, t, e, o) ORDER BY o",
    )
    .bind(&apps)
    .bind(&triggers)
    .bind(&events)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(error::other)?;
    Ok(())
}
